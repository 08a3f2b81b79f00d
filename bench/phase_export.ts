// Table → CSV in S3: the product's export job (COPY TO STDOUT into a multipart upload)
// against its two halves done separately, psql's \copy TO a file and a plain upload of
// that file with the same part size and queue. The exported object must be byte for
// byte what psql wrote.
import { HeadObjectCommand } from "@aws-sdk/client-s3";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { UPLOAD_PART_SIZE, UPLOAD_QUEUE_SIZE } from "../f/aws_oidc/lib/multipartUpload.ts";
import { DATABASE_RESOURCE } from "../local/demo/demoData.ts";
import { runWorker } from "./children.ts";
import { atLeast, check, fastest, MIB, retryIfHung, rssTargets, stepTimeoutMs, watched, type BenchContext } from "./context.ts";
import type { Dataset } from "./phase_data.ts";
import { PROCESS_ROLES, type ProcessUsage } from "./processes.ts";
import { handBuiltAvailable, handBuiltExport } from "./pipelines.ts";
import { copyToFile, gatewayEnv } from "./psql.ts";
import type { Measurement } from "./results.ts";
import { BENCH_BUCKET, BENCH_CREDENTIALS, BENCH_TABLE, runJobOk } from "./benchStack.ts";
import type { CopyResult, S3GetResult } from "./worker_tasks.ts";

/** Target from the brief: the export job against the slower of its two halves. */
const EXPORT_VS_HALVES = 0.8;
/** Issue 15: the export job against the pipeline a person writes by hand (`psql \copy … to stdout | aws s3 cp -`). */
const EXPORT_VS_HAND_BUILT = 1.0;
/** Issue 15: the export's peak RSS at full size at most this much above the ¼-size job's. */
const EXPORT_RSS_GROWTH = 1.15;
const HAND_BUILT_KEY = "bench/hand-built-export.csv";
const EXPORT_QUERY = `select * from ${BENCH_TABLE}`;
const EXPORT_KEY = "bench/export.csv";

interface ExportRun {
  measurement: Measurement;
  /** Bytes per second: the export section's unit of comparison (an upload has no rows). */
  rate: number;
}

