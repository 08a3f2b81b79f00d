// Bulk moves between S3 and RDS at the speed of COPY: bytes stream from the S3 body
// (through gunzip if needed) into COPY FROM STDIN, and from COPY TO STDOUT into a
// multipart upload. Nothing holds a whole object; backpressure flows end to end.
import { GetObjectCommand } from "@aws-sdk/client-s3";
import { Transform, type Readable, type TransformCallback, type Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip, createGzip } from "node:zlib";
import wmill from "windmill-client";
import type { AwsStsCredentials } from "./credentialsResource.ts";
import { CsvRecordCounter, CsvRecordScanner } from "./csvRecords.ts";
import { parseSliceRange, SliceEdges } from "./csvSlices.ts";
import { alreadyLoaded, ledgerKey, missingLedgerError, recordLoad } from "./loadLedger.ts";
import { clipContext, explainPgError, quoteIdentifier, quoteLiteral, quoteTableName, withRds, type PgErrorFields } from "./rds.ts";
import { S3UploadStream } from "./multipartUpload.ts";
import { checkBucket, checkKey, explainS3Error } from "./s3Errors.ts";
import { s3Client, s3UploadClient } from "./s3.ts";
import { InputError } from "./validate.ts";

/** Report progress at most this often: each report is an HTTP call to Windmill. */
const PROGRESS_INTERVAL_MS = 1000;

export interface CsvFormat {
  header: boolean;
  delimiter: string;
  quote: string;
  nullMarker: string;
}

export function checkCsvFormat(f: CsvFormat): CsvFormat {
  for (const [input, value] of [["delimiter", f.delimiter], ["quote", f.quote]] as const) {
    if (value.length !== 1 || value === "\n" || value === "\r") {
      throw new InputError(input, `${JSON.stringify(value)} is not a single character`, `Use one character, e.g. "," or "\\t" for ${input}`);
    }
  }
  if (f.delimiter === f.quote) throw new InputError("quote", "it equals the delimiter", 'Use different characters, e.g. delimiter "," and quote \'"\'');
  return f;
}

function copyOptions(f: CsvFormat): string {
  return `format csv, header ${f.header}, delimiter ${quoteLiteral(f.delimiter)}, quote ${quoteLiteral(f.quote)}, null ${quoteLiteral(f.nullMarker)}`;
}

/** Counts bytes as they pass, for progress and the result. */
class ByteCounter extends Transform {
  bytes = 0;
  override _transform(chunk: Buffer, _e: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    callback(null, chunk);
  }
}

function progressReporter(total: number): (done: number) => void {
  let last = 0;
  return (done) => {
    const now = Date.now();
    if (!total || now - last < PROGRESS_INTERVAL_MS || !process.env.WM_JOB_ID) return;
    last = now;
    // Fire and forget: a slow progress call must never stall the data stream.
    wmill.setProgress(Math.min(99, (done / total) * 100)).catch(() => {});
  };
}

export type GzipMode = "auto" | "yes" | "no";

export interface LoadResult {
  bucket: string;
  key: string;
  etag: string | null;
  table: string;
  /** The slice loaded (bytes=first-last), or null for the whole object. */
  range: string | null;
  /** True when the ledger shows this object (same ETag) already loaded into the table. */
  skipped: boolean;
  rows_loaded: number;
  bytes_read: number;
  gzip: boolean;
  seconds: number;
  warnings: string[];
}

