// Plans the loads of s3_csv_to_rds: one per object, or, for an object bigger than the
// split size, one per slice, so the for-loop loads one big object in parallel. Slices are
// cut only between records: the object is read once (at S3 speed, far above COPY's) to
// find record boundaries, quote-aware, since a quoted field may hold newlines.
import { GetObjectCommand, HeadObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import type { Readable } from "node:stream";
import { CsvSplitPoints } from "./csvRecords.ts";
import { checkBucket, checkKey, explainS3Error } from "./s3Errors.ts";
import { InputError } from "./validate.ts";

const MIB = 1024 * 1024;
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
  const whole = (key: string, bytes: number | null): CsvLoadItem => ({ object: `s3://${bucket}/${key}`, key, range: "", first_slice: true, bytes });
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
      items.push({ object: `s3://${bucket}/${key} ${range}`, key, range, first_slice: i === 0, bytes: last - first + 1 });
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
