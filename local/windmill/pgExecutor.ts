// Runs a PostgreSQL script job as Windmill's worker does (windmill-worker/src/pg_executor.rs
// do_postgresql): `-- $1 name` argument declarations, the `database` arg as the hub's
// `postgresql` resource, TLS as its sslmode and root certificate say, the statements run in
// order and the last one's rows returned as an array of objects. Not followed: the inline
// `-- database <path>` annotation, `datatable://`, `-- result_collection=` strategies other
// than the default, and `-- s3` streaming.
import { X509Certificate } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { rootCertificates } from "node:tls";
import postgres from "postgres";
import type { JobOutcome } from "./worker.ts";

/**
 * windmill-parser-sql's argument declaration: `-- $1 name`, optionally `(type)` and `= default`
 * (the newest RE_ARG_PGSQL, quoted in full).
 */
const ARG_DECLARATION = /^-- \$(\d+) (\w+)(?: \(([A-Za-z0-9_\[\]]+)\))?(?: ?\= ?(.+))? *(?:\r|\n|$)/gm;
/** pg_executor.rs connect: the connect timeout. */
const CONNECT_TIMEOUT_SECONDS = 20;

/** pg_executor.rs PgDatabase: the fields it deserializes the `database` arg into. */
interface PgDatabase {
  host: string;
  user?: string;
  password?: string;
  port?: number;
  sslmode?: string;
  dbname: string;
  root_certificate_pem?: string;
}

interface ArgDeclaration {
  index: number;
  name: string;
  type: string | undefined;
}

class PgJobError extends Error {}

export function parseArgDeclarations(code: string): ArgDeclaration[] {
  return [...code.matchAll(ARG_DECLARATION)].map((m) => ({ index: Number(m[1]), name: m[2], type: m[3]?.toLowerCase() }));
}

export async function runPostgresqlJob(code: string, args: Record<string, unknown>): Promise<JobOutcome> {
  try {
    const result = await executePostgresql(code, args);
    return { success: true, result, logs: "" };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    return { success: false, result: { error: { name: "ExecutionErr", message } }, logs: `${message}\n` };
  }
}

