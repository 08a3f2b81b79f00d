// Runs one script job the way a Windmill worker does: a fresh Bun process with the
// worker's env vars and a job-scoped token, `main` called with the job's args mapped by
// parameter name, stdout/stderr kept as the job's logs.
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { windmillParser } from "./parser.ts";

/** A worker's default job timeout is 15 minutes; a stand-in job should never need more. */
const DEFAULT_TIMEOUT_MS = 15 * 60 * 1000;
const ENTRY = join(dirname(fileURLToPath(import.meta.url)), "jobEntry.ts");

export interface ScriptJob {
  scriptFile: string;
  /** The workspace root: `/f/...` imports resolve under it, node_modules beside it. */
  cwd: string;
  /** The worker's WM_* / BASE_* variables for this job. */
  env: Record<string, string>;
  timeoutMs?: number;
}

export interface JobOutcome {
  success: boolean;
  result: unknown;
  logs: string;
}

function parameterNames(code: string): string[] {
  const parsed = JSON.parse(windmillParser().parse_deno(code)) as { args: { name: string }[] };
  return parsed.args.map((a) => a.name);
}

function bunBinary(): string {
  if (process.versions.bun) return process.execPath;
  return createRequire(import.meta.url).resolve("bun/bin/bun.exe");
}

export async function runScriptJob(job: ScriptJob, args: Record<string, unknown>): Promise<JobOutcome> {
  let code: string;
  try {
    code = await readFile(job.scriptFile, "utf8");
  } catch {
    return { success: false, logs: "", result: { error: { name: "NotFound", message: `Script not found at path ${job.env.WM_JOB_PATH}` } } };
  }
  const dir = await mkdtemp(join(tmpdir(), "wm-job-"));
  try {
    const specFile = join(dir, "spec.json");
    const resultFile = join(dir, "result.json");
    const spec = { scriptFile: job.scriptFile, workspaceRoot: job.cwd, parameters: parameterNames(code), args, resultFile };
    await writeFile(specFile, JSON.stringify(spec), { mode: 0o600 });
    const { logs, timedOut } = await spawnJob(job, specFile);
    if (timedOut) return { success: false, logs, result: { error: { name: "TimeoutError", message: `Job timed out after ${(job.timeoutMs ?? DEFAULT_TIMEOUT_MS) / 1000} s` } } };
    const outcome = JSON.parse(await readFile(resultFile, "utf8").catch(() => "null")) as
      | { ok: true; result: unknown }
      | { ok: false; error: { name: string; message: string; stack?: string } }
      | null;
    if (!outcome) return { success: false, logs, result: { error: { name: "ExecutionErr", message: "The job process exited without a result" } } };
    return outcome.ok ? { success: true, logs, result: outcome.result } : { success: false, logs, result: { error: outcome.error } };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function spawnJob(job: ScriptJob, specFile: string): Promise<{ logs: string; timedOut: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(bunBinary(), ["run", ENTRY], {
      cwd: job.cwd,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? tmpdir(), ...job.env, WM_LOCAL_JOB_SPEC: specFile },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let logs = "";
    let timedOut = false;
    child.stdout.on("data", (d: Buffer) => (logs += d.toString("utf8")));
    child.stderr.on("data", (d: Buffer) => (logs += d.toString("utf8")));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, job.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    child.on("error", reject);
    child.on("close", () => {
      clearTimeout(timer);
      resolve({ logs, timedOut });
    });
  });
}
