// The bundle as people use it: flows pushed with the real wmill CLI, run through their
// webhooks (sync and async), a scoped webhook token, a schedule firing, and one STS call
// per flow run however many parallel iterations it has.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { S3Client } from "@aws-sdk/client-s3";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import wmill from "windmill-client";
import { assumeRoleAndSave } from "../../f/aws_oidc/lib/assumeRoleAndSave.ts";
import { s3Client } from "../../f/aws_oidc/lib/s3.ts";
import { DATABASE_RESOURCE, DEMO_BUCKET, DEMO_TABLE, ROLE_RESOURCE, sampleCsv, setUpWorkspace, uploadSampleCsvs } from "../../local/demo/demoData.ts";
import { auditLeaksThenClose } from "../helpers/leaks.ts";
import { ACCOUNT_ID, DEMO_ROLE_ARN, REGION, startStack, trustPolicy, type Stack } from "../helpers/testStack.ts";

let stack: Stack;
let s3: S3Client;
const quiet = () => {};

beforeAll(async () => {
  stack = await startStack({ s3: true, rds: true });
  await setUpWorkspace(stack);
  stack.actAsJob("f/aws_oidc/flow_test_setup");
  await assumeRoleAndSave({ roleArn: DEMO_ROLE_ARN, region: REGION, saveTo: "f/aws_oidc/setup_creds" }, quiet);
  s3 = (await s3Client("f/aws_oidc/setup_creds")).s3;
});
afterAll(async () => {
  await auditLeaksThenClose(stack);
});

