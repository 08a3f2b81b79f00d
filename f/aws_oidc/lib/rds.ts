// PostgreSQL on RDS with IAM database authentication: no password anywhere. Each new
// connection signs a fresh 15-minute token with the session's credentials; TLS verifies
// the server certificate unless a weaker mode is asked for by name. The token and the
// certificate name the endpoint (a DB instance's, an Aurora cluster's writer or reader
// endpoint, an RDS Proxy's), which may differ from the address dialled (a tunnel, a CNAME):
// signingHost/signingPort name it then.
import { Signer } from "@aws-sdk/rds-signer";
import { isIP } from "node:net";
import postgres, { type Sql } from "postgres";
import { AwsCallError } from "./awsError.ts";
import { awsClientConfig, type CredentialsProvider } from "./credentialsProvider.ts";
import type { AwsStsCredentials } from "./credentialsResource.ts";
import { InputError } from "./validate.ts";

/** The resource type of an IAM-auth PostgreSQL connection (no password field, by design). */
export interface AwsRdsIamPostgres {
  /** The address dialled: the endpoint itself, or a tunnel, proxy or CNAME in front of it. */
  host: string;
  port: number;
  /** The endpoint (instance, Aurora cluster writer/reader, RDS Proxy) the token is signed for and the certificate is checked against, when `host` is not it. */
  signingHost?: string;
  /** The endpoint's port, when `port` is a tunnel's or proxy's. */
  signingPort?: number;
  database: string;
  user: string;
  /** Defaults to the credentials' region. */
  region?: string;
  tlsMode?: TlsMode;
  /** PEM bundle that signs the server certificate (RDS: the global bundle). */
  caCert?: string;
}

/** RDS requires TLS for IAM auth, so there is no "disable". */
export type TlsMode = "verify-full" | "verify-ca" | "require";
const TLS_MODES: TlsMode[] = ["verify-full", "verify-ca", "require"];
/** The RDS CA bundle users paste into caCert; public, from AWS's RDS SSL documentation. */
const RDS_CA_BUNDLE_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem";

/** A DNS name: dot-separated labels of letters, digits and hyphens (RDS endpoints are such names). */
const HOST_NAME_PATTERN = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** A resource whose inputs were checked; the signing endpoint is resolved (default: host and port). */
export interface CheckedDatabase {
  host: string;
  port: number;
  signingHost: string;
  signingPort: number;
  database: string;
  user: string;
  region?: string;
  tlsMode: TlsMode;
  caCert: string;
}

export interface RdsConnection {
  sql: Sql;
  warnings: string[];
  describe: string;
}

export function checkDatabase(value: unknown): CheckedDatabase {
  const db = (value ?? {}) as Partial<AwsRdsIamPostgres>;
  if (typeof value !== "object" || !db.host) {
    throw new InputError("database", "it is not an aws_rds_iam_postgres resource (no host)", "Pick an aws_rds_iam_postgres resource: host, port, database, user, tlsMode, caCert");
  }
  const port = checkPort("database.port", db.port ?? 5432, "Use the instance's port, usually 5432");
  // A signingHost equal to host says nothing more (a checked database carries both), so it is not refused as an IP.
  const signingHost = db.signingHost === db.host ? db.host : (checkSigningHost(db.signingHost) ?? db.host);
  const signingPort = isAbsent(db.signingPort) ? port : checkPort("database.signingPort", db.signingPort, "Use the instance endpoint's port (usually 5432), or leave it empty when it is port");
  if (!db.user) throw new InputError("database.user", "it is empty", "Use a database user that was granted rds_iam");
  const tlsMode = (db.tlsMode ?? "verify-full") as TlsMode;
  if (!TLS_MODES.includes(tlsMode)) {
    throw new InputError("database.tlsMode", `${JSON.stringify(db.tlsMode)} is not a TLS mode`,
      `Use verify-full (default), or name a weaker mode explicitly: ${TLS_MODES.slice(1).join(", ")}. RDS IAM authentication always needs TLS`);
  }
  return { host: db.host, port, signingHost, signingPort, database: db.database || "postgres", user: db.user, region: db.region, tlsMode, caCert: db.caCert ?? "" };
}

/** Windmill's run form sends an optional field left empty as "" or null. */
function isAbsent(value: unknown): boolean {
  return value === undefined || value === null || value === "";
}

function checkPort(input: string, value: unknown, fix: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new InputError(input, `${JSON.stringify(value)} is not a port`, fix);
  return port;
}

/**
 * The endpoint name RDS checks the token against (RDS User Guide, UsingWithRDS.IAMDBAuth.html:
 * a custom DNS record cannot stand in for the instance endpoint when generating the token).
 */
