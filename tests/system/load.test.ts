// Load, bounded and on loopback only: 50 concurrent webhook runs of s3_csv_to_rds (two
// objects each, distinct prefixes, one shared table) through a worker pool of 8.
// Every job succeeds; every row lands exactly once.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { assumeRoleAndSave } from "../../f/aws_oidc/lib/assumeRoleAndSave.ts";
import { s3Client } from "../../f/aws_oidc/lib/s3.ts";
import { DATABASE_RESOURCE, DEMO_BUCKET, ensureBucket, ROLE_RESOURCE, sampleCsv, setUpWorkspace } from "../../local/demo/demoData.ts";
import { auditLeaksThenClose } from "../helpers/leaks.ts";
import { DB_USER, DEMO_ROLE_ARN, REGION, startStack, type Stack } from "../helpers/testStack.ts";

const RUNS = 50;
const OBJECTS_PER_RUN = 2;
const ROWS_PER_OBJECT = 40;
let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ s3: true, rds: true });
  await setUpWorkspace(stack);
  stack.actAsJob("f/aws_oidc/load_setup");
  await assumeRoleAndSave({ roleArn: DEMO_ROLE_ARN, region: REGION, saveTo: "f/aws_oidc/load_creds" }, () => {});
  const { s3 } = await s3Client("f/aws_oidc/load_creds");
  await ensureBucket(s3, DEMO_BUCKET);
  // Distinct order ids across all runs, so a lost or doubled row shows in the counts.
  const puts = [];
  for (let run = 0; run < RUNS; run++) {
    for (let o = 0; o < OBJECTS_PER_RUN; o++) {
      const first = (run * OBJECTS_PER_RUN + o) * ROWS_PER_OBJECT + 1;
      puts.push(s3.send(new PutObjectCommand({ Bucket: DEMO_BUCKET, Key: `load/run-${run}/part-${o}.csv`, Body: sampleCsv(first, ROWS_PER_OBJECT) })));
    }
  }
  await Promise.all(puts);
  await stack.rds!.adminSql(`create table orders_load (like orders including all); grant select, insert on orders_load to ${DB_USER}`);
});
afterAll(async () => {
  await auditLeaksThenClose(stack);
});

test(`${RUNS} concurrent webhook runs: 0 failed jobs, 0 lost or duplicated rows`, async () => {
  const jobsBefore = stack.windmill.jobs.length;
  const runs = Array.from({ length: RUNS }, (_, run) =>
    fetch(`${stack.windmill.url}/api/w/${stack.windmill.workspace}/jobs/run_wait_result/f/f/aws_oidc/s3_csv_to_rds`, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.windmill.adminToken}`, "content-type": "application/json" },
      body: JSON.stringify({
        aws_oidc: `$res:${ROLE_RESOURCE}`, database: `$res:${DATABASE_RESOURCE}`, bucket: DEMO_BUCKET,
        prefix: `load/run-${run}/`, table: "orders_load", credentials_path: "f/aws_oidc/load_shared_creds",
      }),
    }).then(async (res) => ({ status: res.status, body: (await res.json()) as { status: string; rows: number }[] })),
  );
  const results = await Promise.all(runs);
  expect(results.filter((r) => r.status !== 200)).toEqual([]);
  for (const r of results) expect(r.body.at(-1)).toMatchObject({ status: "loaded", rows: OBJECTS_PER_RUN * ROWS_PER_OBJECT });
  const jobs = stack.jobsStartedSince(jobsBefore);
  expect(jobs.filter((j) => !j.success).map((j) => `${j.path}: ${JSON.stringify(j.result).slice(0, 200)}`)).toEqual([]);
  expect(jobs.filter((j) => j.kind === "flow" && j.parentJobId === null)).toHaveLength(RUNS);
  // Each for-loop iteration is a flow job of its own (worker_flow.rs), one per object.
  expect(jobs.filter((j) => j.kind === "flow" && /\/forloop-\d+$/.test(j.path))).toHaveLength(RUNS * OBJECTS_PER_RUN);
  const total = RUNS * OBJECTS_PER_RUN * ROWS_PER_OBJECT;
  const counted = await stack.runScript("f/aws_oidc/rds_query", {
    credentials: "$res:f/aws_oidc/load_creds", database: `$res:${DATABASE_RESOURCE}`,
    sql: "select count(*)::int as n, count(distinct order_id)::int as ids from orders_load",
  });
  expect(counted.result).toEqual([{ n: total, ids: total }]);
}, 300_000);
