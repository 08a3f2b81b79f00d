// Turns flow step results into what a person reads in the Windmill UI: a table of the
// objects a load touched, and a failure report that names the step and the fix.
import type { LoadResult } from "./s3RdsCopy.ts";

/** A for-loop iteration result: the load's result, or Windmill's error object when skip_failures kept going. */
export type LoadOutcome = LoadResult | { error: { name?: string; message?: string } };

export interface LoadRow {
  object: string;
  status: "loaded" | "failed" | "skipped";
  rows: number | null;
  bytes: number | null;
  seconds: number | null;
  error: string | null;
}

export interface LoadSummary {
  rows: LoadRow[];
  objects: number;
  loaded: number;
  failed: number;
  total_rows: number;
  total_bytes: number;
}

export function summarizeLoads(keys: string[], outcomes: LoadOutcome[]): LoadSummary {
  const rows: LoadRow[] = outcomes.map((o, i) => {
    if ("error" in o) {
      const message = (o.error?.message ?? "unknown error").split("\n")[0];
      return { object: keys[i] ?? `#${i}`, status: "failed", rows: null, bytes: null, seconds: null, error: message };
    }
    const skipped = (o as { skipped?: boolean }).skipped === true;
    return { object: `s3://${o.bucket}/${o.key}${o.range ? ` ${o.range}` : ""}`, status: skipped ? "skipped" : "loaded", rows: o.rows_loaded, bytes: o.bytes_read, seconds: o.seconds, error: null };
  });
  const loaded = rows.filter((r) => r.status !== "failed");
  return {
    rows,
    objects: rows.length,
    loaded: loaded.length,
    failed: rows.length - loaded.length,
    total_rows: loaded.reduce((n, r) => n + (r.rows ?? 0), 0),
    total_bytes: loaded.reduce((n, r) => n + (r.bytes ?? 0), 0),
  };
}

/** The table Windmill renders, with a TOTAL row last. */
export function summaryTable(summary: LoadSummary): LoadRow[] {
  return [
    ...summary.rows,
    {
      object: `TOTAL (${summary.loaded} of ${summary.objects} loaded)`,
      status: summary.failed ? "failed" : "loaded",
      rows: summary.total_rows,
      bytes: summary.total_bytes,
      seconds: null,
      error: summary.failed ? `${summary.failed} object(s) failed` : null,
    },
  ];
}

export class LoadFailures extends Error {
  override name = "LoadFailures";
}

export function failuresError(summary: LoadSummary): LoadFailures {
  const lines = summary.rows.filter((r) => r.status === "failed").map((r) => `- ${r.object}: ${r.error}`);
  return new LoadFailures(`${summary.failed} of ${summary.objects} objects failed to load (the others are loaded, each in its own transaction):\n${lines.join("\n")}`);
}

export interface FailureReport {
  failed_step: string;
  error: string;
  message: string;
  /** The actionable line(s) the step printed ("Fix: ..."), when it did. */
  fix: string | null;
}

export function describeFailure(error: { name?: string; message?: string; step_id?: string } | undefined): FailureReport {
  const message = error?.message ?? "The flow failed without an error message";
  const fix = message.split("\n").filter((l) => l.startsWith("Fix:")).join("\n") || null;
  return { failed_step: error?.step_id ?? "unknown", error: error?.name ?? "Error", message, fix };
}
