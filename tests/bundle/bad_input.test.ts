// Bad input across every script and flow, run as Windmill jobs the way a person would
// submit it: each refusal names the input (or the setting) and says how to fix it, none is
// a bare stack trace, none carries a secret (the leak audit runs after the file).
import { afterAll, beforeAll, expect, test } from "bun:test";
import { CreateBucketCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import wmill from "windmill-client";
import { assumeRoleAndSave } from "../../f/aws_oidc/lib/assumeRoleAndSave.ts";
import { s3Client } from "../../f/aws_oidc/lib/s3.ts";
import { DATABASE_RESOURCE, ROLE_RESOURCE, setUpWorkspace } from "../../local/demo/demoData.ts";
import { auditLeaksThenClose } from "../helpers/leaks.ts";
import { DEMO_ROLE_ARN, REGION, startStack, type Stack } from "../helpers/testStack.ts";

const CREDS = "$res:f/aws_oidc/bad_input_creds";
const DB = `$res:${DATABASE_RESOURCE}`;
const ARN = DEMO_ROLE_ARN;
let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ s3: true, rds: true });
  await setUpWorkspace(stack);
  stack.actAsJob("f/aws_oidc/bad_input_setup");
  await assumeRoleAndSave({ roleArn: ARN, region: REGION, saveTo: "f/aws_oidc/bad_input_creds" }, () => {});
  const { s3 } = await s3Client("f/aws_oidc/bad_input_creds");
  await s3.send(new CreateBucketCommand({ Bucket: "bad-input" }));
  await s3.send(new PutObjectCommand({ Bucket: "bad-input", Key: "big.txt", Body: "x".repeat(4096) }));
  await s3.send(new PutObjectCommand({ Bucket: "bad-input", Key: "three-cols.csv", Body: "order_id,customer,country\n1,a,b\n" }));
  // A table three-cols.csv fits, so a flow over the bucket passes its check step and reaches the plan.
  await stack.rds!.adminSql("create table three_cols (order_id bigint, customer text, country text); grant select, insert on three_cols to app_user");
  await wmill.ResourceService.createResource({ workspace: stack.windmill.workspace, requestBody: { path: "f/aws_oidc/a_role_not_creds", resource_type: "aws_oidc", value: { roleArn: ARN, region: REGION } } });
  // Windmill stores a resource without checking its value against the type's schema (windmill-store resources.rs
  // create_resource): each script that reads one must refuse a wrong shape itself.
  for (const [path, resource_type, value] of [
    ["f/aws_oidc/db_wrong_shape", "aws_rds_iam_postgres", { hostname: "db.example.com", port: 5432 }],
    ["f/aws_oidc/role_wrong_shape", "aws_oidc", { arn: ARN }],
    ["f/aws_oidc/creds_wrong_shape", "aws_sts_credentials", { accessKeyId: "AKIA", region: REGION }],
  ] as const) {
    await wmill.ResourceService.createResource({ workspace: stack.windmill.workspace, requestBody: { path, resource_type, value } });
  }
});
afterAll(async () => {
  await auditLeaksThenClose(stack);
});

type Case = [name: string, kind: "p" | "f", path: string, args: Record<string, unknown>, expected: RegExp];
const assume = (args: Record<string, unknown>) => ({ role_arn: ARN, region: REGION, save_to: "f/aws_oidc/bad_creds", ...args });
const s3 = (args: Record<string, unknown>) => ({ credentials: CREDS, bucket: "bad-input", ...args });
const rds = (args: Record<string, unknown>) => ({ credentials: CREDS, database: DB, ...args });

