// The RDS scripts as a user runs them: IAM tokens signed per connection, TLS verified
// against the stand-in's CA, CSV streamed from S3 into COPY and back out.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { gzipSync } from "node:zlib";
import postgres from "postgres";
import wmill from "windmill-client";
import { assumeRoleAndSave } from "../../f/aws_oidc/lib/assumeRoleAndSave.ts";
import { DEFAULT_LEDGER_TABLE, ledgerDdl } from "../../f/aws_oidc/lib/loadLedger.ts";
import { explainPgError } from "../../f/aws_oidc/lib/rds.ts";
import { s3Client } from "../../f/aws_oidc/lib/s3.ts";
import { startRds, type RdsStandIn } from "../../local/rds/server.ts";
import { auditLeaksThenClose, findLeaks } from "../helpers/leaks.ts";
import { ACCOUNT_ID, DB_USER, DBI_RESOURCE_ID, DEMO_ROLE_ARN, REGION, startStack, trustPolicy, type Stack } from "../helpers/testStack.ts";

const CREDS = "f/aws_oidc/rds_test_creds";
const DB = "f/aws_oidc/rds_test_db";
const BUCKET = "rds-data";
let stack: Stack;
let s3: S3Client;
const quiet = () => {};

beforeAll(async () => {
  stack = await startStack({ s3: true, rds: true });
  const rds = stack.rds!;
  stack.actAsJob("f/aws_oidc/rds_test");
  await assumeRoleAndSave({ roleArn: DEMO_ROLE_ARN, region: REGION, saveTo: CREDS }, quiet);
  s3 = (await s3Client(CREDS)).s3;
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  await wmill.ResourceService.createResource({
    workspace: stack.windmill.workspace,
    requestBody: {
      path: DB, resource_type: "aws_rds_iam_postgres",
      value: { host: rds.host, port: rds.port, database: "postgres", user: DB_USER, tlsMode: "verify-full", caCert: rds.caCertPem },
    },
  });
  await rds.adminSql(`
    create table people (id int primary key, name text, note text, score numeric);
    grant select, insert, update, delete on people to ${DB_USER};
    create table events (id int, label text);
    grant select, insert on events to ${DB_USER};
    ${ledgerDdl(DEFAULT_LEDGER_TABLE)};
    grant select, insert, delete on ${DEFAULT_LEDGER_TABLE} to ${DB_USER};`);
});
afterAll(async () => {
  await auditLeaksThenClose(stack);
});

const run = (script: string, args: Record<string, unknown>) =>
  stack.runScript(`f/aws_oidc/${script}`, { credentials: `$res:${CREDS}`, database: `$res:${DB}`, ...args });

async function putObject(key: string, body: string | Buffer) {
  await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));
}