function checkSigningHost(value: unknown): string | undefined {
  if (isAbsent(value)) return undefined;
  const fix = "Use the endpoint name alone, e.g. mydb.abc123.us-east-1.rds.amazonaws.com, an Aurora cluster's mycluster.cluster-abc123.us-east-1.rds.amazonaws.com or an RDS Proxy's myproxy.proxy-abc123.us-east-1.rds.amazonaws.com (its port goes in signingPort), or leave it empty when host is the endpoint";
  if (typeof value !== "string") throw new InputError("database.signingHost", `${JSON.stringify(value)} is not a host name`, fix);
  const host = value.trim();
  if (isIP(host)) throw new InputError("database.signingHost", `${JSON.stringify(host)} is an IP address, but the token and the certificate name the endpoint's DNS name`, fix);
  if (!HOST_NAME_PATTERN.test(host)) throw new InputError("database.signingHost", `${JSON.stringify(host)} is not a host name (no scheme, port or path)`, fix);
  return host;
}

function tlsOptions(db: CheckedDatabase, warnings: string[]): object {
  // The certificate is the endpoint's, not the tunnel's: SNI and the host-name check use its name.
  const servername = db.signingHost !== db.host ? { servername: db.signingHost } : {};
  if (db.tlsMode === "require") {
    warnings.push("tlsMode require: the connection is encrypted but the server is NOT verified, so an impostor could receive the IAM token. Use verify-full with caCert.");
    return { rejectUnauthorized: false, ...servername };
  }
  if (!db.caCert) {
    throw new InputError("database.caCert", `tlsMode ${db.tlsMode} needs the CA that signs the server certificate`,
      `Paste the RDS CA bundle (${RDS_CA_BUNDLE_URL}) into caCert`);
  }
  if (db.tlsMode === "verify-ca") {
    warnings.push("tlsMode verify-ca: the certificate chain is checked but not the host name. Use verify-full unless you connect through a proxy or tunnel.");
    return { ca: db.caCert, rejectUnauthorized: true, checkServerIdentity: () => undefined, ...servername };
  }
  return { ca: db.caCert, rejectUnauthorized: true, ...servername };
}

/** Signs IAM tokens for the endpoint; the connection dials host:port: RDS checks the token against its own endpoint. */
export function rdsSigner(db: CheckedDatabase, credentials: CredentialsProvider, defaultRegion: string): Signer {
  return new Signer({ hostname: db.signingHost, port: db.signingPort, username: db.user, region: db.region ?? defaultRegion, credentials });
}

/**
 * Opens a pool on the database. `max` connections at most; each new one gets its own
 * IAM token from the shared credentials provider.
 */
function connectRds(database: unknown, credentials: CredentialsProvider, defaultRegion: string, max = 1): RdsConnection {
  const db = checkDatabase(database);
  const warnings: string[] = [];
  const signer = rdsSigner(db, credentials, defaultRegion);
  const sql = postgres({
    host: db.host,
    port: db.port,
    database: db.database,
    username: db.user,
    // A function: postgres calls it for every new connection, so tokens are never reused past 15 minutes.
    password: () => signer.getAuthToken(),
    ssl: tlsOptions(db, warnings),
    max,
    idle_timeout: 20,
    connect_timeout: 15,
    onnotice: () => {},
    connection: { application_name: "windmill-aws-oidc" },
  });
  const signedFor = db.signingHost !== db.host || db.signingPort !== db.port ? ` (token for ${db.signingHost}:${db.signingPort})` : "";
  return { sql, warnings, describe: `${db.user}@${db.host}:${db.port}/${db.database}${signedFor}` };
}

/**
 * Runs `fn` on a pool opened with the credentials' shared provider and region (as every
 * AWS client of the job gets them), logs the TLS warnings, turns a failure into one that
 * says what to fix (`explain`), and always ends the pool.
 */
export async function withRds<T>(
  credentials: AwsStsCredentials | string,
  database: unknown,
  fn: (rds: RdsConnection) => Promise<T>,
  explain: (err: unknown, describe: string) => Error = explainPgError,
): Promise<T> {
  const config = await awsClientConfig(credentials);
  return withRdsSession(config.credentials, config.region, database, fn, explain);
}

/** withRds on a session in hand (the doctor's, which is never saved) instead of a saved resource. */
export async function withRdsSession<T>(
  credentials: CredentialsProvider,
  region: string,
  database: unknown,
  fn: (rds: RdsConnection) => Promise<T>,
  explain: (err: unknown, describe: string) => Error = explainPgError,
): Promise<T> {
  const rds = connectRds(database, credentials, region);
  rds.warnings.forEach((w) => console.warn(`WARNING: ${w}`));
  try {
    return await fn(rds);
  } catch (err) {
    throw explain(err, rds.describe);
  } finally {
    await rds.sql.end({ timeout: 5 });
  }
}

/** Splits `schema.table` and quotes each part, so names never become SQL. */
export function quoteTableName(input: string, value: string): string {
  const parts = value.split(".");
  if (parts.length > 2 || parts.some((p) => !/^[A-Za-z_][\w$]{0,62}$/.test(p))) {
    throw new InputError(input, `${JSON.stringify(value)} is not a table name`, "Use table or schema.table with letters, digits and _");
  }
  return parts.map(quoteIdentifier).join(".");
}

