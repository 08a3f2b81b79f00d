// Windmill's own PostgreSQL scripts on RDS with IAM auth: f/aws_oidc/rds_iam_postgresql_resource
// writes a hub-typed postgresql resource whose password is an IAM token, and the stand-in runs
// f/aws_oidc/orders_by_country.pg.sql as windmill-worker/src/pg_executor.rs (do_postgresql)
// does, through the RDS stand-in's IAM TLS gateway.
import { afterAll, beforeAll, describe, expect, setSystemTime, test } from "bun:test";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { rootCertificates } from "node:tls";
import wmill from "windmill-client";
import { assumeRoleAndSave } from "../../f/aws_oidc/lib/assumeRoleAndSave.ts";
import { loadCredentialsResource, sessionFromResource } from "../../f/aws_oidc/lib/credentialsResource.ts";
import { REFRESH_SCHEDULE } from "../../f/aws_oidc/lib/pgResource.ts";
import { checkDatabase, rdsSigner } from "../../f/aws_oidc/lib/rds.ts";
import { CREDENTIALS_RESOURCE, DATABASE_RESOURCE, setUpWorkspace, useDemoDatabaseInRdsRefresh } from "../../local/demo/demoData.ts";
import { parseArgDeclarations, splitStatements } from "../../local/windmill/pgExecutor.ts";
import { auditLeaksThenClose } from "../helpers/leaks.ts";
import { DEMO_ROLE_ARN, REGION, startStack, type Stack } from "../helpers/testStack.ts";

const PG_RESOURCE = "f/aws_oidc/orders_db_pg";
const SQL_SCRIPT = "f/aws_oidc/orders_by_country";
let stack: Stack;
let api: (path: string, init?: RequestInit) => Promise<Response>;

/** The refresh exactly as the schedule runs it: its script with its args, as stored in Windmill. */
async function runRefreshSchedule() {
  const res = await fetch(`${stack.windmill.url}/api/w/${stack.windmill.workspace}/schedules/get/${REFRESH_SCHEDULE}`, { headers: { authorization: `Bearer ${stack.windmill.adminToken}` } });
  const schedule = (await res.json()) as { script_path: string; args: Record<string, unknown> };
  return stack.runScript(schedule.script_path, schedule.args);
}

beforeAll(async () => {
  stack = await startStack({ rds: true });
  await setUpWorkspace(stack);
  // The schedule ships disabled, reading f/aws_oidc/orders_db: pointed at the demo's database, left disabled.
  await useDemoDatabaseInRdsRefresh(stack, false);
  await stack.rds!.adminSql(`insert into orders (order_id, customer, country, amount) values
    (1, 'Ada', 'GB', 10), (2, 'Grace', 'US', 20), (3, 'Alan', 'GB', 30), (4, 'Zoë', null, 5)`);
  stack.actAsJob("f/aws_oidc/pg_executor_test");
  await assumeRoleAndSave({ roleArn: DEMO_ROLE_ARN, region: REGION, saveTo: CREDENTIALS_RESOURCE }, () => {});
  api = (path, init) => fetch(`${stack.windmill.url}/api/w/${stack.windmill.workspace}/${path}`, {
    ...init, headers: { authorization: `Bearer ${stack.windmill.adminToken}`, "content-type": "application/json" },
  });
});
afterAll(async () => {
  await auditLeaksThenClose(stack);
});

describe("pg_executor.rs parsing", () => {
  test("`-- $1 name (type) = default` declarations (windmill-parser-sql RE_ARG_PGSQL)", () => {
    expect(parseArgDeclarations("-- $1 min_orders (int) = 1\n-- $2 country\nselect 1")).toEqual([
      { index: 1, name: "min_orders", type: "int" }, { index: 2, name: "country", type: undefined },
    ]);
  });

  test("statements split on `;` outside quotes, dollar quotes and comments (parse_sql_blocks)", () => {
    expect(splitStatements("select ';'; -- a; comment\nselect $$ ; $$;\n/* ; */ select 2;\n").map((s) => s.trim())).toEqual([
      "select ';'", "-- a; comment\nselect $$ ; $$", "/* ; */ select 2",
    ]);
  });
});