describe("rds_query", () => {
  test("runs a parameterised query over verified TLS with a fresh IAM token", async () => {
    const { status, result } = await run("rds_query", { sql: "select $1::int + 1 as answer, current_user as who, $2::text as echo", args: [41, "it's; drop table people"] });
    expect(status).toBe(200);
    expect(result).toEqual([{ answer: 42, who: DB_USER, echo: "it's; drop table people" }]);
  });

  test("stops at row_limit and says so in the job log", async () => {
    const { result } = await run("rds_query", { sql: "select g from generate_series(1, 5000) g", row_limit: 10 });
    expect(result).toHaveLength(10);
    const job = stack.windmill.jobs.findLast((j) => j.path === "f/aws_oidc/rds_query")!;
    expect(job.logs).toContain("truncated: the query returned more than row_limit (10) rows");
  });

  test("a statement over statement_timeout is cancelled with a hint", async () => {
    const { status, result } = await run("rds_query", { sql: "select pg_sleep(5)", statement_timeout: "1s" });
    expect(status).toBe(422);
    expect(result.error.message).toContain("57014");
    expect(result.error.message).toContain("statement_timeout");
  });

  test("weaker TLS modes work only when named, with a warning", async () => {
    const rds = stack.rds!;
    const weak = { host: rds.host, port: rds.port, database: "postgres", user: DB_USER, tlsMode: "require" };
    const { result } = await stack.runScript("f/aws_oidc/rds_query", { credentials: `$res:${CREDS}`, database: weak, sql: "select 1 as one" });
    expect(result).toEqual([{ one: 1 }]);
    // The result is the rows (Windmill's table); the warning is in the job log.
    expect(stack.windmill.jobs.findLast((j) => j.path === "f/aws_oidc/rds_query")!.logs).toContain("WARNING: tlsMode require: the connection is encrypted but the server is NOT verified");
    const bad = await stack.runScript("f/aws_oidc/rds_query", { credentials: `$res:${CREDS}`, database: { ...weak, tlsMode: "disable" }, sql: "select 1" });
    expect(bad.result.error.message).toContain('Invalid input "database.tlsMode"');
    const noCa = await stack.runScript("f/aws_oidc/rds_query", { credentials: `$res:${CREDS}`, database: { ...weak, tlsMode: "verify-full" }, sql: "select 1" });
    expect(noCa.result.error.message).toContain('Invalid input "database.caCert"');
  });

  test("a database user the role may not connect as is refused with the IAM checklist", async () => {
    await stack.rds!.adminSql("create user other_user; grant rds_iam to other_user");
    const rds = stack.rds!;
    const other = { host: rds.host, port: rds.port, database: "postgres", user: "other_user", caCert: rds.caCertPem };
    const { status, result } = await stack.runScript("f/aws_oidc/rds_query", { credentials: `$res:${CREDS}`, database: other, sql: "select 1" });
    expect(status).toBe(422);
    expect(result.error.message).toContain('failed with 28000: PAM authentication failed for user "other_user"');
    expect(result.error.message).toContain("rds-db:connect");
    expect(stack.rds!.lastAuthFailures.at(-1)?.user).toBe("other_user");
  });

  test("a refused IAM token and a connection without TLS are both 28000: the fix tells them apart by the message", async () => {
    const rds = stack.rds!;
    const failureOf = async (options: { ssl: false | { ca: string }; password: string }) => {
      const sql = postgres({ host: rds.host, port: rds.port, database: "postgres", username: DB_USER, max: 1, onnotice: () => {}, ...options });
      try {
        return await sql`select 1`.then(() => undefined, (err: unknown) => err);
      } finally {
        await sql.end({ timeout: 1 });
      }
    };
    const noTls = explainPgError(await failureOf({ ssl: false, password: "x" }), "db");
    expect(noTls.message).toMatch(/failed with 28000: pg_hba\.conf .* no encryption/);
    expect(noTls.message).toContain("Fix: the server requires TLS");
    const badToken = explainPgError(await failureOf({ ssl: { ca: rds.caCertPem }, password: "not-a-token" }), "db");
    expect(badToken.message).toContain(`failed with 28000: PAM authentication failed for user "${DB_USER}"`);
    expect(badToken.message).toContain("Fix: RDS refused the IAM token");
  });
});

// RDS checks the token against its own endpoint, not the address dialled (RDS User Guide,
// UsingWithRDS.IAMDBAuth.html). A second instance with an endpoint name stands for one
// reached through an SSH tunnel: the resource dials 127.0.0.1, the endpoint is ENDPOINT.
describe("rds_query through a tunnel (signingHost)", () => {
  const ENDPOINT = { host: "mydb.abc123.us-east-1.rds.amazonaws.com", port: 5432 };
  let tunnelled: RdsStandIn;
  let viaTunnel: Record<string, unknown>;

  beforeAll(async () => {
    // The demo role's rds-db:connect names DBI_RESOURCE_ID and DB_USER: the same here.
    tunnelled = await startRds({ stsUrl: stack.sts.url, region: REGION, dbiResourceId: DBI_RESOURCE_ID, endpoint: ENDPOINT });
    await tunnelled.adminSql(`create user ${DB_USER}; grant rds_iam to ${DB_USER}`);
    viaTunnel = { host: "127.0.0.1", port: tunnelled.port, database: "postgres", user: DB_USER, caCert: tunnelled.caCertPem };
  }, 30_000);
  afterAll(async () => {
    // Its tokens are not in the stack's leak audit: check them here.
    const tokens = new Map((tunnelled?.receivedTokens ?? []).map((token) => [token, "RDS IAM token"]));
    expect(findLeaks(stack.windmill.jobs, tokens)).toEqual([]);
    await tunnelled?.close();
  });

  const query = (database: Record<string, unknown>) =>
    stack.runScript("f/aws_oidc/rds_query", { credentials: `$res:${CREDS}`, database, sql: "select current_user as who" });

  test("signed for the endpoint, dialled at the tunnel, verify-full against the endpoint's name", async () => {
    const { status, result } = await query({ ...viaTunnel, signingHost: ENDPOINT.host, signingPort: ENDPOINT.port });
    expect(status).toBe(200);
    expect(result).toEqual([{ who: DB_USER }]);
    expect(stack.windmill.jobs.findLast((j) => j.path === "f/aws_oidc/rds_query")!.logs).not.toContain("WARNING");
  });

  test("without signingHost the token names the tunnel: refused, and the fix names signingHost", async () => {
    const { status, result } = await query(viaTunnel);
    expect(status).toBe(422);
    expect(result.error.message).toContain("28000: PAM authentication failed");
    expect(result.error.message).toContain("signingHost");
    expect(tunnelled.lastAuthFailures.at(-1)?.reason).toContain(`signed for 127.0.0.1:${tunnelled.port}, but this instance is ${ENDPOINT.host}:${ENDPOINT.port}`);
  });

  test("the certificate is checked against signingHost, not the address dialled", async () => {
    // 127.0.0.1 is in the certificate, this name is not: only a check against signingHost fails.
    const { status, result } = await query({ ...viaTunnel, signingHost: "db.example.internal", signingPort: ENDPOINT.port });
    expect(status).toBe(422);
    expect(result.error.message).toMatch(/db\.example\.internal/);
    expect(result.error.message).not.toContain("28000");
    expect(result.error.message).toContain("Fix: the certificate does not name the host checked");
  });

  test("a signingHost or signingPort that cannot be an endpoint is refused before connecting", async () => {
    const cases: [Record<string, unknown>, string, string][] = [
      [{ signingHost: "10.0.0.5" }, "database.signingHost", "is an IP address"],
      [{ signingHost: `${ENDPOINT.host}:5432` }, "database.signingHost", "no scheme, port or path"],
      [{ signingHost: `postgres://${ENDPOINT.host}` }, "database.signingHost", "no scheme, port or path"],
      [{ signingHost: ENDPOINT.host, signingPort: 70000 }, "database.signingPort", "is not a port"],
    ];
    for (const [patch, input, problem] of cases) {
      const { result } = await query({ ...viaTunnel, ...patch });
      expect(result.error.message).toContain(`Invalid input "${input}"`);
      expect(result.error.message).toContain(problem);
    }
  });
});

