// Every optional main parameter treats null as not given. Windmill passes null for a flow
// input that was not sent (windmill-worker/src/js_eval.rs: `flow_input.x` of a missing key is
// `x ?? null`, which worker_flow.rs transform_input hands the step), and its Bun wrapper calls
// main with that null, so a TypeScript default would not apply. Each script runs twice as a
// Windmill job: with an explicit null for every optional parameter its .script.yaml lists,
// and with them left out; the two results must be the same.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { s3Client } from "../../f/aws_oidc/lib/s3.ts";
import { DATABASE_RESOURCE, DEMO_BUCKET, DEMO_TABLE, ROLE_RESOURCE, setUpWorkspace, uploadSampleCsvs } from "../../local/demo/demoData.ts";
import { auditLeaksThenClose } from "../helpers/leaks.ts";
import { ACCOUNT_ID, REPO_ROOT, startStack, type Stack } from "../helpers/testStack.ts";

const CREDS = "f/aws_oidc/null_args_creds";
const PREFIX = "null-args/";

let stack: Stack;

/**
 * Fields that differ between two runs for reasons other than the arguments and the clock: a
 * new STS session (its key id, whether the saved one was reused), an error's stack (it names
 * the job's temp folder). Their values are replaced, so that each is still present in both.
 */
const PER_RUN = new Set(["access_key_id", "reused_saved_session", "sts_calls", "stack"]);

/** Elapsed time a step measured with the clock. */
const ELAPSED = new Set(["seconds"]);

/** A job id, whole or as the session-name suffix assume_role and the doctor derive from it. */
const JOB_ID = /[0-9a-f]{8}-?[0-9a-f]{4}(-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12})?/g;

/** A time read from the clock (Date.toISOString: expirations, LastModified, "until …"). */
const TIMESTAMP = /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z/g;

/** What is left of a session ("59m57s") ticks between two runs; a whole duration ("1h") does not. */
const REMAINING_TIME = /^(\d+h)?\d+m\d+s$/;

/**
 * A presigned URL's signing time, its lifetime (clamped to the session's time left) and the
 * signature over both (SigV4 query parameters).
 */
const SIGNING_TIME = /(X-Amz-Date=)\d{8}T\d{6}Z|(X-Amz-Credential=[^&%]+(?:%2F|\/))\d{8}|(X-Amz-Signature=)[0-9a-f]{64}|(X-Amz-Expires=)\d+/g;

function normalizedText(text: string, run: string): string {
  if (REMAINING_TIME.test(text)) return "<time left>";
  return text
    .replace(SIGNING_TIME, (_, date = "", credential = "", signature = "", expires = "") => `${date}${credential}${signature}${expires}<signed now>`)
    .replace(TIMESTAMP, "<time>")
    .replaceAll(run, "<run>")
    .replace(JOB_ID, "<job>");
}

/** The value with everything the clock or the run decides replaced by a placeholder; the rest kept exactly. */
function normalized(value: unknown, run: string): unknown {
  if (typeof value === "string") return normalizedText(value, run);
  if (Array.isArray(value)) return value.map((v) => normalized(v, run));
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => {
      if (PER_RUN.has(k)) return [k, v === null ? null : "<per run>"];
      if (ELAPSED.has(k) && typeof v === "number") return [k, "<elapsed>"];
      return [k, normalized(v, run)];
    }));
  }
  return value;
}

function optionalParameters(script: string): string[] {
  const meta = parse(readFileSync(join(REPO_ROOT, `${script}.script.yaml`), "utf8")) as { schema: { properties: Record<string, unknown>; required?: string[] } };
  return Object.keys(meta.schema.properties).filter((name) => !(meta.schema.required ?? []).includes(name));
}

/** Scripts whose defaults make the call fail on purpose: both runs must fail alike. */
const FAILS_BY_DEFAULT = new Set([
  "f/aws_oidc/s3_delete_objects", // neither keys nor prefix: refused, rather than deleting a whole bucket
  "f/aws_oidc/summarize_loads", // fail_on_failures defaults to true, and the one load failed
]);

