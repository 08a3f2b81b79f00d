// The RDS stand-in as a client sees it: real `postgres` client, real RDS Signer, real STS
// credentials minted from a Windmill OIDC token, verify-full TLS against the stand-in's CA.
// Every refusal must look like RDS's (28P01, PAM message) while lastAuthFailures says why,
// so each refusal test also checks that it was refused for the reason it is about.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { rootCertificates } from "node:tls";
import postgres, { type Sql } from "postgres";
import { Signer } from "@aws-sdk/rds-signer";
import { SignatureV4 } from "@smithy/signature-v4";
import { Hash } from "@smithy/hash-node";
import { startRds, type RdsStandIn } from "../../local/rds/server.ts";
import { assumeRoleWithWindmillToken, type SessionCredentials } from "../../f/aws_oidc/lib/assumeRole.ts";
import { ACCOUNT_ID, REGION, startStack, trustPolicy, type Stack } from "../helpers/testStack.ts";

/** Has rds_iam and the role may connect as it: the happy path. */
const IAM_USER = "app_user";
/** The role may connect as it, but it lacks rds_iam. */
const NO_RDS_IAM_USER = "password_user";
/** Has rds_iam, but the role's policy does not name it. */
const UNLISTED_USER = "other_user";
/** The role's policy names it, but there is no such Postgres role. */
const GHOST_USER = "ghost_user";
const DATABASE = "postgres";
const ROLE_NAME = "rds-connect";
/** One hour: the largest session a chained role may get, and far more than the file needs. */
const SESSION_SECONDS = 3600;
/** ~40-byte rows: 100k of them make a 4 MB COPY, "a few MB" at full speed. */
const COPY_ROWS = 100_000;
const ROWS_PER_CHUNK = 1000;
/** Kill the COPY once the backend has read 512 KiB, then keep sending: the client must see the kill. */
const KILL_AFTER_BYTES = 512 * 1024;
/**
 * After the kill, the writer sends one chunk per tick of this length. postgres.js notices a
 * closed connection on its next write; a COPY that has already sent CopyDone when the
 * connection dies waits forever (postgres.js 3.4 never calls the writable's final callback).
 */
const AFTER_KILL_CHUNK_DELAY_MS = 10;
/** A client that hangs on a refused or dropped connection should fail the test quickly. */
const CONNECT_TIMEOUT_SECONDS = 5;
const PAM_FAILED = (user: string) => `PAM authentication failed for user "${user}"`;

let stack: Stack;
let rds: RdsStandIn;
let credentials: SessionCredentials;
const clients: Sql[] = [];

beforeAll(async () => {
  stack = await startStack();
  rds = await startRds({ stsUrl: stack.sts.url });
  await rds.adminSql(`
    create user ${IAM_USER}; grant rds_iam to ${IAM_USER};
    create user ${NO_RDS_IAM_USER} password 'not-a-token';
    create user ${UNLISTED_USER}; grant rds_iam to ${UNLISTED_USER};
    create table copy_target (id int primary key, payload text not null);
    create table copy_killed (id int primary key, payload text not null);
    grant select, insert, truncate on copy_target, copy_killed to ${IAM_USER};`);
  const roleArn = await connectRole(ROLE_NAME, [IAM_USER, NO_RDS_IAM_USER, GHOST_USER]);
  stack.actAsJob("f/aws_oidc/rds_test");
  credentials = await mint(roleArn, "rds-test");
}, 30_000);

/** A role this workspace's jobs may assume that may rds-db:connect as `users` (under `condition`, if given). */
function connectRole(roleName: string, users: string[], condition?: Record<string, Record<string, string[]>>): Promise<string> {
  return stack.addRole({
    roleName,
    maxSessionDuration: SESSION_SECONDS,
    assumeRolePolicyDocument: trustPolicy(stack.provider, ACCOUNT_ID, `*::*::*::${stack.windmill.workspace}`),
    permissionPolicies: [{
      Version: "2012-10-17",
      Statement: [{
        Effect: "Allow",
        Action: "rds-db:connect",
        Resource: users.map((user) => `arn:aws:rds-db:${REGION}:${ACCOUNT_ID}:dbuser:${rds.dbiResourceId}/${user}`),
        ...(condition ? { Condition: condition } : {}),
      }],
    }],
  });
}

afterAll(async () => {
  await Promise.all(clients.map((sql) => sql.end({ timeout: 1 })));
  await rds?.close();
  await stack?.close();
});