export function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/** The fields of a PostgreSQL ErrorResponse that postgres (porsager) puts on its error. */
export interface PgErrorFields {
  code?: string;
  message?: string;
  detail?: string;
  hint?: string;
  position?: string;
  /** The CONTEXT field: where it happened, e.g. `COPY orders, line 2: "1,abc"`. */
  where?: string;
}

/** PostgreSQL quotes the offending line in CONTEXT: enough of it to find the line, not a whole record. */
const CONTEXT_MAX_CHARS = 300;

/** CONTEXT as an error message quotes it: at most CONTEXT_MAX_CHARS. */
export function clipContext(text: string): string {
  return text.length > CONTEXT_MAX_CHARS ? `${text.slice(0, CONTEXT_MAX_CHARS)}…` : text;
}

/** Turns a postgres error into one that names what to fix; auth failures explain IAM's side. */
export function explainPgError(err: unknown, where: string): Error {
  if (err instanceof InputError || err instanceof AwsCallError) return err;
  const { problem, fix } = pgFailure(err, where);
  return new Error(`${problem}\nFix: ${fix}`);
}

/** What failed (with PostgreSQL's own code and message) and what to change, apart. */
export function pgFailure(err: unknown, where: string): { code: string | undefined; problem: string; fix: string } {
  const e = err as PgErrorFields;
  const context = e.where ? `\nContext: ${clipContext(e.where)}` : "";
  const problem = `PostgreSQL (${where}) failed${e.code ? ` with ${e.code}` : ""}: ${e.message ?? String(err)}${e.detail ? `\n${e.detail}` : ""}${e.hint ? `\nHint: ${e.hint}` : ""}${context}`;
  return { code: e.code, problem, fix: pgFix(e.code, e.message ?? "") };
}

/**
 * RDS answers a refused IAM token with `PAM authentication failed` (an IAM user) or `password
 * authentication failed` (a user without rds_iam). A failed PAM login is SQLSTATE 28000
 * (PostgreSQL src/backend/libpq/auth.c auth_failed; 28P01 is only password/md5/SCRAM), the
 * same code as the pg_hba refusal of a connection without TLS: the message tells them apart.
 */
export function isIamAuthFailure(message: string): boolean {
  return /(PAM|password) authentication failed/.test(message);
}

/** rds.force_ssl: Postgres's pg_hba refusal, "no pg_hba.conf entry" or "pg_hba.conf rejects", "no encryption" (PostgreSQL 14+) or "SSL off". */
export function isNoTlsRefusal(code: string | undefined, message: string): boolean {
  return code === "28000" && /pg_hba\.conf/.test(message) && /no encryption|SSL off/.test(message);
}

function pgFix(code: string | undefined, message: string): string {
  if (isIamAuthFailure(message)) {
    return "RDS refused the IAM token. Check: the database user was granted rds_iam; the role allows rds-db:connect on arn:aws:rds-db:<region>:<account>:dbuser:<id>/<user>, where <id> is the instance's DbiResourceId (db-…), an Aurora cluster's DbClusterResourceId (cluster-…) or an RDS Proxy's id (prx-…); the region and the endpoint the token is signed for are the instance's, cluster's or proxy's own: host/port, or signingHost/signingPort when host is a tunnel or CNAME (RDS checks the token against its endpoint, not the address dialled).";
  }
  if (isNoTlsRefusal(code, message)) return "the server requires TLS (RDS IAM auth always does, and rds.force_ssl refuses connections without it); keep tlsMode verify-full.";
  // Before the CA check: Node words a name mismatch "Hostname/IP does not match certificate's altnames".
  if (/Hostname\/IP does not match|altnames/i.test(message)) {
    return "the certificate does not name the host checked: use the instance endpoint as host, or, through a tunnel, proxy or CNAME, set signingHost to the instance endpoint (the certificate names it).";
  }
  if (/self[- ]signed|unable to verify|UNABLE_TO_GET_ISSUER|certificate/i.test(message)) {
    return `the server certificate is not signed by caCert: paste the RDS CA bundle (${RDS_CA_BUNDLE_URL}).`;
  }
  // Aurora's reader endpoint reaches a replica, where every transaction is read-only (Aurora User Guide, "Amazon Aurora endpoint connections").
  if (code === "25006") return "the server accepts reads only: an Aurora reader endpoint (cluster-ro-) or a replica. Write through the cluster (writer) endpoint, <name>.cluster-<id>.<region>.rds.amazonaws.com, as host or signingHost.";
  if (code === "57014") return "the statement hit statement_timeout: raise it, or add a WHERE/LIMIT.";
  if (code === "42P01") return "the table does not exist: create it first, or check schema and spelling.";
  if (code === "22P04" || code === "22P02") return "a CSV line does not match the table's columns or types (delimiter, quote, header and columns inputs).";
  if (code === "ECONNREFUSED" || code === "ETIMEDOUT") return "the database is not reachable from the worker: check host, port and the security group.";
  return "see the PostgreSQL error code above.";
}
