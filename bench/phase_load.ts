// CSV → table, every way, into the same table behind the same TLS IAM gateway: psql's
// \copy (the limit), Postgres without the gateway (diagnostic), the hand-written INSERT
// loops (sampled), the product's load job at ¼ and full size, and the s3_csv_to_rds flow.
import { DATABASE_RESOURCE, ROLE_RESOURCE } from "../local/demo/demoData.ts";
import { runWorker } from "./children.ts";
import { atLeast, check, fastest, exactly, MIB, retryIfHung, rssTargets, stepTimeoutMs, watched, type BenchContext } from "./context.ts";
import type { Dataset, S3Csv } from "./phase_data.ts";
import { handBuiltAvailable, handBuiltLoad } from "./pipelines.ts";
import { copyFromFile, directEnv, gatewayEnv, type PgEnv } from "./psql.ts";
import type { ProcessUsage } from "./processes.ts";
import type { Measurement } from "./results.ts";
import { assumeRoleCalls, BENCH_BUCKET, BENCH_CREDENTIALS, BENCH_TABLE, countRows, runJobOk, stepJobs, truncate } from "./benchStack.ts";
import type { InsertResult } from "./worker_tasks.ts";

/** Targets from the brief: the load job against psql and against the hand-written loops. */
const LOAD_VS_COPY = 0.9;
/** Issue 15: the load job against the pipeline a person writes by hand (`aws s3 cp - | psql \copy`). */
const LOAD_VS_HAND_BUILT = 1.0;
/** Issue 15: the 8-object flow against one psql \copy; at 256 MiB the per-step overhead weighs more than at 1 GiB. */
const FLOW_VS_COPY_SMALL = 0.8;
const FLOW_VS_COPY_LARGE = 1.2;
/** From this size on the flow must reach FLOW_VS_COPY_LARGE. */
const FLOW_LARGE_BYTES = 1024 * MIB;
const LOAD_VS_ROW_BY_ROW = 20;
const LOAD_VS_BATCHES = 3;
const BATCH_ROWS = 1000;
/** The flow saves its own session here, so its first run mints exactly once. */
const FLOW_CREDENTIALS = "f/aws_oidc/bench_flow_credentials";
const SLICED_FLOW_CREDENTIALS = "f/aws_oidc/bench_sliced_flow_credentials";
/** s3_csv_to_rds: assume_role, list_csv, check, plan, load_each (the for-loop), summary. */
const LOAD_FLOW_STEPS = 6;

interface LoadRun {
  measurement: Measurement;
  /** Rows per second: the load section's unit of comparison. */
  rate: number;
}

function throughput(name: string, rows: number, bytes: number, seconds: number, usage: ProcessUsage, peakKb: number | undefined): LoadRun {
  return { measurement: { section: "load", name, rows, bytes, seconds, peakKb, cpuSeconds: usage.cpuSeconds, targets: [] }, rate: rows / seconds };
}

async function expectTableRows(ctx: BenchContext, name: string, expected: number): Promise<void> {
  check(ctx, `${name}: rows in ${BENCH_TABLE}`, expected, await countRows(ctx.stack, BENCH_TABLE));
  await truncate(ctx.stack, BENCH_TABLE);
}

async function measureCopy(ctx: BenchContext, data: Dataset, name: string, env: PgEnv): Promise<LoadRun> {
  ctx.log(`▶ ${name}`);
  const { value: run, usage } = await watched(ctx, () => copyFromFile(env, BENCH_TABLE, data.full.path, stepTimeoutMs(data.full.bytes)));
  await expectTableRows(ctx, name, data.full.rows);
  return throughput(`${run.client} ${name}`, data.full.rows, data.full.bytes, run.seconds, usage, run.peakKb);
}

/** `aws s3 cp s3://b/k - | psql \copy … from stdin`, over the same S3 gate and TLS IAM gateway as the job. */
async function measureHandBuiltLoad(ctx: BenchContext, data: Dataset): Promise<LoadRun> {
  const name = "hand-built load: GetObject to stdout (node, the SDK) | psql \\copy … from stdin, through the TLS IAM gateway";
  ctx.log(`▶ ${name}`);
  const pg = await gatewayEnv(ctx.stack);
  const { value: run, usage } = await watched(ctx, () => handBuiltLoad(pg, ctx.stack.awsEnv, BENCH_BUCKET, data.full.key, BENCH_TABLE, stepTimeoutMs(data.full.bytes)));
  await expectTableRows(ctx, name, data.full.rows);
  return throughput(name, data.full.rows, data.full.bytes, run.seconds, usage, usage.clientPeakKb);
}

