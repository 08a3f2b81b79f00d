// The load flow's check before it fans out: one connection with the flow's credentials
// proves the database resource works, the table exists and takes inserts from the IAM user,
// the ledger is there and writable, and the first object's columns fit the table. A typo
// fails here once, with one fix, instead of once per object in parallel loads.
import { GetObjectCommand } from "@aws-sdk/client-s3";
import type { Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import type { Sql } from "postgres";
import type { AwsStsCredentials } from "./credentialsResource.ts";
import { readFirstRecord } from "./csvHeader.ts";
import { missingLedgerError } from "./loadLedger.ts";
import { explainPgError, quoteTableName, withRds } from "./rds.ts";
import { checkCsvFormat, type CsvFormat } from "./s3RdsCopy.ts";
import { checkBucket, checkKey, explainS3Error } from "./s3Errors.ts";
import { s3Client } from "./s3.ts";
import { InputError } from "./validate.ts";

/** A check that failed: what is wrong, then the `Fix:` line. */
export class LoadCheckError extends Error {
  override name = "LoadCheckError";
  constructor(problem: string, fix: string) {
    super(`${problem}\nFix: ${fix}`);
  }
}

export interface LoadCheck {
  table: string;
  /** The columns COPY fills, in order (generated columns excluded, as COPY excludes them). */
  columns: string[];
  objects: number;
  /** The object whose first line was compared with the columns, or null when there was none. */
  first_object: string | null;
  ledger_table: string | null;
  warnings: string[];
}

export interface LoadCheckOptions {
  bucket: string;
  prefix: string;
  keys: string[];
  table: string;
  format: CsvFormat;
  ledgerTable: string;
  /** Succeed with nothing to load when no CSV object is under the prefix, instead of failing. */
  allowEmpty: boolean;
}

interface TargetTable {
  name: string;
  db_user: string;
  kind: string;
  schema: string;
  schema_usage: boolean;
  can_insert: boolean;
  columns: string[];
}

export async function checkCsvLoad(credentials: AwsStsCredentials | string, database: unknown, o: LoadCheckOptions): Promise<LoadCheck> {
  const bucket = checkBucket("bucket", o.bucket);
  const keys = o.keys.map((k) => checkKey("keys", k));
  quoteTableName("table", o.table);
  const format = checkCsvFormat(o.format);
  if (o.ledgerTable) quoteTableName("ledger_table", o.ledgerTable);
  if (!keys.length && !o.allowEmpty) {
    throw new InputError("prefix", `no CSV object (.csv or .csv.gz) is under s3://${bucket}/${o.prefix}`,
      "Check bucket and prefix (case-sensitive, no leading /); set allow_empty to true where an empty prefix is expected (e.g. a scheduled load of a landing folder)");
  }
  const columns = await withRds(credentials, database, async ({ sql, describe }) => {
    const target = await targetTable(sql, o.table, describe);
    if (o.ledgerTable) await checkLedger(sql, o.ledgerTable, target.db_user, describe);
    return target.columns;
  }, (err, describe) => (err instanceof LoadCheckError ? err : explainPgError(err, describe)));
  const first = keys[0] === undefined ? null : `s3://${bucket}/${keys[0]}`;
  const fields = keys[0] === undefined ? undefined : await firstRecordOf(credentials, bucket, keys[0], format);
  const warnings = first && fields ? compareColumns({ table: o.table, columns, fields, object: first, format }) : [];
  warnings.forEach((w) => console.warn(`WARNING: ${w}`));
  console.log(`Checked: ${o.table} (${columns.join(", ")}) takes inserts${o.ledgerTable ? `, ledger ${o.ledgerTable} is writable` : ""}; ${keys.length} object(s) to load${first ? `, the first one's ${format.header ? "header" : "first line"} ${fields ? "fits" : "was not checked (empty, or a line over 1 MiB)"}` : ""}`);
  return { table: o.table, columns, objects: keys.length, first_object: first, ledger_table: o.ledgerTable || null, warnings };
}

async function targetTable(sql: Sql, table: string, describe: string): Promise<TargetTable> {
  // to_regclass follows the search_path and quoting as COPY does; pg_attribute lists what COPY fills.
  const [target] = await sql<TargetTable[]>`
    select c.oid::regclass::text as name, current_user::text as db_user, c.relkind::text as kind, c.relnamespace::regnamespace::text as schema,
      has_schema_privilege(c.relnamespace, 'USAGE') as schema_usage, has_table_privilege(c.oid, 'INSERT') as can_insert,
      array(select a.attname::text from pg_attribute a
            where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped and a.attgenerated = '' order by a.attnum) as columns
    from pg_class c where c.oid = to_regclass(${quoteTableName("table", table)})`;
  if (!target) throw new LoadCheckError(`table ${table} does not exist in ${describe}`, await missingTableFix(sql, table));
  if (!["r", "p", "f"].includes(target.kind)) {
    throw new LoadCheckError(`${target.name} is not a table (pg_class relkind ${target.kind}), so COPY cannot load it`, "Set table to the table behind it");
  }
  if (!target.schema_usage || !target.can_insert) {
    const schema = target.schema_usage ? "" : `GRANT USAGE ON SCHEMA ${target.schema} TO ${target.db_user}; `;
    throw new LoadCheckError(`the database user ${target.db_user} may not insert into ${target.name} (${describe})`,
      `as the table's owner: ${schema}GRANT INSERT ON ${target.name} TO ${target.db_user};`);
  }
  return target;
}

/** The tables whose names are nearest the typo, to say "did you mean". */
async function missingTableFix(sql: Sql, table: string): Promise<string> {
  const tables = await sql<{ name: string }[]>`
    select c.oid::regclass::text as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where c.relkind in ('r', 'p', 'f') and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg_toast%'`;
  const wanted = table.toLowerCase().split(".").pop()!;
  const near = tables.map((t) => ({ name: t.name, distance: editDistance(wanted, t.name.toLowerCase().split(".").pop()!.replace(/"/g, "")) }))
    .filter((t) => t.distance <= Math.max(2, Math.floor(wanted.length / 3)))
    .sort((a, b) => a.distance - b.distance)
    .slice(0, 3);
  const suggestion = near.length ? `did you mean ${near.map((t) => t.name).join(" or ")}? ` : "";
  return `check the table input: ${suggestion}Name it as schema.table when its schema is not on the user's search_path, or create the table first.`;
}

/** Levenshtein distance, for names of at most 63 characters. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}

/** The load reads the ledger, and replaces its entry (delete, insert) in the COPY's transaction. */
async function checkLedger(sql: Sql, ledgerTable: string, user: string, describe: string): Promise<void> {
  const [ledger] = await sql<{ name: string; can_select: boolean; can_insert: boolean; can_delete: boolean }[]>`
    select c.oid::regclass::text as name, has_table_privilege(c.oid, 'SELECT') as can_select,
      has_table_privilege(c.oid, 'INSERT') as can_insert, has_table_privilege(c.oid, 'DELETE') as can_delete
    from pg_class c where c.oid = to_regclass(${quoteTableName("ledger_table", ledgerTable)})`;
  if (!ledger) throw missingLedgerError(ledgerTable, describe);
  const missing = (["select", "insert", "delete"] as const).filter((p) => !ledger[`can_${p}`]).map((p) => p.toUpperCase());
  if (missing.length) {
    throw new LoadCheckError(`the database user ${user} lacks ${missing.join(", ")} on the load ledger ${ledger.name} (${describe})`,
      `as the ledger's owner: GRANT SELECT, INSERT, DELETE ON ${ledger.name} TO ${user}; or set ledger_table to "" to load without a ledger`);
  }
}

/** The first record of the object (gunzipped as the load would), or undefined when there is none to compare. */
async function firstRecordOf(credentials: AwsStsCredentials | string, bucket: string, key: string, format: CsvFormat): Promise<string[] | undefined> {
  const { s3 } = await s3Client(credentials);
  const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key })).catch((err: unknown) => {
    throw explainS3Error(err, { operation: "GetObject", bucket, key });
  });
  const body = object.Body as Readable;
  try {
    // The load's gzip "auto" rule (s3RdsCopy.ts loadCsvFromS3).
    const gzip = key.endsWith(".gz") || object.ContentEncoding === "gzip";
    return await readFirstRecord(gzip ? body.pipe(createGunzip()) : body, format.delimiter, format.quote);
  } catch (err) {
    throw new LoadCheckError(`s3://${bucket}/${key} could not be read as CSV${key.endsWith(".gz") ? " in gzip" : ""}: ${(err as Error).message}`,
      "check the object: a .gz key must hold gzip data");
  } finally {
    body.destroy();
  }
}

/** Throws when the first record cannot fit the columns; warns when header names differ from them. */
function compareColumns(c: { table: string; columns: string[]; fields: string[]; object: string; format: CsvFormat }): string[] {
  const what = c.format.header ? "header" : "first line";
  const order = `${c.table}'s columns in order (${c.columns.join(", ")})`;
  if (c.fields.length !== c.columns.length) {
    const noDelimiter = c.fields.length === 1 && c.columns.length > 1 ? ` The line holds no ${JSON.stringify(c.format.delimiter)}: is delimiter right?` : "";
    throw new LoadCheckError(`${c.object}: its ${what} has ${c.fields.length} field(s) (${c.fields.join(", ").slice(0, 300)}) but ${c.table} takes ${c.columns.length} column(s) (${c.columns.join(", ")}), so COPY would refuse every line.${noDelimiter}`,
      `check the column count and header: the CSV must hold ${order}; or check the delimiter (${JSON.stringify(c.format.delimiter)}), quote and header (${c.format.header}) inputs`);
  }
  if (!c.format.header) return [];
  const names = c.fields.map((f) => f.trim().toLowerCase());
  const differ = c.columns.map((col, i) => [col, c.fields[i]!] as const).filter(([col], i) => col.toLowerCase() !== names[i]);
  if (!differ.length) return [];
  if ([...names].sort().join("\n") === c.columns.map((col) => col.toLowerCase()).sort().join("\n")) {
    throw new LoadCheckError(`${c.object}: its header names ${c.table}'s columns in another order (${c.fields.join(", ")}); COPY loads by position, so values would land in the wrong columns`,
      `write the CSV's columns as ${order}`);
  }
  return [`${c.object}: header names differ from ${c.table}'s columns (${differ.map(([col, f]) => `${JSON.stringify(f)} in column ${col}`).join(", ").slice(0, 300)}); COPY loads by position, so check the values line up`];
}
