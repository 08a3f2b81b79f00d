// s3_csv_to_rds run through its webhook as a user runs it, with the mistakes people make:
// each fails once, before any load, with the step's fix in the failure report; a bad line
// names its object and line; the summary counts loaded, skipped and failed objects apart.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { DEFAULT_LEDGER_TABLE } from "../../f/aws_oidc/lib/loadLedger.ts";
import { assumeRoleAndSave } from "../../f/aws_oidc/lib/assumeRoleAndSave.ts";
import { s3Client } from "../../f/aws_oidc/lib/s3.ts";
import { DATABASE_RESOURCE, DEMO_BUCKET, DEMO_TABLE, ROLE_RESOURCE, setUpWorkspace, uploadSampleCsvs } from "../../local/demo/demoData.ts";
import { runWaitResult } from "../../local/windmill/client.ts";
import type { JobRecord } from "../../local/windmill/state.ts";
import { auditLeaksThenClose } from "../helpers/leaks.ts";
import { DB_USER, DEMO_ROLE_ARN, REGION, startStack, type JobResult, type Stack } from "../helpers/testStack.ts";

const FLOW = "f/aws_oidc/s3_csv_to_rds";
const HEADER = "order_id,customer,country,amount,ordered_at,note";
let stack: Stack;
let s3: S3Client;

beforeAll(async () => {
  stack = await startStack({ s3: true, rds: true });
  await setUpWorkspace(stack);
  stack.actAsJob("f/aws_oidc/load_checks_setup");
  await assumeRoleAndSave({ roleArn: DEMO_ROLE_ARN, region: REGION, saveTo: "f/aws_oidc/load_checks_creds" }, () => {});
  s3 = (await s3Client("f/aws_oidc/load_checks_creds")).s3;
  await uploadSampleCsvs(s3, DEMO_BUCKET, "eight/", 8, 5);
});
afterAll(async () => {
  await auditLeaksThenClose(stack);
});

/** A table shaped like the demo's, empty, that the IAM user may read and insert into. */
async function freshTable(name: string, grants = "select, insert"): Promise<string> {
  await stack.rds!.adminSql(`create table ${name} (like ${DEMO_TABLE}); grant ${grants} on ${name} to ${DB_USER}`);
  return name;
}

async function put(key: string, body: string): Promise<void> {
  await s3.send(new PutObjectCommand({ Bucket: DEMO_BUCKET, Key: key, Body: body }));
}

/** Runs the flow through its sync webhook; `jobs` are the flow's steps and loop iterations. */
async function runLoad(args: Record<string, unknown>): Promise<{ status: number; body: JobResult; steps: JobRecord[]; iterations: JobRecord[] }> {
  const { status, result } = await runWaitResult(stack.windmill, "f", FLOW, {
    aws_oidc: `$res:${ROLE_RESOURCE}`, database: `$res:${DATABASE_RESOURCE}`, bucket: DEMO_BUCKET, credentials_path: "f/aws_oidc/load_checks_creds", ...args,
  });
  const flow = stack.windmill.jobs.findLast((j) => j.kind === "flow" && j.path === FLOW)!;
  const steps = stack.windmill.jobs.filter((j) => j.parentJobId === flow.id);
  return { status, body: result, steps, iterations: steps.filter((s) => s.stepId === "load_each") };
}

const fixLines = (fix: string) => fix.split("\n").filter((l) => l.startsWith("Fix:"));