/** The hand-written loop on a bounded sample; its time for the whole data set is extrapolated from the sampled rate. */
async function measureInserts(ctx: BenchContext, data: Dataset, rowsPerStatement: number, name: string): Promise<LoadRun> {
  const maxRows = rowsPerStatement === 1 ? ctx.bounds.rowByRowRows : ctx.bounds.batchRows;
  const maxSeconds = rowsPerStatement === 1 ? ctx.bounds.rowByRowSeconds : ctx.bounds.batchSeconds;
  ctx.log(`▶ ${name} (sample: ≤ ${maxRows.toLocaleString("en-US")} rows or ≤ ${maxSeconds} s)`);
  const env = await gatewayEnv(ctx.stack);
  const task = { kind: "insert", file: data.full.path, table: BENCH_TABLE, rowsPerStatement, maxRows, maxSeconds } as const;
  const { value: run, usage } = await watched(ctx, () => runWorker<InsertResult>(task, env, stepTimeoutMs(0) + maxSeconds * 1000));
  const sampled = run.result;
  await expectTableRows(ctx, name, sampled.rows);
  const rate = sampled.rows / sampled.seconds;
  const loop = throughput(name, data.full.rows, data.full.bytes, data.full.rows / rate, usage, run.peakKb);
  loop.measurement.sample = { rows: sampled.rows, seconds: sampled.seconds };
  return loop;
}

async function measureLoadJob(ctx: BenchContext, object: S3Csv, name: string): Promise<LoadRun> {
  ctx.log(`▶ ${name}`);
  const args = {
    credentials: `$res:${BENCH_CREDENTIALS}`, database: `$res:${DATABASE_RESOURCE}`,
    bucket: BENCH_BUCKET, key: object.key, table: BENCH_TABLE, force: true,
  };
  const { value: run, usage } = await retryIfHung(ctx, name, () =>
    watched(ctx, () => runJobOk(ctx.stack, "p", "f/aws_oidc/rds_load_csv_from_s3", args, stepTimeoutMs(object.bytes))));
  check(ctx, `${name}: rows_loaded`, object.rows, (run.result as { rows_loaded: number }).rows_loaded);
  await expectTableRows(ctx, name, object.rows);
  return throughput(name, object.rows, object.bytes, run.seconds, usage, usage.jobPeakKb.get(run.id));
}

interface FlowRun {
  id: string;
  seconds: number;
  stsCalls: number;
  usage: ProcessUsage;
  total: number;
  iterations: number;
}

async function runLoadFlow(ctx: BenchContext, prefix: string, bytes: number, extra: Record<string, unknown> = {}): Promise<FlowRun> {
  const args = {
    aws_oidc: `$res:${ROLE_RESOURCE}`, database: `$res:${DATABASE_RESOURCE}`, bucket: BENCH_BUCKET,
    prefix, table: BENCH_TABLE, credentials_path: FLOW_CREDENTIALS, ...extra,
  };
  const before = await assumeRoleCalls(ctx.stack);
  const { value: run, usage } = await watched(ctx, () => runJobOk(ctx.stack, "f", "f/aws_oidc/s3_csv_to_rds", args, stepTimeoutMs(bytes)));
  const summary = run.result as { object: string; rows: number | null }[];
  return { id: run.id, seconds: run.seconds, stsCalls: (await assumeRoleCalls(ctx.stack)) - before, usage, total: summary.at(-1)?.rows ?? -1, iterations: summary.length - 1 };
}

/** When a flow made an unexpected number of STS calls: what its steps logged about STS (never a secret). */
function logStsActivity(ctx: BenchContext, flowJobId: string): void {
  for (const job of ctx.stack.local.windmill.jobs.filter((j) => j.rootJobId === flowJobId && j.id !== flowJobId)) {
    const lines = job.logs.split("\n").filter((l) => /STS|retry|refresh|mint|session/i.test(l));
    for (const line of lines) ctx.log(`    ${job.stepId ?? job.path}: ${line.trim()}`);
  }
}

