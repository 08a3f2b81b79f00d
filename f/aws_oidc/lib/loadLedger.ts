// The load ledger: one row per (bucket, key, ETag, table) loaded, written in the same
// transaction as the COPY. A re-run skips what is already loaded, a crashed load leaves
// neither rows nor a ledger entry, and two concurrent loads of one object cannot both
// commit (the primary key refuses the second).
import type { TransactionSql } from "postgres";
import { quoteTableName } from "./rds.ts";

export const DEFAULT_LEDGER_TABLE = "aws_oidc_load_ledger";

export interface LedgerEntry {
  bucket: string;
  key: string;
  etag: string;
  table: string;
}

/** The DDL a DBA runs once (the loading user needs SELECT, INSERT and DELETE on it). */
export function ledgerDdl(ledgerTable: string): string {
  return `create table if not exists ${quoteTableName("ledger_table", ledgerTable)} (
  bucket text not null, key text not null, etag text not null, target_table text not null,
  rows bigint not null, loaded_at timestamptz not null default now(),
  primary key (bucket, key, etag, target_table))`;
}

export async function previousLoad(tx: TransactionSql, ledgerTable: string, e: LedgerEntry): Promise<{ rows: number; loaded_at: Date } | undefined> {
  const [row] = await tx.unsafe<{ rows: number; loaded_at: Date }[]>(
    `select rows::int as rows, loaded_at from ${quoteTableName("ledger_table", ledgerTable)} where bucket = $1 and key = $2 and etag = $3 and target_table = $4`,
    [e.bucket, e.key, e.etag, e.table],
  );
  return row;
}

export async function recordLoad(tx: TransactionSql, ledgerTable: string, e: LedgerEntry, rows: number): Promise<void> {
  const table = quoteTableName("ledger_table", ledgerTable);
  // A forced reload replaces the earlier entry instead of failing on it.
  await tx.unsafe(`delete from ${table} where bucket = $1 and key = $2 and etag = $3 and target_table = $4`, [e.bucket, e.key, e.etag, e.table]);
  await tx.unsafe(`insert into ${table} (bucket, key, etag, target_table, rows) values ($1, $2, $3, $4, $5)`, [e.bucket, e.key, e.etag, e.table, rows]);
}