function throughput(name: string, rows: number | undefined, bytes: number, seconds: number, usage: ProcessUsage, peakKb: number | undefined): ExportRun {
  return { measurement: { section: "export", name, rows, bytes, seconds, peakKb, cpuSeconds: usage.cpuSeconds, targets: [] }, rate: bytes / seconds };
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** `expectedBytes` (what psql wrote for the same rows, or a share of it) only sizes the time limit. */
async function measureExportJob(ctx: BenchContext, name: string, query: string, key: string, rows: number, expectedBytes: number): Promise<ExportRun> {
  ctx.log(`▶ ${name}`);
  const args = { credentials: `$res:${BENCH_CREDENTIALS}`, database: `$res:${DATABASE_RESOURCE}`, query, bucket: BENCH_BUCKET, key };
  const { value: run, usage } = await retryIfHung(ctx, name, () =>
    watched(ctx, () => runJobOk(ctx.stack, "p", "f/aws_oidc/rds_export_to_s3", args, stepTimeoutMs(expectedBytes))));
  const result = run.result as { rows: number; bytes: number };
  check(ctx, `${name}: rows`, rows, result.rows);
  return throughput(name, result.rows, result.bytes, run.seconds, usage, usage.jobPeakKb.get(run.id));
}

/** `psql \copy (…) to stdout | aws s3 cp - s3://b/k`: the same query, part size and queue as the job. */
async function measureHandBuiltExport(ctx: BenchContext, expectedBytes: number): Promise<ExportRun> {
  const name = `hand-built export: psql \\copy (select …) to stdout | Upload of stdin (node, lib-storage, ${UPLOAD_PART_SIZE / MIB} MiB parts × ${UPLOAD_QUEUE_SIZE}), through the gateway`;
  ctx.log(`▶ ${name}`);
  const pg = await gatewayEnv(ctx.stack);
  const { value: run, usage } = await watched(ctx, () =>
    handBuiltExport(pg, ctx.stack.awsEnv, EXPORT_QUERY, BENCH_BUCKET, HAND_BUILT_KEY, UPLOAD_PART_SIZE, UPLOAD_QUEUE_SIZE, stepTimeoutMs(expectedBytes)));
  const head = await ctx.stack.s3.send(new HeadObjectCommand({ Bucket: BENCH_BUCKET, Key: HAND_BUILT_KEY }));
  check(ctx, "hand-built export: bytes equal psql's", expectedBytes, head.ContentLength ?? -1);
  return throughput(name, undefined, head.ContentLength ?? 0, run.seconds, usage, usage.clientPeakKb);
}

/** CPU seconds of the benchmark's own processes (not "other") during a step. */
function ownCpuSeconds(m: Measurement): number {
  return PROCESS_ROLES.filter((r) => r !== "other").reduce((n, r) => n + (m.cpuSeconds?.[r] ?? 0), 0);
}

/**
 * A pipelined export does both halves' work at once on the same cores (here the
 * stand-ins' TLS gateway, S3 gate and s3rver run beside the job), so it can go no faster
 * than both halves' CPU seconds spread over every core. Derived from the two rows above.
 */
function cpuCeiling(psqlOut: ExportRun, upload: ExportRun): ExportRun {
  const cores = cpus().length;
  const bytes = upload.measurement.bytes ?? 0;
  const seconds = (ownCpuSeconds(psqlOut.measurement) + ownCpuSeconds(upload.measurement)) / cores;
  const name = `CPU ceiling of any pipelined export here: both halves' CPU seconds over ${cores} cores (derived, not run)`;
  return { measurement: { section: "export", name, bytes, seconds, targets: [] }, rate: bytes / seconds };
}

export async function measureExports(ctx: BenchContext, data: Dataset): Promise<void> {
  const psqlFile = join(ctx.dir, "psql_out.csv");
  ctx.log("▶ \\copy (select …) to a file, through the gateway (export half 1)");
  const { value: out, usage: outUsage } = await watched(ctx, async () => copyToFile(await gatewayEnv(ctx.stack), EXPORT_QUERY, psqlFile, stepTimeoutMs(data.full.bytes)));
  const psqlBytes = Bun.file(psqlFile).size;
  const psqlOut = throughput(`${out.client} (select …) to a file, through the gateway: export half 1`, data.full.rows, psqlBytes, out.seconds, outUsage, out.peakKb);

  ctx.log("▶ plain multipart upload of that file (export half 2)");
  const uploadTask = { kind: "upload", file: psqlFile, bucket: BENCH_BUCKET, key: "bench/plain-upload.csv", partSize: UPLOAD_PART_SIZE, queueSize: UPLOAD_QUEUE_SIZE } as const;
  const { value: up, usage: upUsage } = await watched(ctx, () => runWorker<CopyResult>(uploadTask, ctx.stack.awsEnv, stepTimeoutMs(psqlBytes)));
  const upload = throughput(`Upload (lib-storage) of that file, ${UPLOAD_PART_SIZE / MIB} MiB parts × ${UPLOAD_QUEUE_SIZE}: export half 2`, undefined, up.result.bytes, up.seconds, upUsage, up.peakKb);

  const quarterRows = Math.floor(data.full.rows / 4);
  const quarterJob = await measureExportJob(ctx, "export job rds_export_to_s3, ¼ of the table", `${EXPORT_QUERY} limit ${quarterRows}`, "bench/export-quarter.csv", quarterRows, psqlBytes / 4);
  // Alternating as the load's head-to-head does: export drifts between runs as COPY does.
  const handBuilts: ExportRun[] = [];
  const fullJobs: ExportRun[] = [];
  for (let i = 0; i < ctx.bounds.headToHeadRuns; i++) {
    if (handBuiltAvailable()) handBuilts.push(await measureHandBuiltExport(ctx, psqlBytes));
    fullJobs.push(await measureExportJob(ctx, "export job rds_export_to_s3, whole table", EXPORT_QUERY, EXPORT_KEY, data.full.rows, psqlBytes));
  }
  const handBuilt = handBuilts.length ? fastest(handBuilts) : undefined;
  const fullJob = fastest(fullJobs);
  check(ctx, "export job: bytes equal psql's", psqlBytes, fullJob.measurement.bytes ?? -1);

  ctx.log("▶ download of the exported object, hashed (round-trip check; diagnostic)");
  const { value: got, usage: getUsage } = await watched(ctx, () => runWorker<S3GetResult>({ kind: "s3-get", bucket: BENCH_BUCKET, key: EXPORT_KEY }, ctx.stack.awsEnv, stepTimeoutMs(psqlBytes)));
  check(ctx, "exported object: sha256 equals psql's file", await sha256File(psqlFile), got.result.sha256);
  const download = throughput("GetObject of the exported object through the S3 gate (diagnostic)", undefined, got.result.bytes, got.seconds, getUsage, got.peakKb);

  const slowerHalf = Math.min(psqlOut.rate, upload.rate);
  const ceiling = cpuCeiling(psqlOut, upload);
  const runs = [psqlOut, upload, ceiling, ...(handBuilt ? [handBuilt] : []), quarterJob, fullJob, download];
  for (const run of runs) run.measurement.ratio = run.rate / slowerHalf;
  fullJob.measurement.targets.push(atLeast(`≥ ${EXPORT_VS_HALVES}× the slower half`, fullJob.rate / slowerHalf, EXPORT_VS_HALVES), ...rssTargets(quarterJob.measurement, fullJob.measurement, EXPORT_RSS_GROWTH));
  if (handBuilt) fullJob.measurement.targets.push(atLeast(`≥ ${EXPORT_VS_HAND_BUILT}× hand-built export`, fullJob.rate / handBuilt.rate, EXPORT_VS_HAND_BUILT));
  ctx.measurements.push(...runs.map((r) => r.measurement));
  ctx.log(`  export: halves ${(psqlOut.rate / MIB).toFixed(0)} / ${(upload.rate / MIB).toFixed(0)} MiB/s, job ${(fullJob.rate / MIB).toFixed(0)} MiB/s (${(fullJob.rate / slowerHalf).toFixed(2)}×)`);
}