/** The one big object, sliced by the flow's plan step into `objects` ranges loaded in parallel. */
async function measureSlicedFlow(ctx: BenchContext, data: Dataset): Promise<LoadRun> {
  const splitMib = Math.ceil(data.full.bytes / ctx.objects / MIB);
  const name = `flow s3_csv_to_rds over the one full object, split_mib ${splitMib}, parallelism 4`;
  ctx.log(`▶ ${name}`);
  // force_reload: the load job put the whole object in the ledger, which would make every slice a skip.
  const run = await runLoadFlow(ctx, data.full.key, data.full.bytes, { split_mib: splitMib, force_reload: true, credentials_path: SLICED_FLOW_CREDENTIALS });
  check(ctx, "sliced flow, first run: AssumeRoleWithWebIdentity calls", 1, run.stsCalls);
  if (run.stsCalls !== 1) logStsActivity(ctx, run.id);
  check(ctx, "sliced flow: TOTAL rows", data.full.rows, run.total);
  check(ctx, "sliced flow: the object was cut into slices", "yes", run.iterations > 1 ? "yes" : `no (${run.iterations} item)`);
  await expectTableRows(ctx, name, data.full.rows);
  const loadPeaks = stepJobs(ctx.stack, run.id, "load").map((j) => run.usage.jobPeakKb.get(j.id) ?? 0);
  return throughput(`${name}: ${run.iterations} slices cut between records (peak RSS: its largest load step)`, data.full.rows, data.full.bytes, run.seconds, run.usage, Math.max(...loadPeaks));
}

/** The flow over the parts, then again: the second run finds the session fresh and the ledger full. */
async function measureFlow(ctx: BenchContext, data: Dataset): Promise<LoadRun> {
  const name = `flow s3_csv_to_rds: ${LOAD_FLOW_STEPS} steps, ${data.parts.length} objects, parallelism 4 (peak RSS: its largest load step)`;
  ctx.log(`▶ ${name}`);
  const bytes = data.parts.reduce((n, p) => n + p.bytes, 0);
  const first = await runLoadFlow(ctx, data.partsPrefix, bytes);
  check(ctx, "flow: TOTAL rows", data.full.rows, first.total);
  check(ctx, "flow: rows in table", data.full.rows, await countRows(ctx.stack, BENCH_TABLE));
  check(ctx, "flow, first run: AssumeRoleWithWebIdentity calls", 1, first.stsCalls);
  if (first.stsCalls !== 1) logStsActivity(ctx, first.id);
  const loadPeaks = stepJobs(ctx.stack, first.id, "load").map((j) => first.usage.jobPeakKb.get(j.id) ?? 0);
  const flow = throughput(name, data.full.rows, bytes, first.seconds, first.usage, Math.max(...loadPeaks));
  flow.measurement.targets.push(exactly("1 AssumeRoleWithWebIdentity per run", first.stsCalls, 1));

  ctx.log("▶ the same flow again (saved session fresh, objects already in the ledger)");
  const second = await runLoadFlow(ctx, data.partsPrefix, bytes);
  check(ctx, "flow, second run: AssumeRoleWithWebIdentity calls", 0, second.stsCalls);
  check(ctx, "flow, second run: rows in table (ledger skipped every object)", data.full.rows, await countRows(ctx.stack, BENCH_TABLE));
  ctx.measurements.push({
    section: "credentials", name: `same flow run again (${LOAD_FLOW_STEPS} steps, ${data.parts.length} iterations), saved session fresh`,
    seconds: second.seconds, value: `${second.stsCalls} STS calls`, targets: [exactly("0 AssumeRoleWithWebIdentity", second.stsCalls, 0)],
  });
  return flow;
}

/**
 * psql and the load job, alternately: COPY's own speed drifts by ±10% between runs
 * (checkpoints, WAL, page cache), so the head-to-head ratio compares each one's faster run.
 */
