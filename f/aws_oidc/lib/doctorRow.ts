// One row of the doctor's table: a check, its result, what was seen and what to change.
// Windmill shows an array of these objects as a table; the CLI prints the same rows.

export type CheckResult = "ok" | "failed" | "skipped" | "warning";

export interface DoctorRow {
  check: string;
  result: CheckResult;
  /** What the check saw: claims, ARNs, AWS's own error message. Never a secret. */
  detail: string;
  /** What to change; empty when there is nothing to do. */
  fix: string;
}

export function row(check: string, result: CheckResult, detail: string, fix = ""): DoctorRow {
  return { check, result, detail, fix };
}

/** The first row that failed: the broken link the person should fix first. */
export function firstFailure(rows: DoctorRow[]): DoctorRow | undefined {
  return rows.find((r) => r.result === "failed");
}
