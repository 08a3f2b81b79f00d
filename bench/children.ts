// Runs the benchmark's own client processes (psql, bench/worker.ts) with a time limit,
// and reports their wall time and peak RSS. The RSS is the child's VmHWM, sampled while
// it runs: getrusage's ru_maxrss would include the parent's RSS at fork (~160 MiB here).
import { fileURLToPath } from "node:url";
import { processPeakKb } from "./processes.ts";

export interface ChildOutcome {
  stdout: string;
  seconds: number;
  /** The process's peak resident set (VmHWM), in KiB. */
  peakKb: number;
}

const WORKER = fileURLToPath(new URL("./worker.ts", import.meta.url));
/** VmHWM only grows, so a sample every 50 ms misses at most the growth of the last 50 ms. */
const RSS_SAMPLE_MS = 50;

/** Spawns `argv`, waits at most `timeoutMs`, and fails with its stderr when it fails. */
export async function runChild(argv: string[], env: Record<string, string>, timeoutMs: number): Promise<ChildOutcome> {
  const started = performance.now();
  const child = Bun.spawn(argv, { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp", ...env }, stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  let peakKb = 0;
  const sampleRss = async () => (peakKb = Math.max(peakKb, (await processPeakKb(child.pid, argv.slice(1))) ?? 0));
  const sampler = setInterval(sampleRss, RSS_SAMPLE_MS);
  await sampleRss();
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  clearTimeout(timer);
  clearInterval(sampler);
  const seconds = (performance.now() - started) / 1000;
  if (code !== 0) {
    const why = child.signalCode === "SIGKILL" ? `killed after ${timeoutMs / 1000} s` : `exit code ${code}`;
    throw new Error(`${argv[0]} ${argv.slice(1, 3).join(" ")} failed (${why}):\n${stderr.trim() || stdout.trim()}`);
  }
  return { stdout, seconds, peakKb };
}

/** Runs one task of bench/worker.ts in its own Bun process, as a job would run apart from the stand-ins. */
export async function runWorker<T>(task: object, env: Record<string, string>, timeoutMs: number): Promise<{ result: T } & ChildOutcome> {
  const outcome = await runChild([process.execPath, WORKER, JSON.stringify(task)], env, timeoutMs);
  const lastLine = outcome.stdout.trim().split("\n").at(-1) ?? "";
  return { ...outcome, result: JSON.parse(lastLine) as T };
}