describe("rds_load_csv_from_s3", () => {
  const tricky = [
    "id,name,note,score",
    '1,"Ada, Countess","line one\nline two",9.5',
    '2,"Grace ""Amazing"" Hopper",,7',
    "3,Zoë Ünïcode 日本,\"\",",
    '4,"",plain,0',
  ].join("\n") + "\n";

  test("loads quotes, embedded newlines, NULLs and unicode exactly", async () => {
    await putObject("in/people.csv", tricky);
    const { status, result } = await run("rds_load_csv_from_s3", { bucket: BUCKET, key: "in/people.csv", table: "people" });
    expect(status).toBe(200);
    expect(result).toMatchObject({ rows_loaded: 4, bytes_read: Buffer.byteLength(tricky), gzip: false, table: "people" });
    const back = await run("rds_query", { sql: "select id, name, note, score::text from people order by id" });
    expect(back.result).toEqual([
      { id: 1, name: "Ada, Countess", note: "line one\nline two", score: "9.5" },
      { id: 2, name: 'Grace "Amazing" Hopper', note: null, score: "7" },
      { id: 3, name: "Zoë Ünïcode 日本", note: "", score: null },
      { id: 4, name: "", note: "plain", score: "0" },
    ]);
  });

  test("a re-run skips an object the ledger shows loaded; force loads it again", async () => {
    await stack.rds!.adminSql(`create table people2 (like people); grant select, insert, delete on people2 to ${DB_USER}`);
    const first = await run("rds_load_csv_from_s3", { bucket: BUCKET, key: "in/people.csv", table: "people2" });
    expect(first.result).toMatchObject({ skipped: false, rows_loaded: 4 });
    const again = await run("rds_load_csv_from_s3", { bucket: BUCKET, key: "in/people.csv", table: "people2" });
    expect(again.result).toMatchObject({ skipped: true, rows_loaded: 0 });
    const ledger = await run("rds_query", { sql: `select key, rows::int as rows from ${DEFAULT_LEDGER_TABLE} where target_table = 'people2'` });
    expect(ledger.result).toEqual([{ key: "in/people.csv", rows: 4 }]);
    await stack.rds!.adminSql("delete from people2");
    const forced = await run("rds_load_csv_from_s3", { bucket: BUCKET, key: "in/people.csv", table: "people2", force: true });
    expect(forced.result).toMatchObject({ skipped: false, rows_loaded: 4 });
    // A changed object (new ETag) is loaded again without force.
    await putObject("in/people.csv", tricky.replace("9.5", "9.75"));
    await stack.rds!.adminSql("delete from people2");
    expect((await run("rds_load_csv_from_s3", { bucket: BUCKET, key: "in/people.csv", table: "people2" })).result.skipped).toBe(false);
  });

  test("a missing ledger table is reported with the DDL to create it", async () => {
    const { result } = await run("rds_load_csv_from_s3", { bucket: BUCKET, key: "in/people.csv", table: "people", ledger_table: "no_such_ledger" });
    expect(result.error.message).toContain('Invalid input "ledger_table"');
    expect(result.error.message).toContain("create table if not exists");
  });

  test("gunzips on the fly, with a custom delimiter and no header", async () => {
    await putObject("in/events.tsv.gz", gzipSync("1\tstart\n2\tstop\n3\t\\N\n"));
    const { result } = await run("rds_load_csv_from_s3", {
      bucket: BUCKET, key: "in/events.tsv.gz", table: "events", header: false, delimiter: "\t", null_marker: "\\N", gzip: "yes",
    });
    expect(result).toMatchObject({ rows_loaded: 3, gzip: true });
    expect((await run("rds_query", { sql: "select count(*)::int as n, count(label)::int as labelled from events" })).result).toEqual([{ n: 3, labelled: 2 }]);
  });

  test("a line with the wrong column count loads nothing and says which input to check", async () => {
    await putObject("in/bad.csv", "id,name,note,score\n10,a,b,1\n11,only-two\n");
    const { status, result } = await run("rds_load_csv_from_s3", { bucket: BUCKET, key: "in/bad.csv", table: "people" });
    expect(status).toBe(422);
    expect(result.error.message).toContain("22P04");
    expect((await run("rds_query", { sql: "select count(*)::int as n from people where id >= 10" })).result).toEqual([{ n: 0 }]);
  });

  test("a backend killed mid-COPY leaves no partial rows", async () => {
    const lines = ["id,label", ...Array.from({ length: 300_000 }, (_, i) => `${i},label-${i}-${"x".repeat(40)}`)];
    await putObject("in/big.csv", lines.join("\n") + "\n");
    const killed = stack.rds!.faults.killBackendOnNextCopy({ afterBytes: 1024 * 1024 });
    const { status, result } = await run("rds_load_csv_from_s3", { bucket: BUCKET, key: "in/big.csv", table: "events" });
    await killed;
    expect(status).toBe(422);
    expect(result.error.message).toMatch(/terminat|connection/i);
    expect((await run("rds_query", { sql: "select count(*)::int as n from events where label like 'label-%'" })).result).toEqual([{ n: 0 }]);
  });

  test("bad table and format inputs are refused before connecting", async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ table: "people; drop table people" }, "table"],
      [{ table: "people", delimiter: ",," }, "delimiter"],
      [{ table: "people", quote: "," }, "quote"],
      [{ table: "people", columns: ["id", "na me"] }, "columns"],
    ];
    for (const [patch, input] of cases) {
      const { result } = await run("rds_load_csv_from_s3", { bucket: BUCKET, key: "in/people.csv", ...patch });
      expect(result.error.message).toContain(`Invalid input "${input}"`);
    }
  });
});