async function webhook(kind: "p" | "f", path: string, args: Record<string, unknown>, token = stack.windmill.adminToken, mode: "run_wait_result" | "run" = "run_wait_result") {
  const res = await fetch(`${stack.windmill.url}/api/w/${stack.windmill.workspace}/jobs/${mode}/${kind}/${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(args),
  });
  const text = await res.text();
  return { status: res.status, body: text.startsWith("{") || text.startsWith("[") ? JSON.parse(text) : text };
}

const assumeCalls = async () => (await stack.stsStats()).calls.AssumeRoleWithWebIdentity ?? 0;
const loadArgs = (prefix: string, table = DEMO_TABLE) => ({
  aws_oidc: `$res:${ROLE_RESOURCE}`, database: `$res:${DATABASE_RESOURCE}`, bucket: DEMO_BUCKET, prefix, table,
  credentials_path: `f/aws_oidc/creds_${prefix.replace(/\W/g, "")}`,
});

describe("s3_csv_to_rds", () => {
  test("loads every CSV under the prefix with parallel iterations and one STS call", async () => {
    const rows = await uploadSampleCsvs(s3, DEMO_BUCKET, "orders/2026-11/", 6, 250);
    const before = await assumeCalls();
    const { status, body } = await webhook("f", "f/aws_oidc/s3_csv_to_rds", loadArgs("orders/2026-11/"));
    expect(status).toBe(200);
    expect(body).toHaveLength(7);
    expect(body.at(-1)).toMatchObject({ object: "TOTAL (6 of 6 loaded)", status: "loaded", rows: 1500, error: null });
    expect(body[0]).toMatchObject({ object: `s3://${DEMO_BUCKET}/orders/2026-11/part-000.csv`, status: "loaded", rows: 250 });
    expect(await assumeCalls()).toBe(before + 1);
    const count = await stack.runScript("f/aws_oidc/rds_query", { credentials: "$res:f/aws_oidc/setup_creds", database: `$res:${DATABASE_RESOURCE}`, sql: `select count(*)::int as n, count(distinct order_id)::int as ids from ${DEMO_TABLE}` });
    expect(count.result).toEqual([{ n: rows, ids: rows }]);
  });

  test("every step ran as its own job, with the flow path in its OIDC subject", async () => {
    const flow = stack.windmill.jobs.findLast((j) => j.kind === "flow" && j.path === "f/aws_oidc/s3_csv_to_rds")!;
    const steps = stack.windmill.jobs.filter((j) => j.parentJobId === flow.id);
    expect(steps.map((s) => s.stepId)).toEqual(expect.arrayContaining(["assume_role", "list_csv", "plan", "load_each", "summary"]));
    for (const step of steps) expect(step.flowPath).toBe("f/aws_oidc/s3_csv_to_rds");
    // Each parallel iteration is a flow job at <flow>/forloop-<i> (worker_flow.rs); its load step is its child.
    const iterations = steps.filter((s) => s.stepId === "load_each");
    expect(iterations.map((i) => i.path).sort()).toEqual([0, 1, 2, 3, 4, 5].map((i) => `f/aws_oidc/s3_csv_to_rds/forloop-${i}`));
    const loads = stack.windmill.jobs.filter((j) => iterations.some((i) => i.id === j.parentJobId));
    expect(loads.map((l) => l.stepId)).toEqual(["load", "load", "load", "load", "load", "load"]);
    for (const load of loads) expect(load.flowPath).toBe(iterations.find((i) => i.id === load.parentJobId)!.path);
    expect(new Set([...steps, ...loads].map((s) => s.id)).size).toBe(steps.length + loads.length);
    const role = await stack.addRole({
      roleName: "flow-only",
      maxSessionDuration: 3600,
      assumeRolePolicyDocument: trustPolicy(stack.provider, ACCOUNT_ID, `*::*::f/aws_oidc/s3_csv_to_rds::${stack.windmill.workspace}`),
      permissionPolicies: (await stack.config()).roles[0].permissionPolicies,
    });
    await wmill.ResourceService.createResource({ workspace: stack.windmill.workspace, requestBody: { path: "f/aws_oidc/flow_only_role", resource_type: "aws_oidc", value: { roleArn: role, region: REGION } } });
    await uploadSampleCsvs(s3, DEMO_BUCKET, "flowonly/", 1, 10);
    const viaFlow = await webhook("f", "f/aws_oidc/s3_csv_to_rds", { ...loadArgs("flowonly/", "orders_flow_only"), aws_oidc: "$res:f/aws_oidc/flow_only_role" });
    // The role trusted the flow (the table is missing, so the load itself fails later, after STS let it in).
    expect(JSON.stringify(viaFlow.body)).not.toContain("AccessDenied");
    const alone = await webhook("p", "f/aws_oidc/assume_role", { aws_oidc: "$res:f/aws_oidc/flow_only_role", save_to: "f/aws_oidc/creds_alone" });
    expect(alone.body.error.message).toContain("AccessDenied");
  });

  test("a bad object fails the flow; the failure module names it and why; the others stay loaded", async () => {
    await stack.rds!.adminSql(`create table orders_bad (like ${DEMO_TABLE}); grant select, insert on orders_bad to app_user`);
    await uploadSampleCsvs(s3, DEMO_BUCKET, "mixed/", 2, 20);
    await s3.send(new PutObjectCommand({ Bucket: DEMO_BUCKET, Key: "mixed/zz-broken.csv", Body: "order_id,customer\n1,only two columns\n" }));
    const { status, body } = await webhook("f", "f/aws_oidc/s3_csv_to_rds", loadArgs("mixed/", "orders_bad"));
    expect(status).toBe(422);
    expect(body).toMatchObject({ failed_step: "summary", error: "LoadFailures" });
    expect(body.message).toContain(`1 of 3 objects failed to load`);
    expect(body.message).toContain(`s3://${DEMO_BUCKET}/mixed/zz-broken.csv`);
    expect(body.message).toContain("22P04");
    const count = await stack.runScript("f/aws_oidc/rds_query", { credentials: "$res:f/aws_oidc/setup_creds", database: `$res:${DATABASE_RESOURCE}`, sql: "select count(*)::int as n from orders_bad" });
    expect(count.result).toEqual([{ n: 40 }]);
  });

  test("an async webhook returns a job id whose result arrives later", async () => {
    await uploadSampleCsvs(s3, DEMO_BUCKET, "async/", 2, 5);
    await stack.rds!.adminSql(`create table orders_async (like ${DEMO_TABLE}); grant select, insert on orders_async to app_user`);
    const started = await webhook("f", "f/aws_oidc/s3_csv_to_rds", loadArgs("async/", "orders_async"), stack.windmill.adminToken, "run");
    expect(started.status).toBe(201);
    const id = started.body as string;
    let result: { completed: boolean; success?: boolean; result?: { object: string }[] } = { completed: false };
    // Polled until the job completes, however long a loaded machine takes: the test's own timeout bounds it.
    while (!result.completed) {
      await Bun.sleep(250);
      // jobs.rs get_completed_job_result_maybe: without a token only anonymous users' jobs are shown.
      result = await (await fetch(`${stack.windmill.url}/api/w/${stack.windmill.workspace}/jobs_u/completed/get_result_maybe/${id}`, {
        headers: { authorization: `Bearer ${stack.windmill.adminToken}` },
      })).json();
    }
    expect(result.success).toBe(true);
    expect(result.result!.at(-1)!.object).toBe("TOTAL (2 of 2 loaded)");
  });
});