const CASES: Case[] = [
  ["ARN of a user", "p", "f/aws_oidc/assume_role", assume({ role_arn: "arn:aws:iam::123456789012:user/bob" }), /Invalid input "role_arn"[\s\S]*not an IAM role ARN/],
  ["ARN with a short account", "p", "f/aws_oidc/assume_role", assume({ role_arn: "arn:aws:iam::1234:role/x" }), /Invalid input "role_arn"/],
  ["no role at all", "p", "f/aws_oidc/assume_role", { save_to: "f/aws_oidc/x" }, /Invalid input "role_arn"[\s\S]*Pick an aws_oidc resource/],
  ["region with underscores", "p", "f/aws_oidc/assume_role", assume({ region: "us_east_1" }), /Invalid input "region"/],
  ["session name with a space", "p", "f/aws_oidc/assume_role", assume({ session_name: "my session" }), /Invalid input "session_name"/],
  ["session name of 65 chars", "p", "f/aws_oidc/assume_role", assume({ session_name: "s".repeat(65) }), /Invalid input "session_name"/],
  ["duration in words", "p", "f/aws_oidc/assume_role", assume({ duration: "an hour" }), /Invalid input "duration"[\s\S]*1h30m/],
  ["duration under 15 minutes", "p", "f/aws_oidc/assume_role", assume({ duration: "10m" }), /Invalid input "duration"[\s\S]*out of range/],
  ["duration over 12 hours", "p", "f/aws_oidc/assume_role", assume({ duration: "13h" }), /Invalid input "duration"/],
  ["session policy not JSON", "p", "f/aws_oidc/assume_role", assume({ session_policy: "{Statement:" }), /Invalid input "session_policy"[\s\S]*not valid JSON/],
  ["session policy without statements", "p", "f/aws_oidc/assume_role", assume({ session_policy: "{}" }), /Invalid input "session_policy"[\s\S]*no Statement/],
  ["session policy over 2048 chars", "p", "f/aws_oidc/assume_role", assume({ session_policy: JSON.stringify({ Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "s3:GetObject", Resource: Array.from({ length: 150 }, (_, i) => `arn:aws:s3:::bucket-${i}/*`) }] }) }), /Invalid input "session_policy"[\s\S]*2048/],
  ["session policy STS finds malformed", "p", "f/aws_oidc/assume_role", assume({ session_policy: JSON.stringify({ Version: "2012-10-17", Statement: [{ Effect: "Maybe", Action: "s3:*", Resource: "*" }] }) }), /MalformedPolicyDocument[\s\S]*Fix: the session_policy input/],
  ["11 policy ARNs", "p", "f/aws_oidc/assume_role", assume({ policy_arns: Array.from({ length: 11 }, (_, i) => `arn:aws:iam::aws:policy/P${i}`) }), /Invalid input "policy_arns"[\s\S]*at most 10/],
  ["a policy ARN that is a role", "p", "f/aws_oidc/assume_role", assume({ policy_arns: ["arn:aws:iam::123456789012:role/x"] }), /Invalid input "policy_arns"/],
  ["external id without chained role", "p", "f/aws_oidc/assume_role", assume({ chain_external_id: "abc" }), /Invalid input "chain_external_id"/],
  ["save_to not a path", "p", "f/aws_oidc/assume_role", assume({ save_to: "creds" }), /Invalid input "save_to"/],
  ["save_to holding another type", "p", "f/aws_oidc/assume_role", assume({ save_to: "f/aws_oidc/a_role_not_creds" }), /Invalid input "save_to"[\s\S]*aws_oidc resource/],
  ["min_remaining below 5 minutes", "p", "f/aws_oidc/assume_role", assume({ min_remaining: "1m" }), /Invalid input "min_remaining"/],
  ["a role that does not trust the workspace", "p", "f/aws_oidc/assume_role", assume({ role_arn: "arn:aws:iam::123456789012:role/no-such-role" }), /AccessDenied[\s\S]*Fix: First check the role ARN arn:aws:iam::123456789012:role\/no-such-role: role no-such-role must exist in account 123456789012[\s\S]*Then the role's trust policy/],
  ["whoami with a resource of the wrong type", "p", "f/aws_oidc/whoami", { credentials: "$res:f/aws_oidc/a_role_not_creds" }, /Invalid input "credentials"[\s\S]*not an aws_sts_credentials resource/],
  ["a credentials resource of the wrong shape", "p", "f/aws_oidc/s3_list_objects", s3({ credentials: "$res:f/aws_oidc/creds_wrong_shape" }), /Invalid input "credentials"[\s\S]*not an aws_sts_credentials resource \(missing awsAccessKeyId[\s\S]*Pick a resource saved by f\/aws_oidc\/assume_role/],
  ["a database resource of the wrong shape", "p", "f/aws_oidc/rds_query", rds({ database: "$res:f/aws_oidc/db_wrong_shape", sql: "select 1" }), /Invalid input "database"[\s\S]*no host[\s\S]*Pick an aws_rds_iam_postgres resource/],
  ["a database resource of the wrong shape for the IAM resource", "p", "f/aws_oidc/rds_iam_postgresql_resource", { credentials: CREDS, database: "$res:f/aws_oidc/db_wrong_shape", save_to: "f/aws_oidc/never_saved_pg" }, /Invalid input "database"[\s\S]*no host[\s\S]*Pick an aws_rds_iam_postgres resource/],
  ["a role resource of the wrong shape", "p", "f/aws_oidc/assume_role", { aws_oidc: "$res:f/aws_oidc/role_wrong_shape", save_to: "f/aws_oidc/x" }, /Invalid input "role_arn"[\s\S]*Pick an aws_oidc resource/],
  ["whoami with a missing resource", "p", "f/aws_oidc/whoami", { credentials: "f/aws_oidc/nothing_here" }, /Invalid input "credentials"[\s\S]*no resource at f\/aws_oidc\/nothing_here/],
  ["bucket given as a URL", "p", "f/aws_oidc/s3_list_objects", s3({ bucket: "s3://bad-input/x" }), /Invalid input "bucket"[\s\S]*bucket name alone: bad-input/],
  ["bucket with capitals", "p", "f/aws_oidc/s3_list_objects", s3({ bucket: "Bad_Input" }), /Invalid input "bucket"/],
  ["bucket that does not exist", "p", "f/aws_oidc/s3_list_objects", s3({ bucket: "no-such-bucket-here" }), /NoSuchBucket[\s\S]*Fix:/],
  ["negative limit", "p", "f/aws_oidc/s3_list_objects", s3({ limit: -1 }), /Invalid input "limit"/],
  ["empty key", "p", "f/aws_oidc/s3_get_object", s3({ key: "" }), /Invalid input "key"[\s\S]*empty/],
  ["key over 1024 bytes", "p", "f/aws_oidc/s3_get_object", s3({ key: "é".repeat(600) }), /Invalid input "key"[\s\S]*1024 bytes/],
  ["missing key", "p", "f/aws_oidc/s3_get_object", s3({ key: "not/there.txt" }), /NoSuchKey[\s\S]*Fix:/],
  ["range without bytes=", "p", "f/aws_oidc/s3_get_object", s3({ key: "big.txt", range: "0-10" }), /Invalid input "range"/],
  ["object over max_bytes", "p", "f/aws_oidc/s3_get_object", s3({ key: "big.txt", max_bytes: 100 }), /Invalid input "max_bytes"[\s\S]*4096 bytes/],
  ["JSON read of a text object", "p", "f/aws_oidc/s3_get_object", s3({ key: "big.txt", as: "json" }), /Invalid input "as"[\s\S]*not JSON/],
  ["content not base64", "p", "f/aws_oidc/s3_put_object", s3({ key: "a.bin", content: "%%%", encoding: "base64" }), /Invalid input "content"[\s\S]*not base64/],
  ["content not JSON", "p", "f/aws_oidc/s3_put_object", s3({ key: "a.json", content: "{oops", encoding: "json" }), /Invalid input "content"[\s\S]*not valid JSON/],
  ["KMS key without aws:kms", "p", "f/aws_oidc/s3_put_object", s3({ key: "a.txt", content: "x", kms_key_id: "alias/x" }), /Invalid input "kms_key_id"/],
  ["unknown SSE mode", "p", "f/aws_oidc/s3_put_object", s3({ key: "a.txt", content: "x", sse: "rot13" }), /Invalid input "sse"/],
  ["delete with neither keys nor prefix", "p", "f/aws_oidc/s3_delete_objects", s3({}), /Invalid input "keys"/],
  ["copy from a bad source bucket", "p", "f/aws_oidc/s3_copy_object", s3({ source_bucket: "X", source_key: "a", key: "b" }), /Invalid input "source_bucket"/],
  ["presign for more than 7 days", "p", "f/aws_oidc/s3_presign_url", s3({ key: "big.txt", expires_in: "8d" }), /Invalid input "expires_in"[\s\S]*out of range/],
  ["empty SQL", "p", "f/aws_oidc/rds_query", rds({ sql: "  " }), /Invalid input "sql"/],
  ["SQL syntax error", "p", "f/aws_oidc/rds_query", rds({ sql: "selec 1" }), /42601[\s\S]*Fix:/],
  ["args not a list", "p", "f/aws_oidc/rds_query", rds({ sql: "select $1", args: "1" }), /Invalid input "args"/],
  ["zero row limit", "p", "f/aws_oidc/rds_query", rds({ sql: "select 1", row_limit: 0 }), /Invalid input "row_limit"/],
  ["bad statement timeout", "p", "f/aws_oidc/rds_query", rds({ sql: "select 1", statement_timeout: "soon" }), /Invalid input "statement_timeout"/],
  ["TLS disabled", "p", "f/aws_oidc/rds_query", { credentials: CREDS, database: { host: "127.0.0.1", port: 5432, database: "postgres", user: "app_user", tlsMode: "disable" }, sql: "select 1" }, /Invalid input "database.tlsMode"[\s\S]*always needs TLS/],
  ["verify-full without a CA", "p", "f/aws_oidc/rds_query", { credentials: CREDS, database: { host: "127.0.0.1", port: 5432, user: "app_user" }, sql: "select 1" }, /Invalid input "database.caCert"/],
  ["a database resource with no host", "p", "f/aws_oidc/rds_query", { credentials: CREDS, database: {}, sql: "select 1" }, /Invalid input "database"[\s\S]*no host/],
  ["a table name that is SQL", "p", "f/aws_oidc/rds_load_csv_from_s3", rds({ bucket: "bad-input", key: "three-cols.csv", table: "orders; drop table orders" }), /Invalid input "table"/],
  ["a two-character delimiter", "p", "f/aws_oidc/rds_load_csv_from_s3", rds({ bucket: "bad-input", key: "three-cols.csv", table: "orders", delimiter: ";;" }), /Invalid input "delimiter"/],
  ["CSV with the wrong column count", "p", "f/aws_oidc/rds_load_csv_from_s3", rds({ bucket: "bad-input", key: "three-cols.csv", table: "orders", ledger_table: "" }), /22P04|missing data[\s\S]*Fix:/],
  ["a table that does not exist", "p", "f/aws_oidc/rds_load_csv_from_s3", rds({ bucket: "bad-input", key: "three-cols.csv", table: "no_such_table", ledger_table: "" }), /42P01[\s\S]*Fix: the table does not exist/],
  ["a range that is not a byte range", "p", "f/aws_oidc/rds_load_csv_from_s3", rds({ bucket: "bad-input", key: "three-cols.csv", table: "orders", range: "bytes=9-2", header: false }), /Invalid input "range"[\s\S]*not a byte range/],
  ["a slice of a gzip object", "p", "f/aws_oidc/rds_load_csv_from_s3", rds({ bucket: "bad-input", key: "three-cols.csv", table: "orders", range: "bytes=0-10", gzip: "yes" }), /Invalid input "range"[\s\S]*gzip/],
  ["a split size under 1 MiB", "p", "f/aws_oidc/plan_csv_loads", s3({ keys: ["three-cols.csv"], split_mib: 0.5 }), /Invalid input "split_mib"/],
  ["a two-character quote for the plan", "p", "f/aws_oidc/plan_csv_loads", s3({ keys: ["three-cols.csv"], split_mib: 1, quote: "''" }), /Invalid input "quote"/],
  ["a plan of a missing object", "p", "f/aws_oidc/plan_csv_loads", s3({ keys: ["nope.csv"], split_mib: 1 }), /HeadObject on s3:\/\/bad-input\/nope.csv[\s\S]*Fix:/],
  ["flow with a negative split size", "f", "f/aws_oidc/s3_csv_to_rds", { aws_oidc: `$res:${ROLE_RESOURCE}`, database: DB, bucket: "bad-input", table: "three_cols", split_mib: -1, credentials_path: "f/aws_oidc/bad_flow_creds" }, /"failed_step":"plan"[\s\S]*Invalid input \\"split_mib\\"/],
  ["export of an empty query", "p", "f/aws_oidc/rds_export_to_s3", rds({ query: " ", bucket: "bad-input", key: "out.csv" }), /Invalid input "query"/],
  ["flow with a bucket URL", "f", "f/aws_oidc/s3_csv_to_rds", { aws_oidc: `$res:${ROLE_RESOURCE}`, database: DB, bucket: "s3://bad-input", table: "orders", credentials_path: "f/aws_oidc/bad_flow_creds" }, /"failed_step":"list_csv"[\s\S]*Invalid input \\"bucket\\"/],
  ["flow with a bad role resource path", "f", "f/aws_oidc/rds_to_s3_export", { aws_oidc: "$res:f/aws_oidc/not_a_resource", database: DB, query: "select 1", bucket: "bad-input", key: "x.csv" }, /not_a_resource/],
  ["trust policy for a wildcard workspace", "p", "f/aws_oidc/trust_policy", { account_id: "123456789012", windmill_base_url: "https://w.example.com", workspace: "*", bucket: "data" }, /Invalid input "workspace"[\s\S]*never a wildcard/],
  ["trust policy over plain http", "p", "f/aws_oidc/trust_policy", { account_id: "123456789012", windmill_base_url: "http://w.example.com", workspace: "prod", bucket: "data" }, /Invalid input "base_url"[\s\S]*HTTPS/],
];

test(`at least 40 bad inputs are covered (${CASES.length})`, () => expect(CASES.length).toBeGreaterThanOrEqual(40));

for (const [name, kind, path, args, expected] of CASES) {
  test(`${path}: ${name}`, async () => {
    const res = await fetch(`${stack.windmill.url}/api/w/${stack.windmill.workspace}/jobs/run_wait_result/${kind}/${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.windmill.adminToken}`, "content-type": "application/json" },
      body: JSON.stringify(args),
    });
    const body = (await res.json()) as { error?: { message?: string } } & Record<string, unknown>;
    expect(res.status).not.toBe(200);
    // Scripts fail with Windmill's error object; flows with their failure module's report.
    const message = body.error?.message ?? JSON.stringify(body);
    expect(message).toMatch(expected);
    // A message a person reads first, not a stack trace.
    expect(message.trimStart().startsWith("at ")).toBe(false);
    expect(message.length).toBeGreaterThan(20);
  });
}
