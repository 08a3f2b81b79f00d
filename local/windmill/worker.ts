// Runs one script job the way a Windmill worker runs a bun script: a fresh job folder with
// the script, the workspace scripts it imports and the lock's installed packages, a fresh
// Bun process with the worker's env vars and a job-scoped token, `main` called with the
// job's args mapped by parameter name, stdout/stderr kept as the job's logs.
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { bunBinary, homeFallback, installedLock, type LockFiles } from "./bunInstall.ts";
import { EMPTY_PACKAGE_JSON, invalidRequirements, splitLockfile } from "./bunLock.ts";
import { bunPackageJson, type PinVersion, type ReadWorkspaceScript } from "./bunLockfile.ts";
import { windmillParser } from "./parser.ts";
import { workerProxyEnv } from "../shared/proxy.ts";

/** A worker's default job timeout is 15 minutes; a stand-in job should never need more. */
const DEFAULT_TIMEOUT_MS = 15 * 60 * 1000;
const ENTRY = join(dirname(fileURLToPath(import.meta.url)), "jobEntry.ts");

export interface ScriptJob {
  /** The script's workspace path (`f/x/y`, or `<flow>/<step>` for an inline flow step). */
  path: string;
  content: string;
  /**
   * The deployed lock. Undefined when the script has none (an inline flow step, a script
   * created without one): Windmill then resolves its packages when the job runs.
   */
  lock: string | undefined;
  /** The deployed workspace scripts, for the script's `./x` and `/f/...` imports. */
  readScript: ReadWorkspaceScript;
  /** Versions for an unlocked script's npm imports. */
  pin: PinVersion;
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

const failed = (logs: string, name: string, message: string): JobOutcome => ({ success: false, logs, result: { error: { name, message } } });

export async function runScriptJob(job: ScriptJob, args: Record<string, unknown>): Promise<JobOutcome> {
  const dir = await mkdtemp(join(tmpdir(), "wm-job-"));
  try {
    try {
      await installDependencies(job, dir);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      return failed(`${message}\n`, "ExecutionErr", message);
    }
    const scriptFile = await writeWorkspaceScripts(job, dir);
    const specFile = join(dir, "spec.json");
    const resultFile = join(dir, "result.json");
    const spec = { scriptFile, workspaceRoot: dir, parameters: parameterNames(job.content), args, resultFile };
    await writeFile(specFile, JSON.stringify(spec), { mode: 0o600 });
    const { logs, timedOut } = await spawnJob(job, dir, specFile);
    if (timedOut) return failed(logs, "TimeoutError", `Job timed out after ${(job.timeoutMs ?? DEFAULT_TIMEOUT_MS) / 1000} s`);
    const outcome = JSON.parse(await readFile(resultFile, "utf8").catch(() => "null")) as
      | { ok: true; result: unknown }
      | { ok: false; error: { name: string; message: string; stack?: string } }
      | null;
    if (!outcome) return failed(logs, "ExecutionErr", "The job process exited without a result");
    return outcome.ok ? { success: true, logs, result: outcome.result } : { success: false, logs, result: { error: outcome.error } };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * windmill-worker/src/bun_executor.rs (handle_bun_job): the lock's package.json goes into
 * the job folder and, unless the lock says `<empty>`, its packages are installed (here once
 * per lock, linked in as the job's node_modules). A lock without the `//bun.lock`
 * separator fails the job. A script with no lock is resolved now, as a preview is
 * (MaybeLock::Unresolved); Windmill would have locked a deployed one at deploy time.
 */
async function installDependencies(job: ScriptJob, dir: string): Promise<void> {
  let install: LockFiles | undefined;
  if (job.lock === undefined) {
    const packageJson = await bunPackageJson({ path: job.path, code: job.content }, job.readScript, job.pin);
    await writeFile(join(dir, "package.json"), packageJson);
    if (packageJson !== EMPTY_PACKAGE_JSON) install = { packageJson };
  } else {
    const split = splitLockfile(job.lock);
    if (split.bunLock === undefined) throw new Error(invalidRequirements(job.lock));
    await writeFile(join(dir, "package.json"), split.packageJson);
    if (!split.empty) install = { packageJson: split.packageJson, bunLock: split.bunLock, isBinary: split.isBinary };
  }
  // An empty node_modules still stops Bun from auto-installing what the lock lacks.
  if (install) await symlink(join(await installedLock(install), "node_modules"), join(dir, "node_modules"));
  else await mkdir(join(dir, "node_modules"));
}

/**
 * The script at its workspace path inside the job folder, with every workspace script it
 * imports (directly or through others) beside it, as Windmill's loader fetches them from
 * `scripts/raw_unpinned/p/<path>.ts` (windmill-worker/loader.bun.js). An import of a path
 * that is not deployed is left out, so it fails in the job.
 */
async function writeWorkspaceScripts(job: ScriptJob, dir: string): Promise<string> {
  const parser = windmillParser();
  const write = async (path: string, code: string) => {
    const file = join(dir, `${path}.ts`);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, code);
    return file;
  };
  const scriptFile = await write(job.path, job.content);
  const seen = new Set([job.path]);
  const pending = parser.parse_ts_relative_imports(job.content, job.path);
  for (let path = pending.pop(); path !== undefined; path = pending.pop()) {
    if (seen.has(path)) continue;
    seen.add(path);
    const code = await job.readScript(path);
    if (code === undefined) continue;
    await write(path, code);
    pending.push(...parser.parse_ts_relative_imports(code, path));
  }
  return scriptFile;
}

async function spawnJob(job: ScriptJob, dir: string, specFile: string): Promise<{ logs: string; timedOut: boolean }> {
  const home = await homeFallback();
  return new Promise((resolve, reject) => {
    // --no-install: a package the lock lacks fails the import instead of being fetched on the fly.
    const child = spawn(bunBinary(), ["run", "--no-install", ENTRY], {
      cwd: dir,
      // windmill-worker/src/bun_executor.rs (handle_bun_job): a cleared env, then the worker's PROXY_ENVS and its own variables.
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, ...workerProxyEnv(), ...job.env, WM_LOCAL_JOB_SPEC: specFile },
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