describe("mistakes fail once, at the check, before any load", () => {
  test("a table name typo: one failure naming the table, with a fix suggesting the real one", async () => {
    const { status, body, iterations } = await runLoad({ prefix: "eight/", table: "ordrs" });
    expect(status).toBe(422);
    expect(body).toMatchObject({ failed_step: "check", error: "LoadCheckError" });
    expect(body.message).toContain("table ordrs does not exist");
    expect(body.fix).toContain("did you mean orders?");
    expect(iterations).toHaveLength(0);
  });

  test("a database resource that does not exist", async () => {
    const { status, body, iterations } = await runLoad({ prefix: "eight/", table: DEMO_TABLE, database: "$res:f/aws_oidc/no_such_db" });
    expect(status).toBe(422);
    expect(body.failed_step).toBe("check");
    expect(body.fix).toContain("create the resource f/aws_oidc/no_such_db");
    expect(iterations).toHaveLength(0);
  });

  test("a table the IAM user may not insert into", async () => {
    const table = await freshTable("orders_read_only", "select");
    const { body, iterations } = await runLoad({ prefix: "eight/", table });
    expect(body.failed_step).toBe("check");
    expect(body.message).toContain(`the database user ${DB_USER} may not insert into ${table}`);
    expect(body.fix).toBe(`Fix: as the table's owner: GRANT INSERT ON ${table} TO ${DB_USER};`);
    expect(iterations).toHaveLength(0);
  });

  test("a load ledger the IAM user may not delete from", async () => {
    const table = await freshTable("orders_ledger_check");
    await stack.rds!.adminSql(`revoke delete on ${DEFAULT_LEDGER_TABLE} from ${DB_USER}`);
    try {
      const { body, iterations } = await runLoad({ prefix: "eight/", table });
      expect(body.failed_step).toBe("check");
      expect(body.message).toContain(`lacks DELETE on the load ledger ${DEFAULT_LEDGER_TABLE}`);
      expect(body.fix).toContain(`GRANT SELECT, INSERT, DELETE ON ${DEFAULT_LEDGER_TABLE} TO ${DB_USER}`);
      expect(iterations).toHaveLength(0);
    } finally {
      await stack.rds!.adminSql(`grant delete on ${DEFAULT_LEDGER_TABLE} to ${DB_USER}`);
    }
  });

  test("a header with fewer columns than the table", async () => {
    const table = await freshTable("orders_narrow");
    await put("narrow/a.csv", "order_id,customer\n1,only two columns\n");
    const { body, iterations } = await runLoad({ prefix: "narrow/", table });
    expect(body.failed_step).toBe("check");
    expect(body.message).toContain(`s3://${DEMO_BUCKET}/narrow/a.csv: its header has 2 field(s) (order_id, customer) but ${table} takes 6 column(s)`);
    expect(fixLines(body.fix)).toEqual([expect.stringContaining("check the column count and header")]);
    expect(iterations).toHaveLength(0);
  });

  test("a header naming the table's columns in another order", async () => {
    const table = await freshTable("orders_swapped");
    await put("swapped/a.csv", "customer,order_id,country,amount,ordered_at,note\nAda,1,GB,1.5,2026-11-01T10:00:00Z,x\n");
    const { body, iterations } = await runLoad({ prefix: "swapped/", table });
    expect(body.failed_step).toBe("check");
    expect(body.message).toContain("names orders_swapped's columns in another order");
    expect(iterations).toHaveLength(0);
  });

  test("a prefix with no CSV object fails, naming it; allow_empty makes it a success with nothing loaded", async () => {
    const refused = await runLoad({ prefix: "nothing-here/", table: DEMO_TABLE });
    expect(refused.status).toBe(422);
    expect(refused.body.failed_step).toBe("check");
    expect(refused.body.message).toContain(`no CSV object (.csv or .csv.gz) is under s3://${DEMO_BUCKET}/nothing-here/`);
    expect(refused.body.fix).toContain("set allow_empty to true");
    const allowed = await runLoad({ prefix: "nothing-here/", table: DEMO_TABLE, allow_empty: true });
    expect(allowed.status).toBe(200);
    expect(allowed.body).toEqual([{ object: "TOTAL (no CSV objects to load)", status: "skipped", rows: 0, bytes: 0, seconds: null, error: null, fix: null }]);
  });
});

describe("loads that run say what happened", () => {
  test("a bad line names the object, the line and the fix; the object before it stays loaded", async () => {
    const table = await freshTable("orders_bad_line");
    await uploadSampleCsvs(s3, DEMO_BUCKET, "badline/", 1, 4);
    await put("badline/part-001.csv", `${HEADER}\n900,Ada,GB,1.5,2026-11-01T10:00:00Z,x\n901,Grace,GB\n`);
    const { status, body } = await runLoad({ prefix: "badline/", table });
    expect(status).toBe(422);
    expect(body).toMatchObject({ failed_step: "summary", error: "LoadFailures" });
    expect(body.message).toContain("1 of 2 objects failed to load (1 loaded, each in its own transaction, and they stay loaded)");
    expect(body.message).toContain(`- s3://${DEMO_BUCKET}/badline/part-001.csv: line 3: COPY into ${table} refused it with 22P04: missing data for column "amount"`);
    expect(fixLines(body.fix)).toEqual([expect.stringContaining("check the column count and header of the object")]);
  });

  test("when every object fails: 0 of N loaded, none was loaded, one fix", async () => {
    const table = await freshTable("orders_all_bad");
    for (const i of [0, 1]) await put(`allbad/part-${i}.csv`, `${HEADER}\n${i},Ada,GB,not-a-number,2026-11-01T10:00:00Z,x\n`);
    const { body, iterations } = await runLoad({ prefix: "allbad/", table });
    expect(iterations).toHaveLength(2);
    expect(body.message).toStartWith("2 of 2 objects failed to load (none was loaded):");
    expect(body.message).toContain(`- s3://${DEMO_BUCKET}/allbad/part-0.csv: line 2: COPY`);
    expect(fixLines(body.fix)).toEqual(["Fix: a value for column amount does not fit its column's type: correct that line, or check that the CSV's columns are in orders_all_bad's column order (delimiter \",\", quote \"\\\"\", header true)."]);
  });

  test("a re-run where every object is in the ledger: 0 of 8 loaded, 8 skipped", async () => {
    const table = await freshTable("orders_rerun");
    const first = await runLoad({ prefix: "eight/", table });
    expect(first.body.at(-1)).toMatchObject({ object: "TOTAL (8 of 8 loaded)", status: "loaded", rows: 40 });
    const again = await runLoad({ prefix: "eight/", table });
    expect(again.status).toBe(200);
    expect(again.body.at(-1)).toMatchObject({ object: "TOTAL (0 of 8 loaded, 8 skipped)", status: "skipped", rows: 0, bytes: 0 });
    expect(again.body.slice(0, -1).map((r: { status: string }) => r.status)).toEqual(Array(8).fill("skipped"));
  });
});