describe("a PostgreSQL script on the IAM-backed postgresql resource", () => {
  test("rds_iam_postgresql_resource writes verify-full with the RDS CA and the token as a $var: secret; the result shows the expiry, never the token", async () => {
    const { status, result } = await runRefreshSchedule();
    expect({ status, result }).toMatchObject({ status: 200 });
    expect(result).toMatchObject({ resource: PG_RESOURCE, sslmode: "verify-full", password_expires_in: expect.stringMatching(/^1[45]m/), refreshed_by: REFRESH_SCHEDULE });
    expect(JSON.stringify(result)).not.toContain("X-Amz-Signature");
    const resource = (await (await api(`resources/get/${PG_RESOURCE}`)).json()) as { resource_type: string; description: string; value: Record<string, unknown> };
    expect(resource.resource_type).toBe("postgresql");
    expect(resource.value).toMatchObject({ host: stack.rds!.host, port: stack.rds!.port, sslmode: "verify-full", root_certificate_pem: stack.rds!.caCertPem });
    expect(String(resource.value.password)).toStartWith(`$var:${PG_RESOURCE}__password__g`);
  });

  test("the sample SQL script runs through the IAM TLS gateway and returns the last statement's rows as objects", async () => {
    const { status, result } = await stack.runScript(SQL_SCRIPT, { database: `$res:${PG_RESOURCE}`, min_orders: 1 });
    expect(status).toBe(200);
    expect(result).toEqual([
      { country: "GB", orders: 2, amount: "40.00" }, { country: "US", orders: 1, amount: "20.00" }, { country: null, orders: 1, amount: "5.00" },
    ]);
    const missing = await stack.runScript(SQL_SCRIPT, { database: `$res:${PG_RESOURCE}` });
    // A declared argument not sent binds as NULL: `having count(*) >= null` keeps no row.
    expect(missing).toEqual({ status: 200, result: [] });
  });

  // The token is aged, not the clocks: the resource gets a token the real signer made 16 minutes ago with
  // the same session (as if no refresh had run since), and the gateway checks its expiry at connect.
  test("an expired token fails with the gateway's PAM authentication failed; the resource says which schedule to check", async () => {
    const value = (await (await api(`resources/get_value/${PG_RESOURCE}`)).json()) as { password: string };
    const session = sessionFromResource(await loadCredentialsResource(CREDENTIALS_RESOURCE));
    const db = checkDatabase((await (await api(`resources/get_value/${DATABASE_RESOURCE}`)).json()));
    setSystemTime(new Date(Date.now() - 16 * 60 * 1000));
    let aged: string;
    try {
      aged = await rdsSigner(db, async () => session, REGION).getAuthToken();
    } finally {
      setSystemTime();
    }
    await wmill.VariableService.updateVariable({ workspace: stack.windmill.workspace, path: value.password.slice(5), requestBody: { value: aged } });

    const { status, result } = await stack.runScript(SQL_SCRIPT, { database: `$res:${PG_RESOURCE}`, min_orders: 1 });
    expect(status).not.toBe(200);
    expect(result.error.message).toContain("PAM authentication failed");
    expect(stack.rds!.lastAuthFailures.at(-1)?.reason).toContain("the token expired at");
    // Windmill shows the driver's error as is; the hint a person finds is on the resource (and the script's description).
    const resource = (await (await api(`resources/get/${PG_RESOURCE}`)).json()) as { description: string };
    expect(resource.description).toContain(`"PAM authentication failed"`);
    expect(resource.description).toContain(`check that schedule is enabled`);
    expect(resource.description).toContain(REFRESH_SCHEDULE);
  });

  test("after the refresh schedule's run the script succeeds again", async () => {
    expect((await runRefreshSchedule()).status).toBe(200);
    const { status, result } = await stack.runScript(SQL_SCRIPT, { database: `$res:${PG_RESOURCE}`, min_orders: 2 });
    expect({ status, result }).toEqual({ status: 200, result: [{ country: "GB", orders: 2, amount: "40.00" }] });
  });

  test("verify-full checks the certificate against root_certificate_pem; an unreadable PEM is Invalid Certs (pg_executor.rs connect)", async () => {
    const value = (await (await api(`resources/get_value_interpolated/${PG_RESOURCE}`)).json()) as Record<string, unknown>;
    const run = (root_certificate_pem: string) => stack.runScript(SQL_SCRIPT, { database: { ...value, root_certificate_pem }, min_orders: 1 });
    // A real root CA that did not sign the stand-in's certificate.
    const otherCa = await run(rootCertificates[0]);
    expect(otherCa.status).not.toBe(200);
    expect(otherCa.result.error.message).toMatch(/certificate|unable to verify|self.signed/i);
    const unreadable = await run("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----");
    expect(unreadable.result.error.message).toContain("Invalid Certs");
  });

  test("root_certificate_pem is added to the system's roots, not a replacement (native-tls add_root_certificate)", async () => {
    const value = (await (await api(`resources/get_value_interpolated/${PG_RESOURCE}`)).json()) as Record<string, unknown>;
    // The stand-in's RDS CA becomes a system root (OpenSSL's SSL_CERT_FILE); the resource names an unrelated root.
    const systemStore = join(await mkdtemp(join(tmpdir(), "pg-roots-")), "roots.pem");
    await writeFile(systemStore, String(value.root_certificate_pem));
    const previous = process.env.SSL_CERT_FILE;
    process.env.SSL_CERT_FILE = systemStore;
    try {
      const { status, result } = await stack.runScript(SQL_SCRIPT, { database: { ...value, root_certificate_pem: rootCertificates[0] }, min_orders: 2 });
      expect({ status, result }).toEqual({ status: 200, result: [{ country: "GB", orders: 2, amount: "40.00" }] });
    } finally {
      if (previous === undefined) delete process.env.SSL_CERT_FILE;
      else process.env.SSL_CERT_FILE = previous;
      await rm(dirname(systemStore), { recursive: true, force: true });
    }
  });
});
