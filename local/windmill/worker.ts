// Runs one script job the way a Windmill worker runs a bun script: a fresh job folder with
// the script, the workspace scripts it imports and the lock's installed packages (or, for a
// locked script, its cached bundle), a fresh Bun process with the worker's env vars and a
// job-scoped token, `main` called with the job's args mapped by parameter name (jobEntry.ts,
// Windmill's wrapper), stdout/stderr kept as the job's logs.
import { spawn } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import { access, copyFile, mkdir, mkdtemp, readFile, rename, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { bunBinary, installedLock, type LockFiles } from "./bunInstall.ts";
import { EMPTY_PACKAGE_JSON, invalidRequirements, splitLockfile } from "./bunLock.ts";
import { bunPackageJson, type PinVersion, type ReadWorkspaceScript } from "./bunLockfile.ts";
import { windmillParser } from "./parser.ts";

/** A worker's default job timeout is 15 minutes; a stand-in job should never need more. */
const DEFAULT_TIMEOUT_MS = 15 * 60 * 1000;
const HERE = dirname(fileURLToPath(import.meta.url));
const ENTRY = join(HERE, "jobEntry.ts");
const BUILD = join(HERE, "jobBuild.ts");
/**
 * Bundles kept across runs like installs (bun_executor.rs keeps them in BUN_BUNDLE_CACHE_DIR);
 * BUNDLE_RECIPE is part of every key, so a change to how the stand-in bundles starts afresh.
 */
const BUNDLE_CACHE_DIR = join(tmpdir(), "windmill-standin-bun-bundles");
const BUNDLE_RECIPE = "bun-bundle-1";

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
  /** Aborted when the job is canceled: the process is killed. */
  signal?: AbortSignal;
}

export interface JobOutcome {
  success: boolean;
  result: unknown;
  logs: string;
}

/** main's parameters as the wrapper spreads them; a `Date` one is converted (Typ::Datetime). */
function parameters(code: string): { name: string; datetime: boolean }[] {
  const parsed = JSON.parse(windmillParser().parse_deno(code)) as { args: { name: string; typ: unknown }[] };
  return parsed.args.map((a) => ({ name: a.name, datetime: a.typ === "datetime" }));
}

const failed = (logs: string, name: string, message: string): JobOutcome => ({ success: false, logs, result: { error: { name, message } } });

