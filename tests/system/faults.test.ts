// Faults injected into the stand-ins, and what the bundle does about them: transient
// errors are retried, permanent ones fail at once with the fix, a load either completes or
// leaves nothing (and a re-run loads every object exactly once), sessions that expire
// mid-flow are refreshed without failing the flow.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { S3Client } from "@aws-sdk/client-s3";
import { STS_RETRY } from "../../f/aws_oidc/lib/assumeRole.ts";
import { assumeRoleAndSave } from "../../f/aws_oidc/lib/assumeRoleAndSave.ts";
import { s3Client } from "../../f/aws_oidc/lib/s3.ts";
import { DATABASE_RESOURCE, DEMO_BUCKET, ROLE_RESOURCE, setUpWorkspace, uploadSampleCsvs } from "../../local/demo/demoData.ts";
import { auditLeaksThenClose } from "../helpers/leaks.ts";
import { DB_USER, DEMO_ROLE_ARN, REGION, startStack, type Stack } from "../helpers/testStack.ts";

const CREDS = "f/aws_oidc/fault_creds";
let stack: Stack;
let s3: S3Client;

beforeAll(async () => {
  stack = await startStack({ s3: true, rds: true });
  await setUpWorkspace(stack);
  stack.actAsJob("f/aws_oidc/fault_setup");
  await assumeRoleAndSave({ roleArn: DEMO_ROLE_ARN, region: REGION, saveTo: CREDS }, () => {});
  s3 = (await s3Client(CREDS)).s3;
  await uploadSampleCsvs(s3, DEMO_BUCKET, "faults/", 3, 2000);
});
afterAll(async () => {
  await auditLeaksThenClose(stack);
});

const run = (path: string, args: Record<string, unknown>) => stack.runScript(path, { credentials: `$res:${CREDS}`, ...args });
const count = async (table: string) =>
  (await run("f/aws_oidc/rds_query", { database: `$res:${DATABASE_RESOURCE}`, sql: `select count(*)::int as n, count(distinct order_id)::int as ids from ${table}` })).result[0];
const stsCalls = async () => (await stack.stsStats()).calls.AssumeRoleWithWebIdentity ?? 0;

async function table(name: string): Promise<string> {
  await stack.rds!.adminSql(`create table ${name} (like orders); grant select, insert on ${name} to ${DB_USER}`);
  return name;
}

describe("STS", () => {
  test("a permanent refusal is not retried: one STS call, then the fix", async () => {
    const before = await stsCalls();
    const { result } = await stack.runScript("f/aws_oidc/assume_role", { role_arn: "arn:aws:iam::123456789012:role/not-there", region: REGION, save_to: "f/aws_oidc/x", force: true });
    expect(result.error.message).toContain("AccessDenied");
    expect(await stsCalls()).toBe(before + 1);
  });

  test("an unreachable JWKS is retried (STS's InvalidIdentityToken for it is transient), then reported with the JWKS URL", async () => {
    stack.windmill.faults.jwksUnavailable = true;
    try {
      const before = await stsCalls();
      const { result } = await stack.runScript("f/aws_oidc/assume_role", { aws_oidc: `$res:${ROLE_RESOURCE}`, save_to: "f/aws_oidc/jwks_creds", force: true });
      expect(result.error.message).toContain("failed with InvalidIdentityToken: Couldn't retrieve verification key");
      expect(result.error.message).toContain(`Fix: AWS could not reach ${stack.windmill.issuer}jwks`);
      expect(await stsCalls()).toBe(before + STS_RETRY.attempts);
    } finally {
      stack.windmill.faults.jwksUnavailable = false;
    }
  });

  test("any other InvalidIdentityToken is not retried", async () => {
    const before = await stsCalls();
    const { result } = await stack.runScript("f/aws_oidc/assume_role", { aws_oidc: `$res:${ROLE_RESOURCE}`, audience: "not-an-audience", save_to: "f/aws_oidc/aud_creds", force: true });
    expect(result.error.message).toContain("InvalidIdentityToken");
    expect(await stsCalls()).toBe(before + 1);
  });
});

