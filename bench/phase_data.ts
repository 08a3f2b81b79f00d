// The data set: the full CSV (kept on disk for psql and the baselines), the same rows'
// first quarter (the RSS-vs-size comparison), and the same rows split into the flow's
// objects; all uploaded to the S3 stand-in with the product's multipart upload.
import { createReadStream } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { uploadObject } from "../f/aws_oidc/lib/s3.ts";
import { MIB, type BenchContext } from "./context.ts";
import { writeCsvOfSize, writeCsvRows, type CsvFile } from "./csv_data.ts";
import { BENCH_BUCKET } from "./benchStack.ts";

export interface S3Csv extends CsvFile {
  key: string;
}

export interface Dataset {
  full: S3Csv;
  quarter: S3Csv;
  parts: S3Csv[];
  partsPrefix: string;
}

const PARTS_PREFIX = "bench/parts/";

async function upload(ctx: BenchContext, file: CsvFile, key: string): Promise<S3Csv> {
  await uploadObject(ctx.stack.s3, {
    bucket: BENCH_BUCKET, key, body: createReadStream(file.path), contentType: "text/csv", encryption: { sse: "", kmsKeyId: "" },
  });
  return { ...file, key };
}

/** Splits rows 1..total into `count` consecutive ranges, the remainder going to the last. */
function partRanges(total: number, count: number): { first: number; rows: number }[] {
  const per = Math.floor(total / count);
  return Array.from({ length: count }, (_, i) => ({ first: 1 + i * per, rows: i === count - 1 ? total - i * per : per }));
}

export async function prepareData(ctx: BenchContext, sizeBytes: number): Promise<Dataset> {
  const started = performance.now();
  const fullFile = await writeCsvOfSize(join(ctx.dir, "full.csv"), sizeBytes);
  ctx.log(`  generated ${fullFile.rows.toLocaleString("en-US")} rows, ${(fullFile.bytes / MIB).toFixed(1)} MiB in ${((performance.now() - started) / 1000).toFixed(1)} s; uploading`);
  const full = await upload(ctx, fullFile, "bench/full.csv");
  const quarterFile = await writeCsvRows(join(ctx.dir, "quarter.csv"), 1, Math.floor(fullFile.rows / 4));
  const quarter = await upload(ctx, quarterFile, "bench/quarter.csv");
  await rm(quarterFile.path);
  const parts: S3Csv[] = [];
  for (const [i, range] of partRanges(fullFile.rows, ctx.objects).entries()) {
    const file = await writeCsvRows(join(ctx.dir, `part-${i}.csv`), range.first, range.rows);
    parts.push(await upload(ctx, file, `${PARTS_PREFIX}part-${String(i).padStart(3, "0")}.csv`));
    // Parts only live in S3: keeps the scratch space at one copy of the data.
    await rm(file.path);
  }
  ctx.log(`  data ready in S3 (full, quarter, ${parts.length} parts) after ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return { full, quarter, parts, partsPrefix: PARTS_PREFIX };
}
