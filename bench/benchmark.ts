// One benchmark run, start to finish: the stand-ins, the data, then the load, export and
// credentials measurements in that order (the export reads what the flow loaded), all on
// the same Postgres behind the same TLS IAM gateway. bench/run.ts is the CLI around it;
// tests/system/bench_quick.test.ts runs it with --quick bounds and checks its correctness checks.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FULL_BOUNDS, MIB, QUICK_BOUNDS, type BenchContext } from "./context.ts";
import { describeEnvironment } from "./environment.ts";
import { measureCredentials } from "./phase_credentials.ts";
import { prepareData } from "./phase_data.ts";
import { measureExports } from "./phase_export.ts";
import { measureLoads } from "./phase_load.ts";
import { measureJobOverhead } from "./phase_overhead.ts";
import type { BenchReport } from "./results.ts";
import { startBenchStack } from "./benchStack.ts";

export interface BenchOptions {
  sizeBytes: number;
  objects: number;
  quick: boolean;
  /** Another checkout to deploy and measure (e.g. one with a candidate product change); this repo when absent. */
  workspaceDir?: string;
  log(line: string): void;
}

export async function runBenchmark(options: BenchOptions): Promise<BenchReport> {
  const started = performance.now();
  const elapsed = () => {
    const s = Math.floor((performance.now() - started) / 1000);
    return `${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
  };
  const log = (line: string) => options.log(`[${elapsed()}] ${line}`);
  log("starting the stand-ins and pushing the workspace with wmill");
  const dir = await mkdtemp(join(tmpdir(), "aws-oidc-bench-"));
  const stack = await startBenchStack(options.workspaceDir).catch(async (err: unknown) => {
    await rm(dir, { recursive: true, force: true });
    throw err;
  });
  const ctx: BenchContext = {
    stack, dir, quick: options.quick, objects: options.objects, bounds: options.quick ? QUICK_BOUNDS : FULL_BOUNDS,
    log, measurements: [], checks: [],
  };
  try {
    log(`generating ${(options.sizeBytes / MIB).toFixed(0)} MiB of CSV in ${dir}`);
    const data = await prepareData(ctx, options.sizeBytes);
    await measureLoads(ctx, data);
    await measureJobOverhead(ctx);
    await measureExports(ctx, data);
    await measureCredentials(ctx);
    return {
      sizeBytes: options.sizeBytes, objects: options.objects, quick: options.quick, workspaceDir: options.workspaceDir,
      dataset: { rows: data.full.rows, bytes: data.full.bytes },
      measurements: ctx.measurements, checks: ctx.checks,
      environment: await describeEnvironment(stack),
      wallSeconds: (performance.now() - started) / 1000,
    };
  } finally {
    log("stopping the stand-ins");
    await stack.close();
    await rm(dir, { recursive: true, force: true });
  }
}