export async function loadCsvFromS3(
  credentials: AwsStsCredentials | string,
  database: unknown,
  options: { bucket: string; key: string; range: string; etag: string; table: string; columns: string[]; format: CsvFormat; gzip: GzipMode; ledgerTable: string; force: boolean },
): Promise<LoadResult> {
  const started = Date.now();
  const bucket = checkBucket("bucket", options.bucket);
  const key = checkKey("key", options.key);
  const table = quoteTableName("table", options.table);
  const format = checkCsvFormat(options.format);
  const range = parseSliceRange(options.range, format.header);
  const columns = options.columns.length ? ` (${options.columns.map(checkColumn).join(", ")})` : "";
  if (options.ledgerTable) quoteTableName("ledger_table", options.ledgerTable);
  const { s3 } = await s3Client(credentials);
  return withRds(credentials, database, async ({ sql, warnings, describe }) => {
    // Destroyed however the load ends: an unread body would hold its HTTP connection open.
    let body: Readable | undefined;
    try {
      // A slice is read from one byte early: that byte must end a line, which proves the slice starts a record.
      const from = range && range.first > 0 ? range.first - 1 : range?.first;
      const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: range ? `bytes=${from}-${range.last}` : undefined })).catch((err: unknown) => {
        throw explainS3Error(err, { operation: "GetObject", bucket, key });
      });
      const source = (body = object.Body as Readable);
      if (options.etag && object.ETag !== options.etag) {
        throw new InputError("etag", `s3://${bucket}/${key} changed since its slices were planned (ETag ${object.ETag}, planned ${options.etag})`,
          "Run the flow again: it plans the slices of the object as it is now");
      }
      const gzip = options.gzip === "yes" || (options.gzip === "auto" && (key.endsWith(".gz") || object.ContentEncoding === "gzip"));
      if (range && gzip) throw new InputError("range", "a gzip object cannot be read from the middle", "Load gzip objects whole: clear range");
      const raw = new ByteCounter();
      const records = new CsvRecordCounter(format.quote.charCodeAt(0));
      const report = progressReporter(object.ContentLength ?? 0);
      raw.on("data", () => report(raw.bytes));
      const slice = range ? `bytes=${range.first}-${range.last}` : null;
      console.log(`Loading s3://${bucket}/${key}${slice ? ` ${slice}` : ""} (${object.ContentLength ?? "?"} bytes${gzip ? ", gzip" : ""}) into ${options.table} on ${describe}`);
      const entry = { bucket, key, etag: object.ETag ?? "", table: options.table };
      const previous = await sql.begin(async (tx) => {
        if (options.ledgerTable && !options.force) {
          const done = await alreadyLoaded(tx, options.ledgerTable, entry, range);
          if (done) return done;
        }
        const copy = await copyInStream(tx.unsafe(`copy ${table}${columns} from stdin with (${copyOptions(format)})`));
        const stages = [...(range ? [new SliceEdges(range, object.ContentRange, `s3://${bucket}/${key}`)] : []), raw, ...(gzip ? [createGunzip()] : []), records];
        await pipeline([source, ...stages, copy]);
        if (options.ledgerTable) await recordLoad(tx, options.ledgerTable, { ...entry, key: ledgerKey(key, range) }, Math.max(0, records.records - (format.header ? 1 : 0)));
        return undefined;
      });
      const base = { bucket, key, range: slice, etag: object.ETag ?? null, table: options.table, gzip, warnings };
      if (previous) {
        console.log(`Skipped: the ledger ${options.ledgerTable} shows this object (ETag ${object.ETag}) loaded into ${options.table} at ${previous.loaded_at.toISOString()} (${previous.rows} rows); set force to load it again`);
        return { ...base, skipped: true, rows_loaded: 0, bytes_read: 0, seconds: (Date.now() - started) / 1000 };
      }
      const rows = Math.max(0, records.records - (format.header ? 1 : 0));
      console.log(`Loaded ${rows} rows (${raw.bytes} bytes) in one transaction${options.ledgerTable ? `, recorded in ${options.ledgerTable}` : ""}`);
      return { ...base, skipped: false, rows_loaded: rows, bytes_read: raw.bytes, seconds: (Date.now() - started) / 1000 };
    } finally {
      body?.destroy();
    }
  }, (err, describe) => explainLoadError(err, describe, { object: `s3://${bucket}/${key}`, range: options.range, table: options.table, ledgerTable: options.ledgerTable, format }));
}

