// One big CSV loaded as slices in parallel iterations of s3_csv_to_rds: slices are cut
// only between records (quoted newlines included), every row lands once, a re-run skips,
// a different split of an already loaded object is refused, and a hand-made range that
// cuts a line is refused before any row lands.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { HeadObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import postgres from "postgres";
import { assumeRoleAndSave } from "../../f/aws_oidc/lib/assumeRoleAndSave.ts";
import { CsvSplitPoints } from "../../f/aws_oidc/lib/csvRecords.ts";
import { alreadyLoaded, DEFAULT_LEDGER_TABLE, ledgerKey, recordLoad } from "../../f/aws_oidc/lib/loadLedger.ts";
import { s3Client } from "../../f/aws_oidc/lib/s3.ts";
import { DATABASE_RESOURCE, DEMO_BUCKET, ROLE_RESOURCE, ensureBucket, sampleCsv, setUpWorkspace } from "../../local/demo/demoData.ts";
import { auditLeaksThenClose } from "../helpers/leaks.ts";
import { DB_USER, DEMO_ROLE_ARN, REGION, startStack, type JobResult, type Stack } from "../helpers/testStack.ts";

const MIB = 1024 * 1024;
const ROWS = 40_000;
const KEY = "slices/big.csv";
const CREDS = "f/aws_oidc/slices_creds";
let stack: Stack;
let s3: S3Client;

/** Offsets where a record starts, found the slow and obvious way. */
function recordStarts(text: Buffer): number[] {
  const starts: number[] = [];
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === 0x22) quoted = !quoted;
    else if (text[i] === 0x0a && !quoted) starts.push(i + 1);
  }
  return starts;
}

describe("CsvSplitPoints", () => {
  test("cuts at the first record start past each step, whatever the chunking", () => {
    const data = Buffer.from(sampleCsv(1, 3000));
    const starts = recordStarts(data);
    const every = 1000;
    const expected: number[] = [];
    for (let target = every; ;) {
      const next = starts.find((s) => s >= target);
      if (next === undefined) break;
      expected.push(next);
      target = next + every;
    }
    for (const seed of [1, 7, 4242]) {
      const finder = new CsvSplitPoints(0x22, every);
      for (let pos = 0, x = seed; pos < data.length;) {
        x = (x * 1103515245 + 12345) % 2 ** 31;
        const size = 1 + (x % 5000);
        finder.scan(data.subarray(pos, pos + size));
        pos += size;
      }
      expect(finder.points).toEqual(expected);
    }
    // The sample has newlines inside quoted notes: a naive newline split would differ.
    expect(expected.length).toBeGreaterThan(50);
  });
});

