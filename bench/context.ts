// What every phase of the benchmark shares: the stack, the scratch directory, the bounds
// of this mode, and where measurements and checks are collected; plus the helpers that
// turn a measured value into a met / not met target.
import { ProcessMonitor, type ProcessUsage } from "./processes.ts";
import type { Check, Measurement, Target } from "./results.ts";
import { HungJobError, type BenchStack } from "./benchStack.ts";

/** How far the slow and the repeated measurements go. */
export interface Bounds {
  /** The row-by-row INSERT baseline stops at whichever comes first. */
  rowByRowRows: number;
  rowByRowSeconds: number;
  /** The 1000-row INSERT baseline likewise. */
  batchRows: number;
  batchSeconds: number;
  /** Repetitions of each credentials timing (the median and the slowest are shown). */
  credentialSamples: number;
  /** Alternating runs of psql \copy and the full-size load job; the faster of each is compared. */
  headToHeadRuns: number;
}

/** 50k rows bound the row-by-row sample; the time bounds keep a slow disk (one fsync per row) from stretching the run. */
export const FULL_BOUNDS: Bounds = { rowByRowRows: 50_000, rowByRowSeconds: 30, batchRows: 500_000, batchSeconds: 30, credentialSamples: 7, headToHeadRuns: 2 };
/** Enough rows to exercise every path; timing is not the point of --quick. */
export const QUICK_BOUNDS: Bounds = { rowByRowRows: 2_000, rowByRowSeconds: 3, batchRows: 20_000, batchSeconds: 3, credentialSamples: 3, headToHeadRuns: 1 };

/** Every step gets this much on top of its data's share, for process start-up and connections. */
const STEP_GRACE_MS = 60_000;
/** ~5× slower than the slowest bulk path measured here: a step slower than this is stuck, not slow. */
const SLOWEST_BYTES_PER_SECOND = 4 * 1024 * 1024;

/** How long a step moving `bytes` may take before it counts as hung. */
export function stepTimeoutMs(bytes: number): number {
  return STEP_GRACE_MS + (bytes / SLOWEST_BYTES_PER_SECOND) * 1000;
}

export interface BenchContext {
  stack: BenchStack;
  /** Scratch directory for the CSV files (removed at the end). */
  dir: string;
  quick: boolean;
  objects: number;
  bounds: Bounds;
  log(line: string): void;
  measurements: Measurement[];
  checks: Check[];
}

export function check(ctx: BenchContext, name: string, expected: number | string, actual: number | string): void {
  ctx.checks.push({ name, expected, actual });
  if (actual !== expected) ctx.log(`  CHECK FAILED: ${name}: expected ${expected}, got ${actual}`);
}

/** Windows of this length are sampled while waiting for the machine to calm down. */
const QUIET_WINDOW_MS = 1000;
/** Below this many cores used by other processes the machine counts as quiet (kernel threads and idle shells use less). */
export const QUIET_MACHINE_CORES = 0.1;
/** A step waits at most this long for a quiet machine, then measures anyway (the table shows the disturbance). */
export const QUIET_WAIT_MAX_MS = 30_000;

async function otherCores(): Promise<number> {
  const { usage } = await observe(() => Bun.sleep(QUIET_WINDOW_MS));
  return usage.cpuSeconds.other / (QUIET_WINDOW_MS / 1000);
}

/**
 * Every step starts from the same state: Postgres's dirty pages written out (so a
 * checkpoint from the previous step does not land in this one) and, unless --quick,
 * other processes on the machine idle, or as idle as they get within a bounded wait.
 */
async function settle(ctx: BenchContext): Promise<void> {
  await ctx.stack.local.rds!.adminSql("checkpoint");
  if (ctx.quick) return;
  const deadline = performance.now() + QUIET_WAIT_MAX_MS;
  for (let cores = await otherCores(); cores >= QUIET_MACHINE_CORES; cores = await otherCores()) {
    if (performance.now() > deadline) return ctx.log(`  other processes still use ${cores.toFixed(2)} cores: measuring anyway`);
    ctx.log(`  waiting for other processes to calm down (${cores.toFixed(2)} cores in use)`);
  }
}

/** Settles, then runs `work` while the process monitor watches CPU and job RSS. */
export async function watched<T>(ctx: BenchContext, work: () => Promise<T>): Promise<{ value: T; usage: ProcessUsage }> {
  await settle(ctx);
  return observe(work);
}