/** What a failed load was doing, for its error message. */
interface LoadContext {
  object: string;
  range: string;
  table: string;
  ledgerTable: string;
  format: CsvFormat;
}

/**
 * A missing ledger table gets the DDL to create it; two runs racing on one object, a plain
 * answer; a line COPY refused, the object, the line and what to check.
 */
function explainLoadError(err: unknown, describe: string, load: LoadContext): Error {
  const e = err as PgErrorFields & { table_name?: string };
  if (load.ledgerTable && e.code === "42P01" && e.message?.includes(load.ledgerTable)) return missingLedgerError(load.ledgerTable, describe);
  if (load.ledgerTable && e.code === "23505" && e.table_name === load.ledgerTable) {
    return new Error(`Another run loaded the same object into the same table at the same time and committed first; this run's COPY was rolled back, so nothing is duplicated (${describe}).`);
  }
  return explainCopyLineError(e, load) ?? explainPgError(err, describe);
}

/** PostgreSQL's CONTEXT for a line COPY FROM refused (copyfromparse.c CopyFromErrorCallback): `COPY <table>, line <n>[, column <c>]: ...`. */
const COPY_LINE_CONTEXT = /^COPY [^,]+, line (\d+)(?:, column ([^:]+))?/;

/** A refused line: which object, which line (counted from the object's or slice's first, header included), why, and what to check. */
function explainCopyLineError(e: PgErrorFields, load: LoadContext): Error | undefined {
  const at = COPY_LINE_CONTEXT.exec(e.where ?? "");
  if (!at) return undefined;
  const line = `line ${at[1]}${load.range ? ` of the slice ${load.range}` : ""}`;
  const fix = copyLineFix(e.code ?? "", e.message ?? "", at[2], load);
  if (!fix) return undefined;
  return new Error(`${load.object} ${line}: COPY into ${load.table} refused it with ${e.code}: ${e.message}\nContext: ${clipContext(e.where!)}\nFix: ${fix}`);
}

function copyLineFix(code: string, message: string, column: string | undefined, load: LoadContext): string | undefined {
  const format = `delimiter ${JSON.stringify(load.format.delimiter)}, quote ${JSON.stringify(load.format.quote)}, header ${load.format.header}`;
  if (/unterminated CSV quoted field/.test(message)) return `a quoted field opened on or before that line is never closed: check the object's quoting and the quote input (${format}).`;
  // 22P04 bad_copy_file_format: "missing data for column", "extra data after last expected column", unterminated quotes.
  if (code === "22P04") return `that line's field count differs from ${load.table}'s column count: check the column count and header of the object (the table's columns, in order, one field each) and the format inputs (${format}).`;
  if (code.startsWith("22")) return `a value${column ? ` for column ${column}` : ""} does not fit its column's type: correct that line, or check that the CSV's columns are in ${load.table}'s column order (${format}).`;
  if (code.startsWith("23")) return `that line breaks a constraint of ${load.table}${column ? ` (column ${column})` : ""}: correct the line or the table's constraint.`;
  return undefined;
}

/** The part of a postgres query this module relies on, `reject` included (see below). */
interface CopyQuery {
  writable(): Promise<Writable>;
  reject: (err: Error) => void;
}

/**
 * postgres 3.4's COPY FROM STDIN stream never finishes when the server refuses the data
 * after the last chunk was sent (a bad line in a small file): the error goes to the
 * query's own promise, already resolved with the stream. Routing it to the stream makes
 * the pipeline fail with the server's message instead of hanging.
 */
async function copyInStream(query: unknown): Promise<Writable> {
  const q = query as CopyQuery;
  const reject = q.reject;
  let stream: Writable | undefined;
  let early: Error | undefined;
  q.reject = (err: Error) => {
    if (stream) stream.destroy(err);
    else early = err;
    reject(err);
  };
  stream = await q.writable();
  if (early) throw early;
  return stream;
}