async function mint(roleArn: string, sessionName: string): Promise<SessionCredentials> {
  const result = await assumeRoleWithWindmillToken(
    { roleArn, region: REGION, audience: "sts.amazonaws.com", sessionName, durationSeconds: SESSION_SECONDS },
    () => {},
  );
  return result.credentials;
}

type Password = string | (() => Promise<string>);

function signer(options: { user?: string; port?: number; region?: string; hostname?: string; creds?: SessionCredentials } = {}): Signer {
  const creds = options.creds ?? credentials;
  return new Signer({
    hostname: options.hostname ?? rds.host,
    port: options.port ?? rds.port,
    username: options.user ?? IAM_USER,
    region: options.region ?? REGION,
    credentials: { accessKeyId: creds.accessKeyId, secretAccessKey: creds.secretAccessKey, sessionToken: creds.sessionToken },
  });
}

/** A pool of one connection, closed after the file; each call asks for a fresh token, as production code does. */
function connect(options: { user?: string; password?: Password; ssl?: postgres.Options<{}>["ssl"]; host?: string } = {}): Sql {
  const user = options.user ?? IAM_USER;
  const sql = postgres({
    host: options.host ?? rds.host,
    port: rds.port,
    user,
    database: DATABASE,
    password: options.password ?? (() => signer({ user }).getAuthToken()),
    ssl: options.ssl ?? { ca: rds.caCertPem },
    max: 1,
    connect_timeout: CONNECT_TIMEOUT_SECONDS,
    onnotice: () => {},
  });
  clients.push(sql);
  return sql;
}

/** The client sees RDS's one message; the stand-in's log says why. */
async function expectRefused(sql: Sql, user: string, reason: RegExp, instance: RdsStandIn = rds): Promise<void> {
  const before = instance.lastAuthFailures.at(-1);
  await expect(sql`select 1`).rejects.toMatchObject({ code: "28P01", message: PAM_FAILED(user) });
  const failure = instance.lastAuthFailures.at(-1);
  expect(failure).not.toBe(before);
  expect(failure).toMatchObject({ user, database: DATABASE });
  expect(failure!.reason).toMatch(reason);
}

