// Turns flow step results into what a person reads in the Windmill UI: a table of the
// objects a load touched, and a failure report that names the step and the fix.
import type { LoadResult } from "./s3RdsCopy.ts";

/**
 * A for-loop iteration's result: the load's result, or, for a failed iteration that
 * skip_failures kept, what the iteration ended with. Each iteration is a flow job of its own
 * with a copy of the flow's failure module, so that is the module's FailureReport; an error
 * object when the flow has no failure module (or the module itself failed).
 */
export type LoadOutcome = LoadResult | FailureReport | { error: { name?: string; message?: string } };

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
    if (!isLoadResult(o)) {
      return { object: keys[i] ?? `#${i}`, status: "failed", rows: null, bytes: null, seconds: null, error: failureMessage(o).split("\n")[0] };
    }
    const skipped = o.skipped === true;
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

function isLoadResult(o: LoadOutcome | null): o is LoadResult {
  return typeof o === "object" && o !== null && "bucket" in o && "rows_loaded" in o;
}

/** What a failed iteration says went wrong: its failure module's report, or its error. */
function failureMessage(o: unknown): string {
  const failed = o as { failed_step?: unknown; message?: unknown; error?: { message?: string } | string } | null;
  if (typeof failed?.failed_step === "string" && typeof failed.message === "string") return failed.message;
  if (typeof failed?.error === "object" && failed.error) return failed.error.message ?? "unknown error";
  return `unexpected iteration result: ${JSON.stringify(o)?.slice(0, 200)}`;
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
