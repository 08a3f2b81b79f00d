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
  /** What to change, as the failed load said it ("Fix: ..." without the prefix). */
  fix: string | null;
}

export interface LoadSummary {
  rows: LoadRow[];
  objects: number;
  loaded: number;
  /** Already in the ledger (same ETag, same table): nothing was loaded for them. */
  skipped: number;
  failed: number;
  total_rows: number;
  total_bytes: number;
}

export function summarizeLoads(keys: string[], outcomes: LoadOutcome[]): LoadSummary {
  const rows: LoadRow[] = outcomes.map((o, i) => {
    if (!isLoadResult(o)) {
      const { problem, fix } = splitFix(failureMessage(o));
      // A refused line's error starts with its object, which the row already names.
      const error = problem.split("\n")[0]!.replace(/^s3:\/\/\S+ (?=line \d+)/, "");
      return { object: keys[i] ?? `#${i}`, status: "failed", rows: null, bytes: null, seconds: null, error, fix };
    }
    const skipped = o.skipped === true;
    return { object: `s3://${o.bucket}/${o.key}${o.range ? ` ${o.range}` : ""}`, status: skipped ? "skipped" : "loaded", rows: o.rows_loaded, bytes: o.bytes_read, seconds: o.seconds, error: null, fix: null };
  });
  const loaded = rows.filter((r) => r.status === "loaded");
  return {
    rows,
    objects: rows.length,
    loaded: loaded.length,
    skipped: rows.filter((r) => r.status === "skipped").length,
    failed: rows.filter((r) => r.status === "failed").length,
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

/** The bundle's errors end with their fix: a line starting "Fix:" and what follows it (e.g. DDL to run). */
function splitFix(message: string): { problem: string; fix: string | null } {
  const at = message.search(/^Fix: /m);
  if (at < 0) return { problem: message, fix: null };
  return { problem: message.slice(0, at).trimEnd(), fix: message.slice(at + "Fix: ".length).trim() };
}

/** "3 of 8 loaded, 5 skipped": what happened to the objects, each counted once. */
function totals(s: LoadSummary): string {
  if (s.objects === 0) return "no CSV objects to load";
  return `${s.loaded} of ${s.objects} loaded${s.skipped ? `, ${s.skipped} skipped` : ""}${s.failed ? `, ${s.failed} failed` : ""}`;
}

/** The table Windmill renders, with a TOTAL row last. */
export function summaryTable(summary: LoadSummary): LoadRow[] {
  const status = summary.failed ? "failed" : summary.loaded ? "loaded" : "skipped";
  return [
    ...summary.rows,
    {
      object: `TOTAL (${totals(summary)})`,
      status,
      rows: summary.total_rows,
      bytes: summary.total_bytes,
      seconds: null,
      error: summary.failed ? `${summary.failed} object(s) failed` : null,
      fix: null,
    },
  ];
}

export class LoadFailures extends Error {
  override name = "LoadFailures";
}

/** Objects listed one per line, up to this many: a flow of thousands of bad objects keeps a readable error. */
const LISTED_FAILURES = 20;

export function failuresError(summary: LoadSummary): LoadFailures {
  const failed = summary.rows.filter((r) => r.status === "failed");
  const lines = failed.slice(0, LISTED_FAILURES).map((r) => `- ${r.object}: ${r.error}`);
  if (failed.length > LISTED_FAILURES) lines.push(`- … and ${failed.length - LISTED_FAILURES} more (see the summary step's table)`);
  const others = summary.loaded
    ? `${summary.loaded} loaded, each in its own transaction, and they stay loaded`
    : "none was loaded";
  const skipped = summary.skipped ? `; ${summary.skipped} skipped (already loaded)` : "";
  // Objects that failed for one reason share one fix: each distinct fix once.
  const fixes = [...new Set(failed.map((r) => r.fix).filter((f): f is string => f !== null))].map((f) => `Fix: ${f}`);
  return new LoadFailures(`${summary.failed} of ${summary.objects} objects failed to load (${others}${skipped}):\n${[...lines, ...fixes].join("\n")}`);
}

export interface FailureReport {
  failed_step: string;
  error: string;
  message: string;
  /** What to change: the step's "Fix:" line(s) and what follows them, when it printed one. */
  fix: string | null;
}

export function describeFailure(error: { name?: string; message?: string; step_id?: string } | undefined): FailureReport {
  const message = error?.message ?? "The flow failed without an error message";
  return { failed_step: error?.step_id ?? "unknown", error: error?.name ?? "Error", message, fix: fixOf(message) };
}

/** The step's own fix, or, when the worker failed the step before it ran, the fix for that. */
function fixOf(message: string): string | null {
  const at = message.search(/^Fix: /m);
  if (at >= 0) return message.slice(at).trim();
  // windmill-worker common.rs transform_json_value: a `$res:` argument that names no readable resource.
  const missing = /Resource (\S+) not found for `([^`]+)`/.exec(message);
  if (missing) return `Fix: create the resource ${missing[1]} (or share it with the user the flow runs as), or pass an existing resource as ${missing[2]}.`;
  return null;
}
