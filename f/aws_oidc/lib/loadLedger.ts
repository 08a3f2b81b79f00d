// The load ledger: one row per (bucket, key, ETag, table) loaded, written in the same
// transaction as the COPY. A re-run skips what is already loaded, a crashed load leaves
// neither rows nor a ledger entry, and two concurrent loads of one object cannot both
// commit (the primary key refuses the second). A slice of an object (a byte range) is
// recorded under `<key>#bytes=<first>-<last>`, so the table needs no extra column.
import type { TransactionSql } from "postgres";
import { quoteTableName } from "./rds.ts";
import { InputError } from "./validate.ts";

export const DEFAULT_LEDGER_TABLE = "aws_oidc_load_ledger";
const SLICE_MARK = "#bytes=";

export interface LedgerEntry {
  bucket: string;
  key: string;
  etag: string;
  table: string;
}

/** Bytes first..last of an object, both included (HTTP Range semantics). */
export interface ByteRange {
  first: number;
  last: number;
}

export interface PreviousLoad {
  key: string;
  rows: number;
  loaded_at: Date;
}

/** The DDL a DBA runs once (the loading user needs SELECT, INSERT and DELETE on it). */
export function ledgerDdl(ledgerTable: string): string {
  return `create table if not exists ${quoteTableName("ledger_table", ledgerTable)} (
  bucket text not null, key text not null, etag text not null, target_table text not null,
  rows bigint not null, loaded_at timestamptz not null default now(),
  primary key (bucket, key, etag, target_table))`;
}

/** The ledger table is missing: the DDL to create it, or how to load without one. */
export function missingLedgerError(ledgerTable: string, describe: string): InputError {
  return new InputError("ledger_table", `the ledger table ${ledgerTable} does not exist in ${describe}`,
    `Create it once as a table owner:\n${ledgerDdl(ledgerTable)};\nGRANT SELECT, INSERT, DELETE ON ${ledgerTable} TO <the IAM user>; or set ledger_table to "" to load without a ledger`);
}

export function ledgerKey(key: string, range: ByteRange | undefined): string {
  return range ? `${key}${SLICE_MARK}${range.first}-${range.last}` : key;
}

/** The part of the object a ledger key covers; the whole object for a plain key. */
function coveredRange(objectKey: string, entryKey: string): ByteRange {
  const [first, last] = entryKey.slice(objectKey.length + SLICE_MARK.length).split("-").map(Number);
  return entryKey === objectKey ? { first: 0, last: Infinity } : { first: first!, last: last! };
}

/** Earlier loads of this object version into this table: whole, or any slice of it. */
async function previousLoads(tx: TransactionSql, ledgerTable: string, e: LedgerEntry): Promise<PreviousLoad[]> {
  return await tx.unsafe<PreviousLoad[]>(
    `select key, rows::int as rows, loaded_at from ${quoteTableName("ledger_table", ledgerTable)}
     where bucket = $1 and etag = $3 and target_table = $4 and (key = $2 or starts_with(key, $2 || '${SLICE_MARK}'))`,
    [e.bucket, e.key, e.etag, e.table],
  );
}

/** Earlier loads that cover some of the same bytes as `range` (the whole object when absent), other than itself. */
function overlappingLoads(objectKey: string, range: ByteRange | undefined, loads: PreviousLoad[]): PreviousLoad[] {
  const mine = range ?? { first: 0, last: Infinity };
  return loads.filter((l) => {
    if (l.key === ledgerKey(objectKey, range)) return false;
    const theirs = coveredRange(objectKey, l.key);
    return theirs.first <= mine.last && mine.first <= theirs.last;
  });
}

export async function recordLoad(tx: TransactionSql, ledgerTable: string, e: LedgerEntry, rows: number): Promise<void> {
  const table = quoteTableName("ledger_table", ledgerTable);
  // A forced reload replaces the earlier entry instead of failing on it.
  await tx.unsafe(`delete from ${table} where bucket = $1 and key = $2 and etag = $3 and target_table = $4`, [e.bucket, e.key, e.etag, e.table]);
  await tx.unsafe(`insert into ${table} (bucket, key, etag, target_table, rows) values ($1, $2, $3, $4, $5)`, [e.bucket, e.key, e.etag, e.table, rows]);
}

/**
 * The ledger's view of this load: an earlier load of the same bytes (skip), of the whole
 * object when this is a slice of it (skip), or of other overlapping bytes (refuse: loading
 * them again would duplicate rows).
 */
export async function alreadyLoaded(tx: TransactionSql, ledgerTable: string, entry: LedgerEntry, range: ByteRange | undefined): Promise<PreviousLoad | undefined> {
  // Uncommitted ledger rows are invisible to other transactions, so a whole load and a
  // sliced one running at once would both see nothing: slices of one object share a lock
  // (they run in parallel), a whole load takes it alone; each checks once it holds it.
  // Two different splits running at once still share it: run one split per object at a time.
  await tx.unsafe(`select pg_advisory_xact_lock${range ? "_shared" : ""}(hashtextextended($1, 0))`, [[entry.bucket, entry.key, entry.etag, entry.table].join("\n")]);
  const loads = await previousLoads(tx, ledgerTable, entry);
  const done = loads.find((l) => l.key === ledgerKey(entry.key, range)) ?? (range ? loads.find((l) => l.key === entry.key) : undefined);
  if (done) return done;
  const clash = overlappingLoads(entry.key, range, loads);
  if (!clash.length) return undefined;
  const what = (k: string) => (k === entry.key ? "the whole object" : k.slice(entry.key.length + 1));
  throw new InputError("range", `s3://${entry.bucket}/${entry.key} (ETag ${entry.etag}) is already loaded into ${entry.table} as ${clash.map((l) => what(l.key)).join(", ")}; loading ${range ? `bytes=${range.first}-${range.last}` : "the whole object"} would load some rows twice`,
    "Split it as the run that loaded it did (same split_mib), or set force to load it anyway");
}