/** Signs like the SDK's Signer, but at a chosen time (the Signer always signs "now"). */
async function tokenSignedAt(signingDate: Date): Promise<string> {
  const sigv4 = new SignatureV4({
    service: "rds-db",
    region: REGION,
    credentials: { accessKeyId: credentials.accessKeyId, secretAccessKey: credentials.secretAccessKey, sessionToken: credentials.sessionToken },
    sha256: Hash.bind(null, "sha256"),
  });
  const authority = `${rds.host}:${rds.port}`;
  const presigned = await sigv4.presign(
    { method: "GET", protocol: "https:", hostname: rds.host, port: rds.port, path: "/", query: { Action: "connect", DBUser: IAM_USER }, headers: { host: authority } },
    { signingDate, expiresIn: 900 },
  );
  const query = Object.entries(presigned.query ?? {}).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`);
  return `${authority}/?${query.join("&")}`;
}

function* copyLines(rows: number): Generator<Buffer> {
  for (let start = 0; start < rows; start += ROWS_PER_CHUNK) {
    let chunk = "";
    for (let id = start; id < Math.min(rows, start + ROWS_PER_CHUNK); id++) chunk += `${id}\tpayload-${id.toString(36).padStart(8, "0")}-${"x".repeat(16)}\n`;
    yield Buffer.from(chunk);
  }
}

describe("RDS stand-in: IAM auth over verified TLS", () => {
  test("a query with arguments runs as the IAM user", async () => {
    const sql = connect();
    const [row] = await sql<{ answer: number; user: string; text: string }[]>`
      select ${20}::int + ${22}::int as answer, current_user as user, ${"ünïcödé ✓"}::text as text`;
    expect(row).toEqual({ answer: 42, user: IAM_USER, text: "ünïcödé ✓" });
  });

  test("a token signed for localhost works when the client dials localhost (SNI names the host)", async () => {
    const sql = connect({ host: "localhost", password: () => signer({ hostname: "localhost" }).getAuthToken() });
    const [row] = await sql<{ user: string }[]>`select current_user as user`;
    expect(row!.user).toBe(IAM_USER);
  });

  test("cancelling a query reaches the backend through the gateway", async () => {
    const sql = connect();
    await sql`select 1`;
    const sleeping = sql`select pg_sleep(30)`.execute();
    // Cancelled once the backend runs it (a cancel sent before would find nothing to cancel).
    const watcher = connect();
    while ((await watcher`select 1 from pg_stat_activity where state = 'active' and query = 'select pg_sleep(30)'`).length === 0) await sleep(20);
    await watcher.end();
    sleeping.cancel();
    await expect(sleeping).rejects.toMatchObject({ code: "57014" });
  });
});

describe("RDS stand-in: refusals", () => {
  test("a client without TLS is rejected by pg_hba (rds.force_ssl)", async () => {
    const sql = connect({ ssl: false });
    await expect(sql`select 1`).rejects.toMatchObject({
      code: "28000",
      message: `pg_hba.conf rejects connection for host "127.0.0.1", user "${IAM_USER}", database "${DATABASE}", no encryption`,
    });
  });

  test("a token signed for another port", async () => {
    await expectRefused(connect({ password: () => signer({ port: rds.port + 1 }).getAuthToken() }), IAM_USER, /signed for 127\.0\.0\.1:\d+, but the client connected to/);
  });

  test("a token for another user", async () => {
    await expectRefused(connect({ password: () => signer({ user: UNLISTED_USER }).getAuthToken() }), IAM_USER, /DBUser is "other_user"/);
  });

  test("a token for another region", async () => {
    await expectRefused(connect({ password: () => signer({ region: "eu-west-1" }).getAuthToken() }), IAM_USER, /region "eu-west-1"/);
  });

  test("a token signed 16 minutes ago has expired", async () => {
    const token = await tokenSignedAt(new Date(Date.now() - 16 * 60_000));
    await expectRefused(connect({ password: token }), IAM_USER, /expired at/);
  });

  test("a token that was valid 14 minutes ago still is (the same signing code path)", async () => {
    const sql = connect({ password: await tokenSignedAt(new Date(Date.now() - 14 * 60_000)) });
    expect([...(await sql`select 1 as one`)]).toEqual([{ one: 1 }]);
  });

  test("an access key that belongs to no session", async () => {
    const forged = { ...credentials, accessKeyId: `ASIA${randomBytes(8).toString("hex").toUpperCase()}` };
    await expectRefused(connect({ password: () => signer({ creds: forged }).getAuthToken() }), IAM_USER, /belongs to no STS session/);
  });

  test("a session token that differs only in its last byte", async () => {
    const last = credentials.sessionToken.at(-1);
    const altered = { ...credentials, sessionToken: `${credentials.sessionToken.slice(0, -1)}${last === "A" ? "B" : "A"}` };
    // Signed with the altered token: the token comparison names it, before the signature check.
    await expectRefused(connect({ password: () => signer({ creds: altered }).getAuthToken() }), IAM_USER, /X-Amz-Security-Token is not the session token of ASIA/);
  });

  test("a tampered signature", async () => {
    const tamper = async () => {
      const token = await signer().getAuthToken();
      const tampered = token.replace(/(X-Amz-Signature=[0-9a-f]{63})([0-9a-f])/, (_, head: string, last: string) => head + (last === "0" ? "1" : "0"));
      expect(tampered).not.toBe(token);
      return tampered;
    };
    await expectRefused(connect({ password: tamper }), IAM_USER, /signature does not match/);
  });

  test("a session that has expired", async () => {
    const roleArn = `arn:aws:iam::${ACCOUNT_ID}:role/${ROLE_NAME}`;
    const expiring = await mint(roleArn, "rds-expiring");
    const res = await fetch(`${stack.sts.url}/_local/sessions/${expiring.accessKeyId}/expire`, { method: "POST" });
    expect(res.ok).toBe(true);
    await expectRefused(connect({ password: () => signer({ creds: expiring }).getAuthToken() }), IAM_USER, /expired at/);
  });

  test("a user without rds_iam", async () => {
    await expectRefused(connect({ user: NO_RDS_IAM_USER }), NO_RDS_IAM_USER, /not a member of rds_iam/);
  });

  test("a user the role's policy does not allow", async () => {
    await expectRefused(connect({ user: UNLISTED_USER }), UNLISTED_USER, /may not rds-db:connect to arn:aws:rds-db:us-east-1:123456789012:dbuser:db-[A-Z0-9]+\/other_user/);
  });

  test("a role allowed rds-db:connect only from some addresses: the gateway reports the client's (loopback)", async () => {
    const allowedFrom = async (roleName: string, cidrs: string[]) =>
      mint(await connectRole(roleName, [IAM_USER], { IpAddress: { "aws:SourceIp": cidrs } }), roleName);
    const local = await allowedFrom("rds-loopback", ["127.0.0.0/8", "::1/128"]);
    const [row] = await connect({ password: () => signer({ creds: local }).getAuthToken() })<{ user: string }[]>`select current_user as user`;
    expect(row!.user).toBe(IAM_USER);
    const office = await allowedFrom("rds-office", ["203.0.113.0/24"]);
    await expectRefused(connect({ password: () => signer({ creds: office }).getAuthToken() }), IAM_USER, /may not rds-db:connect/);
  });

  test("a user that does not exist", async () => {
    await expectRefused(connect({ user: GHOST_USER }), GHOST_USER, /role "ghost_user" does not exist/);
  });

  test("the reasons never contain a token or a secret", () => {
    const log = JSON.stringify(rds.lastAuthFailures);
    expect(log).not.toContain(credentials.sessionToken);
    expect(log).not.toContain(credentials.secretAccessKey);
    expect(log).not.toContain("X-Amz-Signature");
  });
});

describe("RDS stand-in: the client verifies the server (verify-full)", () => {
  test("a CA that did not sign the gateway's certificate", async () => {
    const sql = connect({ ssl: { ca: rootCertificates[0] } });
    await expect(sql`select 1`).rejects.toThrow(/certificate|issuer/i);
  });

  test("a host name the certificate does not name", async () => {
    const sql = connect({ ssl: { ca: rds.caCertPem, servername: "db.example.com" } });
    await expect(sql`select 1`).rejects.toThrow(/db\.example\.com|altnames|hostname/i);
  });
});

// RDS checks the token against its own endpoint, not the address dialled (RDS User Guide,
// UsingWithRDS.IAMDBAuth.html): through a tunnel the client dials 127.0.0.1:<local port>
// but signs for, and verifies the certificate of, the endpoint.
describe("RDS stand-in: an instance with an endpoint name, reached through a tunnel", () => {
  const ENDPOINT = { host: "mydb.abc123.us-east-1.rds.amazonaws.com", port: 5432 };
  let endpointRds: RdsStandIn;

  beforeAll(async () => {
    // The same DbiResourceId as `rds`, so the role's rds-db:connect statement covers it too.
    endpointRds = await startRds({ stsUrl: stack.sts.url, dbiResourceId: rds.dbiResourceId, endpoint: ENDPOINT });
    await endpointRds.adminSql(`create user ${IAM_USER}; grant rds_iam to ${IAM_USER};`);
  }, 30_000);
  afterAll(() => endpointRds?.close());

  /** Dials the gateway at 127.0.0.1 (the tunnel's near end) and checks the certificate against the endpoint's name. */
  function viaTunnel(signedFor: { hostname: string; port: number }): Sql {
    const sql = postgres({
      host: endpointRds.host,
      port: endpointRds.port,
      user: IAM_USER,
      database: DATABASE,
      password: () => signer(signedFor).getAuthToken(),
      ssl: { ca: endpointRds.caCertPem, servername: ENDPOINT.host },
      max: 1,
      connect_timeout: CONNECT_TIMEOUT_SECONDS,
      onnotice: () => {},
    });
    clients.push(sql);
    return sql;
  }

  test("the stand-in reports the endpoint it was given", () => {
    expect(endpointRds.endpoint).toEqual(ENDPOINT);
    expect(rds.endpoint).toBeUndefined();
  });

  test("a token signed for the endpoint passes, and the certificate names the endpoint (verify-full)", async () => {
    const [row] = await viaTunnel({ hostname: ENDPOINT.host, port: ENDPOINT.port })<{ user: string }[]>`select current_user as user`;
    expect(row!.user).toBe(IAM_USER);
  });

  test("a token signed for the address dialled is refused: it names the tunnel, not the instance", async () => {
    await expectRefused(viaTunnel({ hostname: endpointRds.host, port: endpointRds.port }), IAM_USER,
      new RegExp(`signed for 127\\.0\\.0\\.1:${endpointRds.port}, but this instance is ${ENDPOINT.host.replace(/\./g, "\\.")}:${ENDPOINT.port}`), endpointRds);
  });

  test("a token signed for a CNAME of the endpoint is refused", async () => {
    await expectRefused(viaTunnel({ hostname: "db.example.internal", port: ENDPOINT.port }), IAM_USER,
      /signed for db\.example\.internal:5432, but this instance is mydb\.abc123\.us-east-1\.rds\.amazonaws\.com:5432/, endpointRds);
  });

  test("a token signed for the endpoint's name but the tunnel's port is refused", async () => {
    await expectRefused(viaTunnel({ hostname: ENDPOINT.host, port: endpointRds.port }), IAM_USER,
      new RegExp(`signed for mydb\\.abc123\\.us-east-1\\.rds\\.amazonaws\\.com:${endpointRds.port}, but this instance is`), endpointRds);
  });
});

describe("RDS stand-in: COPY through the gateway", () => {
  test("COPY FROM STDIN and COPY TO STDOUT stream a few MB", async () => {
    const sql = connect();
    await sql`truncate copy_target`;
    const sent = createHash("sha256");
    let sentBytes = 0;
    const counted = Readable.from((function* () {
      for (const chunk of copyLines(COPY_ROWS)) {
        sent.update(chunk);
        sentBytes += chunk.length;
        yield chunk;
      }
    })());
    await pipeline(counted, await sql`copy copy_target (id, payload) from stdin`.writable());
    expect([...(await sql`select count(*)::int as n from copy_target`)]).toEqual([{ n: COPY_ROWS }]);

    const received = createHash("sha256");
    let receivedBytes = 0;
    for await (const chunk of await sql`copy (select * from copy_target order by id) to stdout`.readable()) {
      received.update(chunk as Buffer);
      receivedBytes += (chunk as Buffer).length;
    }
    expect(sentBytes).toBeGreaterThan(3_000_000);
    expect(receivedBytes).toBe(sentBytes);
    expect(received.digest("hex")).toBe(sent.digest("hex"));
  });

  test("a COPY whose backend is killed mid-stream leaves no rows", async () => {
    const sql = connect();
    const killed = rds.faults.killBackendOnNextCopy({ afterBytes: KILL_AFTER_BYTES });
    const writable = await sql`copy copy_killed (id, payload) from stdin`.writable();
    let sentBytes = 0;
    const rows = Readable.from((async function* () {
      for (const chunk of copyLines(COPY_ROWS)) {
        // Past the threshold, the rest waits for the kill and then trickles, so the kill lands mid-stream.
        if (sentBytes >= 2 * KILL_AFTER_BYTES) {
          await killed;
          await sleep(AFTER_KILL_CHUNK_DELAY_MS);
        }
        sentBytes += chunk.length;
        yield chunk;
      }
    })());
    // Which error depends on where the close meets the writer: closed connection, broken pipe
    // (Bun words a write after the peer's FIN "socket has been ended by the other party") or reset.
    await expect(pipeline(rows, writable)).rejects.toThrow(/CONNECTION_CLOSED|EPIPE|ECONNRESET|terminating connection|socket has been ended by the other party/);
    const kill = await killed;
    expect(kill.bytesProcessed).toBeGreaterThanOrEqual(KILL_AFTER_BYTES);
    expect(sentBytes).toBeLessThan(4 * KILL_AFTER_BYTES);
    expect(await rds.adminSql("select count(*)::int as n from copy_killed")).toEqual([{ n: 0 }]);
    // A new connection (new token) works. Not `sql`: postgres.js 3.4 hands the dead
    // connection's FATAL to the next query of that pool.
    expect([...(await connect()`select count(*)::int as n from copy_killed`)]).toEqual([{ n: 0 }]);
  });
});

describe("RDS stand-in: connection faults", () => {
  test("dropNextConnections closes that many connections before TLS", async () => {
    rds.faults.dropNextConnections = 1;
    await expect(connect()`select 1`).rejects.toThrow();
    expect(rds.faults.dropNextConnections).toBe(0);
    expect([...(await connect()`select 1 as one`)]).toEqual([{ one: 1 }]);
  });

  test("restart drops open connections and listens again on the same port", async () => {
    const sql = connect();
    const [before] = await sql<{ pid: number }[]>`select pg_backend_pid() as pid`;
    const port = rds.port;
    await rds.faults.restart();
    expect(rds.port).toBe(port);
    // The pooled connection died with the restart; the next query reconnects.
    await sql`select 1`.catch(() => undefined);
    const [after] = await sql<{ pid: number }[]>`select pg_backend_pid() as pid`;
    expect(after!.pid).not.toBe(before!.pid);
  });
});