/** Required arguments per script; `run` makes a write's target unique to one of the two runs. */
const REQUIRED: Record<string, (run: string) => Record<string, unknown>> = {
  "f/aws_oidc/assume_role": () => ({ aws_oidc: `$res:${ROLE_RESOURCE}` }),
  "f/aws_oidc/whoami": () => ({ credentials: `$res:${CREDS}` }),
  "f/aws_oidc/s3_list_objects": () => ({ credentials: `$res:${CREDS}`, bucket: DEMO_BUCKET }),
  "f/aws_oidc/s3_get_object": () => ({ credentials: `$res:${CREDS}`, bucket: DEMO_BUCKET, key: `${PREFIX}part-000.csv` }),
  "f/aws_oidc/s3_presign_url": () => ({ credentials: `$res:${CREDS}`, bucket: DEMO_BUCKET, key: `${PREFIX}part-000.csv` }),
  "f/aws_oidc/s3_put_object": (run) => ({ credentials: `$res:${CREDS}`, bucket: DEMO_BUCKET, key: `out/${run}.txt`, content: "hello" }),
  "f/aws_oidc/s3_copy_object": (run) => ({ credentials: `$res:${CREDS}`, source_bucket: DEMO_BUCKET, source_key: `${PREFIX}part-000.csv`, bucket: DEMO_BUCKET, key: `copies/${run}.csv` }),
  "f/aws_oidc/s3_delete_objects": () => ({ credentials: `$res:${CREDS}`, bucket: DEMO_BUCKET }),
  "f/aws_oidc/check_csv_load": (run) => ({ credentials: `$res:${CREDS}`, database: `$res:${DATABASE_RESOURCE}`, bucket: DEMO_BUCKET, keys: [`${PREFIX}part-000.csv`], table: `orders_${run}` }),
  "f/aws_oidc/plan_csv_loads": () => ({ credentials: `$res:${CREDS}`, bucket: DEMO_BUCKET, keys: [`${PREFIX}part-000.csv`] }),
  "f/aws_oidc/rds_query": () => ({ credentials: `$res:${CREDS}`, database: `$res:${DATABASE_RESOURCE}`, sql: `select count(*)::int as n from ${DEMO_TABLE}` }),
  "f/aws_oidc/rds_export_to_s3": (run) => ({ credentials: `$res:${CREDS}`, database: `$res:${DATABASE_RESOURCE}`, query: "select 1 as one", bucket: DEMO_BUCKET, key: `exports/${run}.csv` }),
  "f/aws_oidc/rds_load_csv_from_s3": (run) => ({ credentials: `$res:${CREDS}`, database: `$res:${DATABASE_RESOURCE}`, bucket: DEMO_BUCKET, key: `${PREFIX}part-000.csv`, table: `orders_${run}` }),
  "f/aws_oidc/summarize_loads": () => ({ keys: ["a.csv"], loads: [{ error: { name: "Error", message: "boom" } }] }),
  // A role needs some permission: the bucket is given, every other optional input is null.
  "f/aws_oidc/trust_policy": () => ({ account_id: ACCOUNT_ID, windmill_base_url: "https://windmill.example.com", workspace: "prod", bucket: "data-lake" }),
  "f/aws_oidc/rds_iam_postgresql_resource": () => ({ credentials: `$res:${CREDS}`, database: `$res:${DATABASE_RESOURCE}` }),
  "f/aws_oidc/doctor": () => ({ aws_oidc: `$res:${ROLE_RESOURCE}` }),
  "u/alice/bucket_usage": () => ({ credentials: `$res:${CREDS}`, bucket: DEMO_BUCKET }),
};

/** Every script of the workspace whose schema has an optional parameter. */
function scriptsWithOptionalParameters(): string[] {
  const found: string[] = [];
  for (const folder of ["f/aws_oidc", "u/alice"]) {
    for (const file of readdirSync(join(REPO_ROOT, folder))) {
      const script = `${folder}/${file.replace(/\.script\.yaml$/, "")}`;
      if (file.endsWith(".script.yaml") && existsSync(join(REPO_ROOT, `${script}.ts`)) && optionalParameters(script).length > 0) found.push(script);
    }
  }
  return found.sort();
}

beforeAll(async () => {
  stack = await startStack({ s3: true, rds: true });
  await setUpWorkspace(stack);
  await stack.runScript("f/aws_oidc/assume_role", { aws_oidc: `$res:${ROLE_RESOURCE}`, save_to: CREDS });
  stack.actAsJob("f/aws_oidc/null_args_setup");
  await uploadSampleCsvs((await s3Client(CREDS)).s3, DEMO_BUCKET, PREFIX, 1, 20);
  for (const run of ["nulls", "omitted"]) {
    await stack.rds!.adminSql(`create table orders_${run} (like ${DEMO_TABLE}); grant select, insert on orders_${run} to app_user`);
  }
});
afterAll(async () => {
  await auditLeaksThenClose(stack);
});

describe("an explicit null for every optional parameter gives the same result as leaving them out", () => {
  test("every script with optional parameters has a case here", () => {
    expect(Object.keys(REQUIRED).sort()).toEqual(scriptsWithOptionalParameters());
  });

  test.each(Object.keys(REQUIRED))("%s", async (script) => {
    const nulls = Object.fromEntries(optionalParameters(script).map((name) => [name, null]));
    const withNulls = await stack.runScript(script, { ...nulls, ...REQUIRED[script]("nulls") });
    const omitted = await stack.runScript(script, REQUIRED[script]("omitted"));
    expect(omitted.status).toBe(FAILS_BY_DEFAULT.has(script) ? 422 : 200);
    expect(withNulls.status).toBe(omitted.status);
    expect(normalized(withNulls.result, "nulls")).toEqual(normalized(omitted.result, "omitted"));
  });
});