describe("s3_csv_to_rds with split_mib", () => {
  const table = "orders_sliced";
  const flow = (args: Record<string, unknown>) => fetch(`${stack.windmill.url}/api/w/${stack.windmill.workspace}/jobs/run_wait_result/f/f/aws_oidc/s3_csv_to_rds`, {
    method: "POST",
    headers: { authorization: `Bearer ${stack.windmill.adminToken}`, "content-type": "application/json" },
    body: JSON.stringify({
      aws_oidc: `$res:${ROLE_RESOURCE}`, database: `$res:${DATABASE_RESOURCE}`, bucket: DEMO_BUCKET, prefix: "slices/", table,
      credentials_path: CREDS, ...args,
    }),
  }).then(async (res) => ({ status: res.status, body: await res.json() }));
  const tableRows = async () => ((await stack.rds!.adminSql(`select count(*)::int as n, count(distinct order_id)::int as ids from ${table}`)) as { n: number; ids: number }[])[0];

  beforeAll(async () => {
    stack = await startStack({ s3: true, rds: true });
    await setUpWorkspace(stack);
    await stack.rds!.adminSql(`create table ${table} (like orders including all); grant select, insert on ${table} to ${DB_USER}`);
    stack.actAsJob("f/aws_oidc/slices_test");
    await assumeRoleAndSave({ roleArn: DEMO_ROLE_ARN, region: REGION, saveTo: CREDS }, () => {});
    s3 = (await s3Client(CREDS)).s3;
    await ensureBucket(s3, DEMO_BUCKET);
    await s3.send(new PutObjectCommand({ Bucket: DEMO_BUCKET, Key: KEY, Body: sampleCsv(1, ROWS) }));
  });
  afterAll(async () => {
    await auditLeaksThenClose(stack);
  });

  test("one object over split_mib loads as slices in parallel, every row once", async () => {
    const { status, body } = await flow({ split_mib: 1 });
    expect(status).toBe(200);
    const slices = body.slice(0, -1) as { object: string; status: string; rows: number }[];
    expect(slices.length).toBeGreaterThanOrEqual(3);
    expect(slices[0]!.object).toMatch(/^s3:\/\/demo-data\/slices\/big\.csv bytes=0-\d+$/);
    expect(slices.every((s) => s.status === "loaded" && s.rows > 0)).toBe(true);
    expect(body.at(-1)).toMatchObject({ status: "loaded", rows: ROWS });
    expect(await tableRows()).toEqual({ n: ROWS, ids: ROWS });
    const loadSteps = stack.windmill.jobs.filter((j) => j.path === "f/aws_oidc/rds_load_csv_from_s3");
    expect(loadSteps.length).toBe(slices.length);
  });

  test("a re-run skips every slice; the whole object after slices is refused, nothing doubled", async () => {
    const again = await flow({ split_mib: 1 });
    expect(again.body.slice(0, -1).every((s: { status: string }) => s.status === "skipped")).toBe(true);
    const whole = await flow({ split_mib: 0 });
    expect(JSON.stringify(whole.body)).toContain("is already loaded into orders_sliced as bytes=0-");
    expect(JSON.stringify(whole.body)).toContain("Split it as the run that loaded it did (same split_mib), or set force");
    expect(await tableRows()).toEqual({ n: ROWS, ids: ROWS });
  });

  test("a whole load that starts while a slice of the object is loading waits for it, then refuses", async () => {
    await stack.rds!.adminSql(`create table orders_race (like orders); grant select, insert on orders_race to ${DB_USER}`);
    const { ETag } = await s3.send(new HeadObjectCommand({ Bucket: DEMO_BUCKET, Key: KEY }));
    const entry = { bucket: DEMO_BUCKET, key: KEY, etag: ETag!, table: "orders_race" };
    const range = { first: 0, last: 1000 };
    const b = stack.rds!.backend;
    const direct = postgres({ host: b.host, port: b.port, username: b.user, password: b.password, database: b.database, max: 1, onnotice: () => {} });
    let whole: Promise<{ status: number; result: JobResult }> | undefined;
    try {
      // A slice load in progress: its ledger row written, its transaction not yet committed.
      await direct.begin(async (tx) => {
        expect(await alreadyLoaded(tx, DEFAULT_LEDGER_TABLE, entry, range)).toBeUndefined();
        await recordLoad(tx, DEFAULT_LEDGER_TABLE, { ...entry, key: ledgerKey(KEY, range) }, 10);
        whole = stack.runScript("f/aws_oidc/rds_load_csv_from_s3", {
          credentials: `$res:${CREDS}`, database: `$res:${DATABASE_RESOURCE}`, bucket: DEMO_BUCKET, key: KEY, table: "orders_race",
        });
        // The transaction stays open until the whole load waits on a lock it holds. Without the
        // lock the whole load would see no ledger row, load every row and finish meanwhile.
        let settled = false;
        whole.then(() => (settled = true), () => (settled = true));
        const waiting = async () => ((await stack.rds!.adminSql("select count(*)::int as n from pg_locks where not granted")) as { n: number }[])[0]!.n > 0;
        while (!settled && !(await waiting())) await Bun.sleep(50);
      });
      const { result } = await whole!;
      expect(JSON.stringify(result)).toContain("is already loaded into orders_race as bytes=0-1000");
      expect(((await stack.rds!.adminSql("select count(*)::int as n from orders_race")) as { n: number }[])[0]).toEqual({ n: 0 });
    } finally {
      await direct.end();
    }
  });

  test("a range that cuts a line, or a header in a later slice, is refused before any row lands", async () => {
    const load = (args: Record<string, unknown>) => stack.runScript("f/aws_oidc/rds_load_csv_from_s3", {
      credentials: `$res:${CREDS}`, database: `$res:${DATABASE_RESOURCE}`, bucket: DEMO_BUCKET, key: KEY, table: "orders", ledger_table: "", ...args,
    });
    const cut = await load({ range: `bytes=10-${MIB}`, header: false });
    expect(JSON.stringify(cut.result)).toContain(`Invalid input \\"range\\": bytes=10-${MIB} does not start at a line boundary`);
    const stale = await load({ range: "bytes=0-1000", etag: '"an-older-version"' });
    expect(JSON.stringify(stale.result)).toContain('Invalid input \\"etag\\": s3://demo-data/slices/big.csv changed since its slices were planned');
    const header = await load({ range: "bytes=10-20" });
    expect(JSON.stringify(header.result)).toContain('Invalid input \\"header\\"');
    expect(((await stack.rds!.adminSql("select count(*)::int as n from orders")) as { n: number }[])[0]).toEqual({ n: 0 });
  });
});
