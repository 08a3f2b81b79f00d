// Slices of a big CSV object, loaded in parallel. The plan of s3_csv_to_rds: one load per
// object, or, for an object bigger than the split size, one per slice. Slices are cut only
// between records: the object is read once (at S3 speed, far above COPY's) to find record
// boundaries, quote-aware, since a quoted field may hold newlines. The load of a slice
// checks its edges as it streams, so a hand-made range cannot cut a line.
import { GetObjectCommand, HeadObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { Transform, type Readable, type TransformCallback } from "node:stream";
import { CsvSplitPoints } from "./csvRecords.ts";
import type { ByteRange } from "./loadLedger.ts";
import { checkBucket, checkKey, explainS3Error } from "./s3Errors.ts";
import { InputError } from "./validate.ts";

const MIB = 1024 * 1024;
const NEWLINE_BYTE = 0x0a;
/** Each slice is a Windmill job: more than this per object is a mistake in split_mib, not a plan. */
const MAX_SLICES_PER_OBJECT = 1000;

export interface CsvLoadItem {
  /** What the summary table shows: s3://bucket/key, plus the slice's range. */
  object: string;
  key: string;
  /** "" for the whole object, else bytes=first-last. */
  range: string;
  /** Whether this item starts at byte 0 (the only one that can hold a header line). */
  first_slice: boolean;
  /** Bytes this item covers; null when the plan did not look (no splitting asked). */
  bytes: number | null;
  /** The object's ETag when planned, so no slice is read from a newer version; "" when not looked. */
  etag: string;
}

export async function planCsvLoads(
  s3: S3Client,
  options: { bucket: string; keys: string[]; splitMib: number; quote: string },
): Promise<CsvLoadItem[]> {
  const bucket = checkBucket("bucket", options.bucket);
  const keys = options.keys.map((k) => checkKey("keys", k));
  if (!(options.splitMib === 0 || options.splitMib >= 1)) {
    throw new InputError("split_mib", `${options.splitMib} is not a slice size`, "Use 0 to load each object whole, or a size in MiB of at least 1 (e.g. 256)");
  }
  if (options.quote.length !== 1) throw new InputError("quote", `${JSON.stringify(options.quote)} is not a single character`, 'Use the CSV\'s quote character, usually "');
  const whole = (key: string, bytes: number | null): CsvLoadItem => ({ object: `s3://${bucket}/${key}`, key, range: "", first_slice: true, bytes, etag: "" });
  if (options.splitMib === 0) return keys.map((k) => whole(k, null));
  const items: CsvLoadItem[] = [];
  for (const key of keys) {
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key })).catch((err: unknown) => {
      throw explainS3Error(err, { operation: "HeadObject", bucket, key });
    });
    const size = head.ContentLength ?? 0;
    const gzip = key.endsWith(".gz") || head.ContentEncoding === "gzip";
    const splitBytes = Math.floor(options.splitMib * MIB);
    if (gzip || size <= splitBytes) {
      items.push(whole(key, size));
      continue;
    }
    if (size / splitBytes > MAX_SLICES_PER_OBJECT) {
      throw new InputError("split_mib", `s3://${bucket}/${key} (${(size / MIB).toFixed(0)} MiB) would make more than ${MAX_SLICES_PER_OBJECT} slices`, `Raise split_mib to at least ${Math.ceil(size / MAX_SLICES_PER_OBJECT / MIB)}`);
    }
    console.log(`Finding record boundaries in s3://${bucket}/${key} (${(size / MIB).toFixed(1)} MiB) to cut slices of ~${options.splitMib} MiB`);
    const points = await recordBoundaries(s3, bucket, key, splitBytes, options.quote.charCodeAt(0));
    const starts = [0, ...points.filter((p) => p < size)];
    starts.forEach((first, i) => {
      const last = (starts[i + 1] ?? size) - 1;
      const range = `bytes=${first}-${last}`;
      items.push({ object: `s3://${bucket}/${key} ${range}`, key, range, first_slice: i === 0, bytes: last - first + 1, etag: head.ETag ?? "" });
    });
  }
  return items;
}

async function recordBoundaries(s3: S3Client, bucket: string, key: string, every: number, quote: number): Promise<number[]> {
  const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key })).catch((err: unknown) => {
    throw explainS3Error(err, { operation: "GetObject", bucket, key });
  });
  const finder = new CsvSplitPoints(quote, every);
  for await (const chunk of object.Body as Readable) finder.scan(chunk as Buffer);
  return finder.points;
}

/** "" for the whole object, else "bytes=first-last"; a slice past byte 0 has no header line. */
export function parseSliceRange(text: string, header: boolean): ByteRange | undefined {
  if (!text.trim()) return undefined;
  const m = /^bytes=(\d+)-(\d+)$/.exec(text.trim());
  if (!m || Number(m[1]) > Number(m[2])) {
    throw new InputError("range", `${JSON.stringify(text)} is not a byte range`, 'Use "bytes=first-last" as plan_csv_loads gives it, or "" for the whole object');
  }
  const range = { first: Number(m[1]), last: Number(m[2]) };
  if (range.first > 0 && header) {
    throw new InputError("header", "only the slice that starts at byte 0 holds the header line", "Set header to false for every slice but the first (plan_csv_loads marks it first_slice)");
  }
  return range;
}

/**
 * Checks a slice's edges as it streams: the byte before it (read on purpose) must end a
 * line, and so must its own last byte unless it is the object's last. Drops that extra byte.
 */
export class SliceEdges extends Transform {
  /** The extra byte read before the slice, still to be checked and dropped. */
  private leadingByte: boolean;
  private lastByte = -1;
  private readonly endsObject: boolean;

  constructor(private readonly range: ByteRange, contentRange: string | undefined, private readonly where: string) {
    super();
    this.leadingByte = range.first > 0;
    const [, end, size] = /^bytes \d+-(\d+)\/(\d+)$/.exec(contentRange ?? "") ?? [];
    this.endsObject = end !== undefined && Number(end) + 1 === Number(size);
  }

  override _transform(chunk: Buffer, _e: BufferEncoding, callback: TransformCallback): void {
    if (!chunk.length) return callback();
    if (this.leadingByte) {
      this.leadingByte = false;
      if (chunk[0] !== NEWLINE_BYTE) return callback(this.misaligned("start"));
      chunk = chunk.subarray(1);
    }
    if (chunk.length) this.lastByte = chunk[chunk.length - 1]!;
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    callback(this.lastByte !== NEWLINE_BYTE && !this.endsObject ? this.misaligned("end") : null);
  }

  private misaligned(edge: "start" | "end"): InputError {
    return new InputError("range", `bytes=${this.range.first}-${this.range.last} does not ${edge} at a line boundary of ${this.where}`,
      "Use the ranges plan_csv_loads gives: it cuts only between records");
  }
}
