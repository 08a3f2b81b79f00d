// What one benchmark run produces: the table's rows, the correctness checks (row
// counts, round-trip hashes, STS call counts) and where it ran. Rendering is in report.ts.
import type { ProcessRole } from "./processes.ts";

/** Each section has its own limit: load rows compare to psql \copy FROM, export rows to the slower half of psql \copy TO + upload. */
export type Section = "load" | "export" | "credentials";

export interface Target {
  label: string;
  met: boolean;
  /** The measured value and margin, e.g. "0.93×, +16% over". */
  detail: string;
}

export interface Measurement {
  section: Section;
  name: string;
  rows?: number;
  bytes?: number;
  /** Wall time; for a sampled baseline, the time the whole data set would take at the sampled rate. */
  seconds?: number;
  /** Set when `seconds` is extrapolated from a bounded sample. */
  sample?: { rows: number; seconds: number };
  /** Peak RSS in KiB of the process doing the work (the job, psql, the worker). */
  peakKb?: number;
  /** Throughput relative to the section's limit. */
  ratio?: number;
  cpuSeconds?: Record<ProcessRole, number>;
  /** For rows that measure something other than throughput (credentials): the value shown. */
  value?: string;
  targets: Target[];
}

/** A correctness check: the run is only valid when actual equals expected. */
export interface Check {
  name: string;
  expected: number | string;
  actual: number | string;
}

export interface Environment {
  date: string;
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  versions: Record<string, string>;
}

export interface BenchReport {
  sizeBytes: number;
  objects: number;
  quick: boolean;
  /** Set when another checkout than this repo was deployed and measured. */
  workspaceDir?: string;
  dataset: { rows: number; bytes: number };
  measurements: Measurement[];
  checks: Check[];
  environment: Environment;
  wallSeconds: number;
}

export function failedChecks(report: BenchReport): Check[] {
  return report.checks.filter((c) => c.actual !== c.expected);
}