/**
 * Runs a job step; if it hangs, once more, so one hang does not cost the whole run. Each
 * hung attempt is a failed check: a job that never answers is a bug, not a slow run.
 */
export async function retryIfHung<T>(ctx: BenchContext, name: string, attempt: () => Promise<T>): Promise<T> {
  try {
    const value = await attempt();
    check(ctx, `${name}: attempts that hung`, 0, 0);
    return value;
  } catch (err) {
    if (!(err instanceof HungJobError)) throw err;
    ctx.log(`  HUNG: ${err.message}; running it once more`);
    check(ctx, `${name}: attempts that hung`, 0, 1);
    return attempt();
  }
}

async function observe<T>(work: () => Promise<T>): Promise<{ value: T; usage: ProcessUsage }> {
  const monitor = new ProcessMonitor();
  await monitor.start();
  try {
    const value = await work();
    return { value, usage: await monitor.stop() };
  } catch (err) {
    await monitor.stop();
    throw err;
  }
}

function percent(fraction: number): string {
  return `${fraction >= 0 ? "+" : ""}${Math.round(fraction * 100)}%`;
}

/** A ratio target: met when `value` ≥ `threshold`; the detail shows the value and the margin. */
export function atLeast(label: string, value: number, threshold: number, unit = "×"): Target {
  return { label, met: value >= threshold, detail: `${formatNumber(value)}${unit}, margin ${percent(value / threshold - 1)}` };
}

/** A ceiling target: met when `value` ≤ `limit`; the margin is how much room is left. */
export function atMost(label: string, value: number, limit: number, unit: string): Target {
  return { label, met: value <= limit, detail: `${formatNumber(value)} ${unit}, margin ${percent(1 - value / limit)}` };
}

export function exactly(label: string, value: number, expected: number): Target {
  return { label, met: value === expected, detail: `${value}` };
}

/** Three significant digits at most, thousands grouped: what a table reader can compare. */
export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  if (Math.abs(value) >= 100) return Math.round(value).toLocaleString("en-US");
  return Number(value.toPrecision(3)).toString();
}

export const KIB = 1024;
export const MIB = 1024 * KIB;

/** A load or export job's peak RSS must stay under this for the full object. */
export const MAX_JOB_RSS_MIB = 200;
/**
 * "Not growing with size": 4× the data may cost at most 25% more peak RSS. A job that
 * kept even 5% of the extra ¾ GiB would exceed it; GC timing noise stays well inside.
 */
export const MAX_RSS_GROWTH = 1.25;

/** The RSS targets of a job measured on the ¼-size and the full data. */
export function rssTargets(quarter: Measurement, full: Measurement, maxGrowth = MAX_RSS_GROWTH): Target[] {
  const fullMib = (full.peakKb ?? Infinity) / KIB;
  const quarterMib = (quarter.peakKb ?? Infinity) / KIB;
  const growth = fullMib / quarterMib;
  return [
    atMost(`peak RSS ≤ ${MAX_JOB_RSS_MIB} MiB`, fullMib, MAX_JOB_RSS_MIB, "MiB"),
    { label: `RSS not growing with size (≤ ${maxGrowth}× the ¼-size job's)`, met: growth <= maxGrowth, detail: `${fullMib.toFixed(0)} vs ${quarterMib.toFixed(0)} MiB, ${growth.toFixed(2)}×` },
  ];
}

/** One measured run with its section's unit of comparison (rows/s for loads, bytes/s for exports). */
export interface RatedRun {
  measurement: Measurement;
  rate: number;
}

/** The faster of several alternating runs, every run's time shown in its name, and the largest RSS any run reached. */
export function fastest<T extends RatedRun>(runs: T[]): T {
  const best = runs.reduce((a, b) => (b.rate > a.rate ? b : a));
  if (runs.length === 1) return best;
  const times = runs.map((r) => `${r.measurement.seconds?.toFixed(1)} s`).join(", ");
  const peakKb = Math.max(...runs.map((r) => r.measurement.peakKb ?? 0));
  return { ...best, measurement: { ...best.measurement, name: `${best.measurement.name} — faster of ${runs.length} alternating runs (${times})`, peakKb } };
}