async function headToHead(ctx: BenchContext, data: Dataset): Promise<{ limit: LoadRun; handBuilt: LoadRun | undefined; fullJob: LoadRun }> {
  const limits: LoadRun[] = [];
  const handBuilts: LoadRun[] = [];
  const jobs: LoadRun[] = [];
  for (let i = 0; i < ctx.bounds.headToHeadRuns; i++) {
    limits.push(await measureCopy(ctx, data, "through the TLS IAM gateway (the limit)", await gatewayEnv(ctx.stack)));
    if (handBuiltAvailable()) handBuilts.push(await measureHandBuiltLoad(ctx, data));
    jobs.push(await measureLoadJob(ctx, data.full, "load job rds_load_csv_from_s3, full object"));
  }
  return { limit: fastest(limits), handBuilt: handBuilts.length ? fastest(handBuilts) : undefined, fullJob: fastest(jobs) };
}

/**
 * One unmeasured load first: the first big COPY of a fresh cluster also creates its WAL
 * segments and reads the CSV from disk, which would penalise whichever step came first.
 */
async function warmUp(ctx: BenchContext, data: Dataset): Promise<void> {
  ctx.log("▶ warm-up load, not measured (creates the WAL segments later loads recycle)");
  await copyFromFile(directEnv(ctx.stack), BENCH_TABLE, data.full.path, stepTimeoutMs(data.full.bytes));
  await truncate(ctx.stack, BENCH_TABLE);
}

/** Runs every load measurement; the table is left holding the full data set (loaded by the flow) for the export phase. */
export async function measureLoads(ctx: BenchContext, data: Dataset): Promise<void> {
  await truncate(ctx.stack, BENCH_TABLE);
  await warmUp(ctx, data);
  const { limit, handBuilt, fullJob } = await headToHead(ctx, data);
  const direct = await measureCopy(ctx, data, "straight to Postgres, no gateway, no TLS (diagnostic)", directEnv(ctx.stack));
  const rowByRow = await measureInserts(ctx, data, 1, "row-by-row INSERT, one parameterised statement per row");
  const batches = await measureInserts(ctx, data, BATCH_ROWS, `multi-row INSERT, ${BATCH_ROWS} rows per statement`);
  const quarterJob = await measureLoadJob(ctx, data.quarter, "load job rds_load_csv_from_s3, ¼-size object");
  const sliced = await measureSlicedFlow(ctx, data);
  const flow = await measureFlow(ctx, data);

  const runs = [limit, ...(handBuilt ? [handBuilt] : []), direct, rowByRow, batches, quarterJob, fullJob, sliced, flow];
  for (const run of runs) run.measurement.ratio = run.rate / limit.rate;
  fullJob.measurement.targets.push(atLeast(`≥ ${LOAD_VS_COPY}× psql \\copy`, fullJob.rate / limit.rate, LOAD_VS_COPY), ...rssTargets(quarterJob.measurement, fullJob.measurement));
  const flowTarget = data.full.bytes >= FLOW_LARGE_BYTES * 0.99 ? FLOW_VS_COPY_LARGE : FLOW_VS_COPY_SMALL;
  flow.measurement.targets.push(atLeast(`≥ ${flowTarget}× psql \\copy`, flow.rate / limit.rate, flowTarget));
  if (handBuilt) fullJob.measurement.targets.push(atLeast(`≥ ${LOAD_VS_HAND_BUILT}× hand-built load`, fullJob.rate / handBuilt.rate, LOAD_VS_HAND_BUILT));
  rowByRow.measurement.targets.push(atLeast(`load job ≥ ${LOAD_VS_ROW_BY_ROW}× this`, fullJob.rate / rowByRow.rate, LOAD_VS_ROW_BY_ROW));
  batches.measurement.targets.push(atLeast(`load job ≥ ${LOAD_VS_BATCHES}× this`, fullJob.rate / batches.rate, LOAD_VS_BATCHES));
  ctx.measurements.push(...runs.map((r) => r.measurement));
  ctx.log(`  load: psql ${(limit.rate / 1000).toFixed(0)}k rows/s, job ${(fullJob.rate / 1000).toFixed(0)}k rows/s (${(fullJob.rate / limit.rate).toFixed(2)}×), job RSS ${((fullJob.measurement.peakKb ?? 0) / 1024).toFixed(0)} MiB`);
}