describe("rds_to_s3_export", () => {
  test("exports a query and returns a working presigned link, with one STS call", async () => {
    const before = await assumeCalls();
    const { status, body } = await webhook("f", "f/aws_oidc/rds_to_s3_export", {
      aws_oidc: `$res:${ROLE_RESOURCE}`, database: `$res:${DATABASE_RESOURCE}`, bucket: DEMO_BUCKET, key: "exports/gb.csv",
      query: `select order_id, customer from ${DEMO_TABLE} where country = 'GB' order by order_id`, link_expires_in: "30m", credentials_path: "f/aws_oidc/creds_export",
    });
    expect(status).toBe(200);
    expect(body).toMatchObject({ method: "GET", expires_in: "30m" });
    expect(await assumeCalls()).toBe(before + 1);
    const csv = await (await fetch(body.url)).text();
    expect(csv.split("\n")[0]).toBe("order_id,customer");
    expect(csv.split("\n").filter(Boolean).length).toBeGreaterThan(10);
  });
});

describe("webhook tokens and schedules", () => {
  test("a token scoped to one flow runs it and is refused everywhere else", async () => {
    const res = await fetch(`${stack.windmill.url}/api/users/tokens/create`, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.windmill.adminToken}`, "content-type": "application/json" },
      body: JSON.stringify({ label: "webhook", scopes: ["jobs:run:flows:f/aws_oidc/s3_csv_to_rds"] }),
    });
    const token = await res.text();
    await uploadSampleCsvs(s3, DEMO_BUCKET, "scoped/", 1, 3);
    await stack.rds!.adminSql(`create table orders_scoped (like ${DEMO_TABLE}); grant select, insert on orders_scoped to app_user`);
    const ok = await webhook("f", "f/aws_oidc/s3_csv_to_rds", loadArgs("scoped/", "orders_scoped"), token);
    expect(ok.status).toBe(200);
    for (const [kind, path] of [["f", "f/aws_oidc/rds_to_s3_export"], ["p", "f/aws_oidc/assume_role"]] as const) {
      const refused = await webhook(kind, path, {}, token);
      expect(refused.status).toBe(403);
      expect(String(refused.body)).toContain("scoped to jobs:run:flows:f/aws_oidc/s3_csv_to_rds");
    }
    const read = await fetch(`${stack.windmill.url}/api/w/${stack.windmill.workspace}/resources/get_value_interpolated/${ROLE_RESOURCE}`, { headers: { authorization: `Bearer ${token}` } });
    expect(read.status).toBe(403);
  });

  test("a pushed schedule fires on its cron and runs as a scheduled job", async () => {
    const create = await fetch(`${stack.windmill.url}/api/w/${stack.windmill.workspace}/schedules/create`, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.windmill.adminToken}`, "content-type": "application/json" },
      body: JSON.stringify({
        path: "f/aws_oidc/refresh_every_second", schedule: "* * * * * *", timezone: "Europe/Paris", script_path: "f/aws_oidc/assume_role",
        is_flow: false, enabled: true, no_flow_overlap: true, args: { aws_oidc: `$res:${ROLE_RESOURCE}`, save_to: "f/aws_oidc/creds_scheduled" },
      }),
    });
    expect(create.ok).toBe(true);
    const scheduled = () => stack.windmill.jobs.filter((j) => j.schedulePath === "f/aws_oidc/refresh_every_second" && j.status === "success");
    // Two runs, however long the ticks take to run on a loaded machine (a tick skipped while the last run goes on is not a run).
    while (scheduled().length < 2) await Bun.sleep(200);
    await fetch(`${stack.windmill.url}/api/w/${stack.windmill.workspace}/schedules/setenabled/f/aws_oidc/refresh_every_second`, {
      method: "POST", headers: { authorization: `Bearer ${stack.windmill.adminToken}`, "content-type": "application/json" }, body: JSON.stringify({ enabled: false }),
    });
    const runs = scheduled();
    expect(runs.length).toBeGreaterThanOrEqual(2);
    // The first run minted; later ones found the saved session fresh and skipped STS.
    expect((runs[0].result as { reused_saved_session: boolean }).reused_saved_session).toBe(false);
    expect((runs[1].result as { reused_saved_session: boolean }).reused_saved_session).toBe(true);
  });

  test("a schedule with a bad cron is refused with the expected format", async () => {
    const res = await fetch(`${stack.windmill.url}/api/w/${stack.windmill.workspace}/schedules/create`, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.windmill.adminToken}`, "content-type": "application/json" },
      body: JSON.stringify({ path: "f/aws_oidc/bad_cron", schedule: "*/10 * * * *", timezone: "Etc/UTC", script_path: "f/aws_oidc/assume_role", is_flow: false }),
    });
    expect(res.status).toBe(400);
    expect(await res.text()).toContain("6 fields, seconds first");
  });
});

test("sample CSVs carry the awkward cases", () => {
  const csv = sampleCsv(1, 14);
  expect(csv).toContain('"Grace ""Amazing"" Hopper"');
  expect(csv).toContain('"gift wrap\nleave at door"');
  expect(csv).toMatch(/,,/);
});