function checkColumn(name: string): string {
  if (!/^[A-Za-z_][\w$]{0,62}$/.test(name)) {
    throw new InputError("columns", `${JSON.stringify(name)} is not a column name`, "List the table's column names in the CSV's order");
  }
  return quoteIdentifier(name);
}

export interface ExportResult {
  bucket: string;
  key: string;
  s3_uri: string;
  rows: number;
  bytes: number;
  gzip: boolean;
  etag: string | null;
  seconds: number;
  warnings: string[];
}

export async function exportQueryToS3(
  credentials: AwsStsCredentials | string,
  database: unknown,
  options: { query: string; bucket: string; key: string; header: boolean; gzip: boolean },
): Promise<ExportResult> {
  const started = Date.now();
  const query = options.query.trim().replace(/;\s*$/, "");
  if (!query) throw new InputError("query", "it is empty", "Write the SELECT whose rows to export");
  const bucket = checkBucket("bucket", options.bucket);
  const key = checkKey("key", options.key);
  const s3 = await s3UploadClient(credentials);
  return withRds(credentials, database, async ({ sql, warnings }) => {
    const records = new CsvRecordScanner(0x22);
    const contentType = options.gzip ? "application/gzip" : "text/csv; charset=utf-8";
    // COPY TO sends one chunk per row: counting beside the pipe, not as a stage of it, saves
    // a stream hop per row (a stage cost more CPU than the upload itself). Uncompressed, the
    // upload sees the rows themselves and counts them; a second "data" listener would cost an
    // array per row (EventEmitter copies its listeners on each emit).
    const countRows = (row: Buffer) => records.scan(row);
    const upload = new S3UploadStream(s3, { bucket, key, contentType, encryption: {} }, exportProgressLogger(records), options.gzip ? undefined : countRows);
    let pipeFailure: unknown;
    try {
      await sql.begin("read only", async (tx) => {
        const out = await tx.unsafe(`copy (${query}) to stdout with (format csv, header ${options.header})`).readable();
        const moved = options.gzip ? pipeline(out, createGzip(), upload) : pipeline(out, upload);
        if (options.gzip) out.on("data", countRows);
        await moved.catch((err: unknown) => {
          pipeFailure = err;
          throw err;
        });
      });
    } catch (err) {
      if (pipeFailure === undefined) throw err;
      // postgres 3.4 leaves COPY mode only on CopyDone, which a COPY TO STDOUT whose stream the
      // failed pipe destroyed never reads: the ROLLBACK then fails with COPY_IN_PROGRESS, hiding
      // what failed. Report the pipe's own error, and drop the connection instead of draining it.
      await sql.end({ timeout: 0 });
      throw pipeFailure;
    }
    records.finish();
    const outcome = upload.outcome!;
    const rows = Math.max(0, records.records - (options.header ? 1 : 0));
    console.log(`Exported ${rows} rows (${outcome.size} bytes, ${outcome.parts} part${outcome.parts === 1 ? "" : "s"}) to s3://${bucket}/${key}`);
    return {
      bucket, key, s3_uri: `s3://${bucket}/${key}`, rows, bytes: outcome.size, gzip: options.gzip,
      etag: outcome.etag, seconds: (Date.now() - started) / 1000, warnings,
    };
  });
}

/** The size of an export is unknown until it ends: log what is done, at most this often. */
const EXPORT_LOG_INTERVAL_MS = 10_000;

function exportProgressLogger(records: CsvRecordScanner): (bytesUploaded: number) => void {
  let last = Date.now();
  return (bytesUploaded) => {
    if (Date.now() - last < EXPORT_LOG_INTERVAL_MS) return;
    last = Date.now();
    console.log(`… ${(bytesUploaded / 1024 / 1024).toFixed(0)} MiB uploaded, about ${records.records} rows read`);
  };
}