describe("rds_export_to_s3", () => {
  test("streams a query into S3 and the CSV round-trips", async () => {
    const { status, result } = await run("rds_export_to_s3", { query: "select id, name, note from people where id < 10 order by id", bucket: BUCKET, key: "out/people.csv" });
    expect(status).toBe(200);
    expect(result).toMatchObject({ rows: 4, s3_uri: `s3://${BUCKET}/out/people.csv`, gzip: false });
    const body = await (await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: "out/people.csv" }))).Body!.transformToString();
    expect(body.split("\n")[0]).toBe("id,name,note");
    expect(body).toContain('"line one\nline two"');
    expect(result.bytes).toBe(Buffer.byteLength(body));
  });

  test("gzip export loads back into another table", async () => {
    const exported = await run("rds_export_to_s3", { query: "select id, label from events order by id", bucket: BUCKET, key: "out/events.csv.gz", gzip: true });
    expect(exported.result).toMatchObject({ rows: 3, gzip: true });
    await stack.rds!.adminSql(`create table events_copy (id int, label text); grant select, insert on events_copy to ${DB_USER}`);
    const loaded = await run("rds_load_csv_from_s3", { bucket: BUCKET, key: "out/events.csv.gz", table: "events_copy" });
    expect(loaded.result.rows_loaded).toBe(3);
  });
});

