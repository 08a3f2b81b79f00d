// The benchmark's --quick run (a few MB through every path: psql, the INSERT loops, the
// load and export jobs, the flows, the credentials timings). Only correctness is checked
// here: row counts, the exported bytes against psql's, STS call counts. Never a time or
// a ratio: those depend on the machine and belong in bench/RESULTS.md.
import { describe, expect, test } from "bun:test";
import { runBenchmark } from "../../bench/benchmark.ts";
import type { BenchReport, Check } from "../../bench/results.ts";

/** Stand-ins start, ~20 jobs run, a few MB move: well under a minute here; room for a slow CI box. */
const QUICK_RUN_TIMEOUT_MS = 180_000;
const QUICK_SIZE_BYTES = 4 * 2 ** 20;
const QUICK_OBJECTS = 4;

let report: BenchReport | undefined;

async function quickReport(): Promise<BenchReport> {
  report ??= await runBenchmark({ sizeBytes: QUICK_SIZE_BYTES, objects: QUICK_OBJECTS, quick: true, log: () => {} });
  return report;
}

function checksNamed(r: BenchReport, pattern: RegExp): Check[] {
  const found = r.checks.filter((c) => pattern.test(c.name));
  expect(found.length).toBeGreaterThan(0);
  return found;
}

function expectAllEqual(checks: Check[]): void {
  for (const c of checks) expect({ name: c.name, actual: c.actual }).toEqual({ name: c.name, actual: c.expected });
}

describe("bench --quick", () => {
  test("every load path lands exactly the generated rows", async () => {
    const r = await quickReport();
    expect(r.dataset.rows).toBeGreaterThan(10_000);
    const rowChecks = checksNamed(r, /rows in bench_rows|rows in table|rows_loaded|TOTAL rows/);
    // psql through the gateway, psql direct, both INSERT loops, the load job at ¼ and full size, the flow twice.
    expect(rowChecks.length).toBeGreaterThanOrEqual(10);
    expectAllEqual(rowChecks);
    const full = r.checks.find((c) => c.name === "load job rds_load_csv_from_s3, full object: rows_loaded");
    expect(full?.actual).toBe(r.dataset.rows);
  }, QUICK_RUN_TIMEOUT_MS);

  test("the exported object round-trips: same rows and the same bytes as psql's \\copy", async () => {
    const r = await quickReport();
    expectAllEqual(checksNamed(r, /^export job .*: rows$/));
    expectAllEqual(checksNamed(r, /export job: bytes equal psql's/));
    const hash = checksNamed(r, /sha256 equals psql's file/)[0]!;
    expect(hash.actual).toMatch(/^[0-9a-f]{64}$/);
    expect(hash.actual).toBe(hash.expected);
  }, QUICK_RUN_TIMEOUT_MS);

  test("one AssumeRoleWithWebIdentity per flow run, none when the saved session is fresh", async () => {
    const r = await quickReport();
    const sts = checksNamed(r, /AssumeRoleWithWebIdentity calls|STS calls/);
    expectAllEqual(sts);
    const expected = Object.fromEntries(sts.map((c) => [c.name, c.expected]));
    expect(expected).toMatchObject({
      "flow, first run: AssumeRoleWithWebIdentity calls": 1,
      "flow, second run: AssumeRoleWithWebIdentity calls": 0,
      "flow rds_to_s3_export: AssumeRoleWithWebIdentity calls": 1,
      "credentials from a fresh resource: STS calls": 0,
    });
  }, QUICK_RUN_TIMEOUT_MS);

  test("no correctness check failed", async () => {
    expect((await quickReport()).checks.filter((c) => c.actual !== c.expected)).toEqual([]);
  }, QUICK_RUN_TIMEOUT_MS);
});
