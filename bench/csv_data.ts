// The benchmark's data: CSV rows that carry what real exports carry (bigint ids past
// 2^32, quoted text with commas, doubled quotes and embedded newlines, 2- to 4-byte
// UTF-8, numerics, timestamptz with offsets, NULLs and empty strings), written straight
// to disk in chunks so a GiB never sits in memory. Row n is a pure function of n, so
// any range of rows can be written again (the quarter object, the flow's parts) and
// still be the same data.
import { open } from "node:fs/promises";

export const CSV_HEADER = "id,customer,country,amount,qty,ordered_at,note";
export const TABLE_COLUMNS = ["id", "customer", "country", "amount", "qty", "ordered_at", "note"] as const;
/**
 * The target table: no index, so the server side is as fast as it gets and client
 * overhead shows; no autovacuum, so an ANALYZE of one step's rows never runs in the next.
 */
export function tableDdl(table: string): string {
  return `create table ${table} (id bigint, customer text, country text, amount numeric(12,2), qty integer, ordered_at timestamptz, note text) with (autovacuum_enabled = false)`;
}

/** Ids start past 2^32 so the column really needs bigint. */
const ID_BASE = 5_000_000_000;
/** Rows are joined into chunks of this many before each write: ~1 MiB, few syscalls, little memory. */
const ROWS_PER_WRITE = 10_000;

const CUSTOMERS = [
  "Ada Lovelace", 'Grace "Amazing" Hopper', "Zoë Ünïcode", "Alan, Turing", "Katherine Johnson",
  "李小龍", "Søren Kierkegaard 🚀", "O'Brien, Pat", "Þórunn Ásgeirsdóttir", "Nguyễn Thị Minh Khai",
].map(csvField);
/** An empty unquoted field is NULL in Postgres CSV. */
const COUNTRIES = ["GB", "US", "FR", "", "DE", "JP", "BR", "IS"];
const NOTES = [
  'gift "wrap"\nleave at door, ring twice',
  "fragile, this side up",
  "größe: L — ½ price",
  "deliver after 18:00\nback door",
].map(csvField);
const TWO_DIGITS = Array.from({ length: 60 }, (_, i) => String(i).padStart(2, "0"));
const OFFSETS = ["Z", "+02:00", "-05:00", "+05:30"];

/** Quotes a field the way CSV writers do: only when it holds a delimiter, quote or newline. */
function csvField(text: string): string {
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** A cheap integer hash (Knuth's multiplicative), so columns vary without a PRNG's state. */
function mix(n: number): number {
  return Math.imul(n ^ (n >>> 16), 0x9e3779b1) >>> 0;
}

/** Row n (1-based), about 107 bytes on average: ~10 million rows per GiB. */
export function csvRow(n: number): string {
  const h = mix(n);
  const customer = CUSTOMERS[h % CUSTOMERS.length];
  const country = COUNTRIES[(h >>> 4) % COUNTRIES.length];
  const amount = `${(h >>> 8) % 100_000}.${TWO_DIGITS[h % 60]}`;
  const qty = h % 13 === 0 ? "" : String((h >>> 12) % 500);
  const at = `2026-${TWO_DIGITS[(h % 12) + 1]}-${TWO_DIGITS[((h >>> 5) % 28) + 1]}T${TWO_DIGITS[(h >>> 9) % 24]}:${TWO_DIGITS[(h >>> 13) % 60]}:${TWO_DIGITS[(h >>> 19) % 60]}${OFFSETS[(h >>> 25) % OFFSETS.length]}`;
  const pick = n % 10;
  const note = pick < 3 ? NOTES[(h >>> 3) % NOTES.length] : pick === 3 ? "" : pick === 4 ? '""' : `"ref ${n}, batch ${h % 977}: standard delivery, no signature"`;
  return `${ID_BASE + n},${customer},${country},${amount},${qty},${at},${note}\n`;
}

export interface CsvFile {
  path: string;
  firstRow: number;
  rows: number;
  bytes: number;
}

/** The rows firstRow .. firstRow+count-1 as one string. */
function rowChunk(firstRow: number, count: number): string {
  const lines: string[] = [];
  for (let n = firstRow; n < firstRow + count; n++) lines.push(csvRow(n));
  return lines.join("");
}

/** Writes rows firstRow .. firstRow+rows-1 with a header line. */
export async function writeCsvRows(path: string, firstRow: number, rows: number): Promise<CsvFile> {
  const end = firstRow + rows;
  const bytes = await writeChunks(path, (n) => (n < end ? rowChunk(n, Math.min(ROWS_PER_WRITE, end - n)) : undefined), firstRow);
  return { path, firstRow, rows, bytes };
}

/** Writes rows from 1 on, a chunk at a time, until the file holds at least `targetBytes`. */
export async function writeCsvOfSize(path: string, targetBytes: number): Promise<CsvFile> {
  let rows = 0;
  const bytes = await writeChunks(path, (n, written) => {
    if (written >= targetBytes) return undefined;
    rows = n + ROWS_PER_WRITE - 1;
    return rowChunk(n, ROWS_PER_WRITE);
  }, 1);
  return { path, firstRow: 1, rows, bytes };
}

/**
 * Writes the header, then asks `next(firstRowOfChunk, bytesWrittenSoFar)` for chunks until
 * it returns undefined; each chunk is on disk before the next is built, so memory stays at one chunk.
 */
async function writeChunks(path: string, next: (row: number, written: number) => string | undefined, firstRow: number): Promise<number> {
  const file = await open(path, "w");
  let bytes = 0;
  try {
    bytes += (await file.write(Buffer.from(`${CSV_HEADER}\n`))).bytesWritten;
    for (let row = firstRow, chunk = next(row, bytes); chunk !== undefined; row += ROWS_PER_WRITE, chunk = next(row, bytes)) {
      bytes += (await file.write(Buffer.from(chunk))).bytesWritten;
    }
  } finally {
    await file.close();
  }
  return bytes;
}