describe("S3", () => {
  test("a burst of 503 SlowDown is retried by the SDK", async () => {
    stack.s3!.faults.status = 503;
    stack.s3!.faults.count = 2;
    const { status, result } = await run("f/aws_oidc/s3_list_objects", { bucket: DEMO_BUCKET, prefix: "faults/" });
    expect(status).toBe(200);
    expect(result).toHaveLength(3);
  });

  test("a longer outage fails with the S3 code and a fix", async () => {
    stack.s3!.faults.status = 500;
    stack.s3!.faults.count = 10;
    try {
      const { result } = await run("f/aws_oidc/s3_list_objects", { bucket: DEMO_BUCKET, prefix: "faults/" });
      expect(result.error.message).toContain("InternalError");
      expect(result.error.message).toContain("Fix:");
    } finally {
      stack.s3!.faults.count = 0;
    }
  });

  test("S3 failing mid-export fails the job promptly with the S3 error, and leaves no object", async () => {
    // ~60 MiB of CSV: more than the upload's buffered parts hold, so the COPY is always still
    // streaming when S3 fails (at ~12 MiB it had sometimes ended, and the test passed by luck).
    await stack.rds!.adminSql(`create table export_big as select g as id, repeat('x', 300) as pad from generate_series(1, 200000) g; grant select on export_big to ${DB_USER}`);
    // The export's first S3 request (the multipart upload's creation) fails on every SDK attempt.
    Object.assign(stack.s3!.faults, { status: 500, count: 3 });
    try {
      const { status, result } = await run("f/aws_oidc/rds_export_to_s3", { database: `$res:${DATABASE_RESOURCE}`, query: "select * from export_big", bucket: DEMO_BUCKET, key: "faults/export.csv" });
      expect(status).not.toBe(200);
      expect(result.error.message).toContain("S3 PutObject on s3://demo-data/faults/export.csv failed with InternalError");
    } finally {
      stack.s3!.faults.count = 0;
    }
    const listed = await run("f/aws_oidc/s3_list_objects", { bucket: DEMO_BUCKET, prefix: "faults/export" });
    expect(listed.result).toEqual([]);
  });

  test("a dropped connection mid-load leaves nothing; the re-run loads the object once", async () => {
    const target = await table("orders_dropped");
    stack.s3!.faults.dropConnections = 1;
    const args = { database: `$res:${DATABASE_RESOURCE}`, bucket: DEMO_BUCKET, key: "faults/part-000.csv", table: target };
    const first = await run("f/aws_oidc/rds_load_csv_from_s3", args);
    stack.s3!.faults.dropConnections = 0;
    // Either the SDK's retry got the whole object, or the load failed and left nothing.
    const after = await count(target);
    expect(after.n === 0 || after.n === 2000).toBe(true);
    if (first.status === 200) expect(first.result.rows_loaded).toBe(2000);
    await run("f/aws_oidc/rds_load_csv_from_s3", args);
    await run("f/aws_oidc/rds_load_csv_from_s3", args);
    expect(await count(target)).toEqual({ n: 2000, ids: 2000 });
  });
});

