// One job's fixed cost: the load job on an EMPTY object, so nothing but process start,
// imports, the resource read, the S3 GetObject and the RDS connection (TLS, IAM token)
// is measured. Several jobs run back to back; the row shows the mean wall time and
// the CPU seconds by process per job. A flow pays this once per step.
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { DATABASE_RESOURCE } from "../local/demo/demoData.ts";
import { check, watched, type BenchContext } from "./context.ts";
import { PROCESS_ROLES, type ProcessRole } from "./processes.ts";
import { BENCH_BUCKET, BENCH_CREDENTIALS, BENCH_TABLE, runJobOk } from "./benchStack.ts";

const EMPTY_KEY = "bench/empty.csv";
const FULL_JOBS = 5;
const QUICK_JOBS = 2;
/** An empty load takes about a second; far beyond that it is stuck. */
const EMPTY_JOB_TIMEOUT_MS = 60_000;

export async function measureJobOverhead(ctx: BenchContext): Promise<void> {
  const jobs = ctx.quick ? QUICK_JOBS : FULL_JOBS;
  const name = `per-job overhead: load job rds_load_csv_from_s3 on an empty object (process start, imports, resource read, GetObject, RDS connection), mean of ${jobs} jobs run back to back, CPU s per job`;
  ctx.log(`▶ ${name}`);
  await ctx.stack.s3.send(new PutObjectCommand({ Bucket: BENCH_BUCKET, Key: EMPTY_KEY, Body: Buffer.alloc(0), ContentType: "text/csv" }));
  const args = { credentials: `$res:${BENCH_CREDENTIALS}`, database: `$res:${DATABASE_RESOURCE}`, bucket: BENCH_BUCKET, key: EMPTY_KEY, table: BENCH_TABLE, force: true, header: false };
  const { value: seconds, usage } = await watched(ctx, async () => {
    const times: number[] = [];
    for (let i = 0; i < jobs; i++) {
      const run = await runJobOk(ctx.stack, "p", "f/aws_oidc/rds_load_csv_from_s3", args, EMPTY_JOB_TIMEOUT_MS);
      check(ctx, `per-job overhead, job ${i + 1}: rows_loaded`, 0, (run.result as { rows_loaded: number }).rows_loaded);
      times.push(run.seconds);
    }
    return times;
  });
  const mean = seconds.reduce((a, b) => a + b, 0) / jobs;
  const perJob = Object.fromEntries(PROCESS_ROLES.map((r) => [r, usage.cpuSeconds[r] / jobs])) as Record<ProcessRole, number>;
  const peakKb = Math.max(0, ...usage.jobPeakKb.values());
  // The CPU column rounds to 0.1 s; a job's fixed cost needs hundredths.
  const value = `${PROCESS_ROLES.filter((r) => r !== "other").map((r) => `${r} ${perJob[r].toFixed(2)}`).join(" · ")} CPU s per job`;
  ctx.measurements.push({ section: "load", name, seconds: mean, cpuSeconds: perJob, peakKb, value, targets: [] });
  ctx.log(`  per job: ${mean.toFixed(2)} s (${seconds.map((t) => t.toFixed(2)).join(", ")}); CPU s ${PROCESS_ROLES.map((r) => `${r} ${perJob[r].toFixed(2)}`).join(", ")}`);
}