async function executePostgresql(code: string, args: Record<string, unknown>): Promise<unknown[]> {
  // do_postgresql: with no inline `-- database` annotation, the `database` arg (already $res:-resolved).
  if (args.database === undefined || args.database === null) throw new PgJobError("Missing database argument");
  const db = args.database as PgDatabase;
  const declared = new Map(parseArgDeclarations(code).map((d) => [d.index, d]));
  const sql = postgres({
    host: db.host,
    port: db.port ?? 5432,
    // to_uri: the user defaults to postgres.
    username: db.user ?? "postgres",
    password: db.password ?? "",
    database: db.dbname,
    ssl: tlsFor(db),
    max: 1,
    connect_timeout: CONNECT_TIMEOUT_SECONDS,
    onnotice: () => {},
  });
  try {
    const statements = splitStatements(code);
    let rows: unknown[] = [];
    for (const [i, statement] of statements.entries()) {
      const { text, indices } = renumberParameters(statement);
      // A missing value binds as NULL (value.unwrap_or_else(|| &Value::Null)).
      const values = indices.map((n) => bindValue(args[declared.get(n)?.name ?? ""], declared.get(n)?.type));
      const result = await sql.unsafe(text, values as postgres.ParameterOrJSON<never>[]);
      // LastStatementAllRows (the default): earlier statements' results are skipped.
      if (i === statements.length - 1) rows = result.map((row) => toJson(row));
    }
    return rows;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/**
 * to_uri and connect: require, verify-ca and verify-full use TLS, anything else none. A
 * non-empty root_certificate_pem is added to the system's trusted roots (native-tls
 * TlsConnector::builder().add_root_certificate: the system store stays) and the certificate and
 * host name are checked; without one Windmill sets danger_accept_invalid_certs and _hostnames,
 * so even verify-full then accepts any certificate.
 */
function tlsFor(db: PgDatabase): postgres.Options<Record<string, never>>["ssl"] {
  if (!["require", "verify-ca", "verify-full"].includes(db.sslmode ?? "")) return false;
  const pem = db.root_certificate_pem?.trim();
  if (!pem) return { rejectUnauthorized: false };
  try {
    new X509Certificate(pem);
  } catch (err) {
    throw new PgJobError(`Invalid Certs: ${err instanceof Error ? err.message : String(err)}`);
  }
  return { ca: [...systemRoots(), pem], rejectUnauthorized: true };
}

/**
 * The roots native-tls trusts on Linux (OpenSSL's default store): here Node's bundled roots,
 * plus the file OpenSSL's SSL_CERT_FILE names, which replaces the default file there.
 */
function systemRoots(): string[] {
  const file = process.env.SSL_CERT_FILE;
  return file && existsSync(file) ? [...rootCertificates, readFileSync(file, "utf8")] : [...rootCertificates];
}

/** A declared type turns the JSON value into what Windmill binds (convert_val's main cases). */
function bindValue(value: unknown, type: string | undefined): unknown {
  if (value === undefined || value === null) return null;
  if (type && /^(int|integer|int[248]|bigint|smallint|serial|bigserial|oid)$/.test(type)) return Number(value);
  if (type && /^(float[48]?|real|double|numeric|decimal)$/.test(type)) return Number(value);
  if (type && /^(bool|boolean)$/.test(type)) return Boolean(value);
  if (typeof value === "object") return JSON.stringify(value);
  return value;
}

/**
 * parse_sql_blocks: statements split on `;` outside quotes, dollar quotes and comments;
 * blank ones (a trailing `;`, comment-only text) dropped.
 */
export function splitStatements(code: string): string[] {
  const statements: string[] = [];
  let start = 0;
  let i = 0;
  while (i < code.length) {
    const rest = code.slice(i);
    if (rest.startsWith("--")) i = lineEnd(code, i);
    else if (rest.startsWith("/*")) i = indexAfter(code, "*/", i + 2);
    else if (code[i] === "'" || code[i] === '"') i = indexAfter(code, code[i], i + 1);
    else if (/^\$(\w*)\$/.test(rest)) {
      const tag = /^\$(\w*)\$/.exec(rest)![0];
      i = indexAfter(code, tag, i + tag.length);
    } else if (code[i] === ";") {
      statements.push(code.slice(start, i));
      start = ++i;
    } else i++;
  }
  statements.push(code.slice(start));
  return statements.filter((s) => stripComments(s).trim() !== "");
}

function lineEnd(code: string, from: number): number {
  const end = code.indexOf("\n", from);
  return end === -1 ? code.length : end + 1;
}

function indexAfter(code: string, token: string, from: number): number {
  const end = code.indexOf(token, from);
  return end === -1 ? code.length : end + token.length;
}

function stripComments(statement: string): string {
  return statement.replace(/--[^\n]*/g, "").replace(/\/\*[\s\S]*?\*\//g, "");
}

/** do_postgresql: each statement's `$N` indices renumbered densely ($3 alone becomes $1), in ascending order. */
function renumberParameters(statement: string): { text: string; indices: number[] } {
  const code = stripComments(statement);
  const indices = [...new Set([...code.matchAll(/\$(\d+)/g)].map((m) => Number(m[1])))].sort((a, b) => a - b);
  const dense = new Map(indices.map((n, i) => [n, i + 1]));
  return { text: code.replace(/\$(\d+)/g, (_, n: string) => `$${dense.get(Number(n))}`), indices };
}

/** postgres_row_to_json_value: a row keyed by column name, as JSON (bigint as a number). */
function toJson(row: Record<string, unknown>): Record<string, unknown> {
  return JSON.parse(JSON.stringify(row, (_, v: unknown) => (typeof v === "bigint" ? Number(v) : v))) as Record<string, unknown>;
}