describe("RDS", () => {
  test("a backend killed mid-COPY rolls back; re-running the flow loads every object exactly once", async () => {
    const target = await table("orders_killed");
    const flowArgs = { aws_oidc: `$res:${ROLE_RESOURCE}`, database: `$res:${DATABASE_RESOURCE}`, bucket: DEMO_BUCKET, prefix: "faults/", table: target, credentials_path: "f/aws_oidc/killed_creds" };
    const killed = stack.rds!.faults.killBackendOnNextCopy({ afterBytes: 1 });
    const first = await stack.runScript("f/aws_oidc/assume_role", { aws_oidc: `$res:${ROLE_RESOURCE}`, save_to: "f/aws_oidc/killed_creds" });
    expect(first.status).toBe(200);
    const res = await fetch(`${stack.windmill.url}/api/w/${stack.windmill.workspace}/jobs/run_wait_result/f/f/aws_oidc/s3_csv_to_rds`, {
      method: "POST", headers: { authorization: `Bearer ${stack.windmill.adminToken}`, "content-type": "application/json" }, body: JSON.stringify(flowArgs),
    });
    await killed;
    const report = await res.json();
    expect(res.status).toBe(422);
    expect(report.message).toContain("1 of 3 objects failed to load");
    expect((await count(target)).n).toBe(4000);
    const rerun = await fetch(`${stack.windmill.url}/api/w/${stack.windmill.workspace}/jobs/run_wait_result/f/f/aws_oidc/s3_csv_to_rds`, {
      method: "POST", headers: { authorization: `Bearer ${stack.windmill.adminToken}`, "content-type": "application/json" }, body: JSON.stringify(flowArgs),
    });
    const table2 = (await rerun.json()) as { status: string }[];
    expect(rerun.status).toBe(200);
    expect(table2.filter((r) => r.status === "skipped")).toHaveLength(2);
    expect(table2.filter((r) => r.status === "loaded")).toHaveLength(2);
    expect(await count(target)).toEqual({ n: 6000, ids: 6000 });
  });

  test("the gateway restarting between connections is invisible to the next step", async () => {
    await stack.rds!.faults.restart();
    const { status, result } = await run("f/aws_oidc/rds_query", { database: `$res:${DATABASE_RESOURCE}`, sql: "select 1 as one" });
    expect(status).toBe(200);
    expect(result).toEqual([{ one: 1 }]);
  });
});

describe("credentials expiring during a flow", () => {
  test("a step finding the session about to expire mints a fresh one and the flow succeeds", async () => {
    const flow = {
      path: "f/aws_oidc/expiring_session_test",
      summary: "assume role, age the session, then use it",
      value: {
        modules: [
          { id: "assume", value: { type: "script", path: "f/aws_oidc/assume_role", input_transforms: {
            aws_oidc: { type: "static", value: `$res:${ROLE_RESOURCE}` }, save_to: { type: "static", value: "f/aws_oidc/aging_creds" }, force: { type: "static", value: true } } } },
          // Stands in for an hour of work: the session is revoked at STS and its saved expiry is a minute away.
          { id: "age", value: { type: "rawscript", language: "bun", input_transforms: { sts: { type: "static", value: stack.sts.url } }, content: `
import wmill from "windmill-client";
export async function main(sts: string) {
  const path = "f/aws_oidc/aging_creds";
  const value = await wmill.ResourceService.getResourceValue({ workspace: process.env.WM_WORKSPACE!, path }) as Record<string, unknown>;
  await fetch(sts + "/_local/sessions/" + value.awsAccessKeyId + "/expire", { method: "POST" });
  await wmill.setResource({ ...value, expiration: new Date(Date.now() + 60_000).toISOString() }, path);
  return "aged";
}` } },
          { id: "list", value: { type: "script", path: "f/aws_oidc/s3_list_objects", input_transforms: {
            credentials: { type: "static", value: "$res:f/aws_oidc/aging_creds" }, bucket: { type: "static", value: DEMO_BUCKET }, prefix: { type: "static", value: "faults/" } } } },
        ],
      },
      schema: { $schema: "https://json-schema.org/draft/2020-12/schema", type: "object", properties: {}, required: [] },
    };
    const created = await fetch(`${stack.windmill.url}/api/w/${stack.windmill.workspace}/flows/create`, {
      method: "POST", headers: { authorization: `Bearer ${stack.windmill.adminToken}`, "content-type": "application/json" }, body: JSON.stringify(flow),
    });
    expect(created.ok).toBe(true);
    const before = await stsCalls();
    const res = await fetch(`${stack.windmill.url}/api/w/${stack.windmill.workspace}/jobs/run_wait_result/f/${flow.path}`, {
      method: "POST", headers: { authorization: `Bearer ${stack.windmill.adminToken}`, "content-type": "application/json" }, body: "{}",
    });
    const body = await res.json();
    expect(res.status).toBe(200);
    expect(body).toHaveLength(3);
    // One mint by assume_role, one refresh by the list step.
    expect(await stsCalls()).toBe(before + 2);
  });
});