export async function runScriptJob(job: ScriptJob, args: Record<string, unknown>): Promise<JobOutcome> {
  const dir = await mkdtemp(join(tmpdir(), "wm-job-"));
  try {
    let prepared: PreparedJob;
    try {
      prepared = await prepareJob(job, dir);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      return failed(`${message}\n`, "ExecutionErr", message);
    }
    const specFile = join(dir, "spec.json");
    const resultFile = join(dir, "result.json");
    const spec = { ...prepared, workspaceRoot: dir, parameters: parameters(job.content), args, resultFile };
    await writeFile(specFile, JSON.stringify(spec), { mode: 0o600 });
    // handle_bun_job runs a bundle (main.js, linked from the cache) with --preserve-symlinks.
    const flags = prepared.runtimeLoader ? [] : ["--preserve-symlinks"];
    const { logs, timedOut, exitCode } = await spawnBun(job, dir, [...flags, ENTRY], { WM_LOCAL_JOB_SPEC: specFile });
    if (timedOut) return failed(logs, "TimeoutError", `Job timed out after ${(job.timeoutMs ?? DEFAULT_TIMEOUT_MS) / 1000} s`);
    const written = await readFile(resultFile, "utf8").catch(() => undefined);
    if (written === undefined) return failed(logs, "ExecutionErr", `The job process exited (code ${exitCode ?? "killed"}) without a result`);
    // bun_executor.rs wrapper.mjs: exit 0 with the result, exit 1 with the error value.
    return exitCode === 0 ? { success: true, logs, result: JSON.parse(written) } : { success: false, logs, result: { error: JSON.parse(written) } };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** What the job process runs: the script or its bundle, and whether the loader resolves imports at run time. */
interface PreparedJob {
  mainFile: string;
  runtimeLoader: boolean;
}

/**
 * windmill-worker/src/bun_executor.rs handle_bun_job: a script with a lock and no
 * `//nobundling` runs as a bundle, taken from the bundle cache when this content, lock and
 * imported scripts were bundled before (then nothing is installed); otherwise the lock is
 * installed and the script run through the loader.
 */
async function prepareJob(job: ScriptJob, dir: string): Promise<PreparedJob> {
  const annotations = typeScriptAnnotations(job.content);
  // Not modelled: //npm installs with npm and runs without a bun.lock; the stand-in refuses rather than run it another way.
  if (annotations.has("npm")) throw new Error("The Windmill stand-in does not run scripts with the //npm annotation.\nFix: remove //npm, or test this script on a real Windmill worker.");
  const scripts = await workspaceScripts(job);
  const bundled = job.lock !== undefined && !annotations.has("nobundling");
  const cacheKey = bundled ? bundleKey(job, scripts) : undefined;
  if (cacheKey && (await cachedBundle(cacheKey))) return useBundle(dir, bundleCachePath(cacheKey));
  await installDependencies(job, dir);
  const scriptFile = await writeScripts(dir, scripts, job.path);
  if (!cacheKey) return { mainFile: scriptFile, runtimeLoader: true };
  return useBundle(dir, await buildBundle(job, dir, scriptFile, cacheKey));
}

/** windmill-common worker.rs TypeScriptAnnotations (`#[annotations("//")]`): `//name` lines at the top of the script. */
function typeScriptAnnotations(code: string): Set<string> {
  const found = new Set<string>();
  for (const line of code.split("\n")) {
    if (!line.startsWith("//")) break;
    found.add(line.slice(2).trim());
  }
  return found;
}

/** compute_bundle_local_and_remote_path: the content, the lock, and each imported script (Windmill: its creation time; here its content). */
function bundleKey(job: ScriptJob, scripts: Map<string, string>): string {
  const hash = createHash("sha256").update(BUNDLE_RECIPE).update(job.content).update(job.lock ?? "");
  for (const [path, code] of [...scripts].sort(([a], [b]) => a.localeCompare(b))) if (path !== job.path) hash.update(path).update(code);
  return hash.digest("hex");
}

const bundleCachePath = (key: string) => join(BUNDLE_CACHE_DIR, `${key}.js`);

async function cachedBundle(key: string): Promise<boolean> {
  return access(bundleCachePath(key)).then(() => true, () => false);
}

/** handle_bun_job with a bundle: main.js linked from the cache, package.json `{ "type": "module" }`, main.ts gone. */
async function useBundle(dir: string, bundle: string): Promise<PreparedJob> {
  const mainFile = join(dir, "main.js");
  await symlink(bundle, mainFile);
  await writeFile(join(dir, "package.json"), '{ "type": "module" }');
  return { mainFile, runtimeLoader: false };
}

/** generate_bun_bundle, then save_cache: the bundle is kept under its key for later jobs. */
async function buildBundle(job: ScriptJob, dir: string, scriptFile: string, key: string): Promise<string> {
  const specFile = join(dir, "build.json");
  await writeFile(specFile, JSON.stringify({ entry: scriptFile, outdir: join(dir, "out"), workspaceRoot: dir }));
  const { logs, exitCode } = await spawnBun(job, dir, [BUILD], { WM_LOCAL_BUILD_SPEC: specFile });
  const output = /^BUNDLE:(.+)$/m.exec(logs)?.[1];
  if (exitCode !== 0 || !output) throw new Error(`bun build failed:\n${logs.trim()}`);
  await mkdir(BUNDLE_CACHE_DIR, { recursive: true });
  const partial = `${bundleCachePath(key)}.partial-${process.pid}-${randomUUID()}`;
  await copyFile(output, partial);
  await rename(partial, bundleCachePath(key));
  await rm(scriptFile);
  return bundleCachePath(key);
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
 * The script and every workspace script it imports (directly or through others), as
 * Windmill's loader fetches them from `scripts/raw_unpinned/p/<path>.ts`
 * (windmill-worker/loader.bun.js). An import of a path that is not deployed is left out, so
 * it fails in the job.
 */
async function workspaceScripts(job: ScriptJob): Promise<Map<string, string>> {
  const parser = windmillParser();
  const scripts = new Map([[job.path, job.content]]);
  const pending = parser.parse_ts_relative_imports(job.content, job.path);
  for (let path = pending.pop(); path !== undefined; path = pending.pop()) {
    if (scripts.has(path)) continue;
    const code = await job.readScript(path);
    if (code === undefined) continue;
    scripts.set(path, code);
    pending.push(...parser.parse_ts_relative_imports(code, path));
  }
  return scripts;
}

/** Each script at its workspace path inside the job folder; returns the job's own script's file. */
async function writeScripts(dir: string, scripts: Map<string, string>, mainPath: string): Promise<string> {
  for (const [path, code] of scripts) {
    const file = join(dir, `${path}.ts`);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, code);
  }
  return join(dir, `${mainPath}.ts`);
}

function spawnBun(job: ScriptJob, dir: string, entry: string[], specEnv: Record<string, string>): Promise<{ logs: string; timedOut: boolean; exitCode: number | null }> {
  return new Promise((resolve, reject) => {
    // --no-install: a package the lock lacks fails the import instead of being fetched on the fly.
    const child = spawn(bunBinary(), ["run", "--no-install", ...entry], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? tmpdir(), ...job.env, ...specEnv },
      stdio: ["ignore", "pipe", "pipe"],
      signal: job.signal,
      killSignal: "SIGKILL",
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
    child.on("close", (exitCode) => {
      clearTimeout(timer);
      resolve({ logs, timedOut, exitCode });
    });
  });
}