// Aurora PostgreSQL with IAM auth: rds-db:connect names the cluster's DbClusterResourceId
// (cluster-…), and the token is signed for the cluster endpoint the client uses, writer
// (cluster-) or reader (cluster-ro-) (RDS User Guide, "Creating and using an IAM policy for
// IAM database access"; Aurora User Guide, "Amazon Aurora endpoint connections").
describe("rds_load_csv_from_s3 on an Aurora cluster endpoint", () => {
  const AURORA_CREDS = "f/aws_oidc/rds_test_aurora_creds";
  let aurora: RdsStandIn;
  let viaEndpoint: (endpoint: { host: string; port: number }) => Record<string, unknown>;

  beforeAll(async () => {
    aurora = await startRds({ stsUrl: stack.sts.url, region: REGION, topology: { kind: "aurora-cluster", clusterName: "orders" } });
    await aurora.adminSql(`
      create user ${DB_USER}; grant rds_iam to ${DB_USER};
      create table people (id int primary key, name text, note text, score numeric);
      grant select, insert on people to ${DB_USER};
      ${ledgerDdl(DEFAULT_LEDGER_TABLE)};
      grant select, insert, delete on ${DEFAULT_LEDGER_TABLE} to ${DB_USER};`);
    // The policy f/aws_oidc/trust_policy writes for a cluster: the bucket to read, rds-db:connect on the cluster's resource id.
    const roleArn = await stack.addRole({
      roleName: "aurora-loader",
      maxSessionDuration: 3600,
      assumeRolePolicyDocument: trustPolicy(stack.provider, ACCOUNT_ID, `*::*::*::${stack.windmill.workspace}`),
      permissionPolicies: [{
        Version: "2012-10-17",
        Statement: [
          { Effect: "Allow", Action: ["s3:GetObject", "s3:ListBucket"], Resource: [`arn:aws:s3:::${BUCKET}`, `arn:aws:s3:::${BUCKET}/*`] },
          { Effect: "Allow", Action: "rds-db:connect", Resource: `arn:aws:rds-db:${REGION}:${ACCOUNT_ID}:dbuser:${aurora.dbiResourceId}/${DB_USER}` },
        ],
      }],
    });
    await assumeRoleAndSave({ roleArn, region: REGION, saveTo: AURORA_CREDS }, quiet);
    // The worker dials the stand-in at 127.0.0.1; the token and the certificate name the cluster endpoint.
    viaEndpoint = (endpoint) => ({ host: aurora.host, port: aurora.port, signingHost: endpoint.host, signingPort: endpoint.port, database: "postgres", user: DB_USER, caCert: aurora.caCertPem });
  }, 30_000);
  afterAll(async () => {
    const tokens = new Map((aurora?.receivedTokens ?? []).map((token) => [token, "RDS IAM token"]));
    expect(findLeaks(stack.windmill.jobs, tokens)).toEqual([]);
    await aurora?.close();
  });

  const load = (database: Record<string, unknown>, key: string) =>
    stack.runScript("f/aws_oidc/rds_load_csv_from_s3", { credentials: `$res:${AURORA_CREDS}`, database, bucket: BUCKET, key, table: "people" });

  test("loads through the writer endpoint (cluster-), signed for it, verify-full against its name", async () => {
    expect(aurora.endpoint!.host).toMatch(/^orders\.cluster-[a-z0-9]{12}\.us-east-1\.rds\.amazonaws\.com$/);
    await putObject("in/aurora.csv", "id,name,note,score\n1,Ada,,9.5\n2,Grace,x,7\n");
    const { status, result } = await load(viaEndpoint(aurora.endpoint!), "in/aurora.csv");
    expect(status).toBe(200);
    expect(result).toMatchObject({ rows_loaded: 2, table: "people" });
    expect(await aurora.adminSql("select id, name from people order by id")).toEqual([{ id: 1, name: "Ada" }, { id: 2, name: "Grace" }]);
  });

  test("through the reader endpoint (cluster-ro-) the token is accepted but the replica refuses the write", async () => {
    await putObject("in/aurora-more.csv", "id,name,note,score\n3,Edsger,,8\n");
    const { status, result } = await load(viaEndpoint(aurora.readerEndpoint!), "in/aurora-more.csv");
    expect(status).toBe(422);
    expect(result.error.message).toContain("25006");
    expect(result.error.message).toContain("read-only transaction");
    expect(result.error.message).toContain("Fix: the server accepts reads only: an Aurora reader endpoint (cluster-ro-)");
    expect(aurora.lastAuthFailures).toEqual([]);
  });
});
