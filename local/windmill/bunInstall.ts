// Installs a job's npm packages as Windmill's worker does (`bun install --save-text-lockfile`
// in a folder holding the lock's package.json and bun.lock), once per lock: every job whose
// lock hashes the same reuses one folder's node_modules.
import { spawn } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import { access, mkdir, rename, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import { privateTempFolder } from "../shared/ownedFolder.ts";
import { workerProxyEnv } from "../shared/proxy.ts";

/**
 * Kept across runs (in the OS temp dir) so a test run installs only the locks it has not
 * seen before. Jobs run the code in it, so it is the running user's own (see ownedFolder.ts):
 * `windmill-standin-bun-installs-<uid>`. Bun's own download cache stays at its default,
 * under HOME, which is per user too.
 */
export const INSTALL_CACHE_NAME = "windmill-standin-bun-installs";

/** This user's install cache, checked before each use: a folder another user could write to is refused. */
export function installCacheDir(): Promise<string> {
  return privateTempFolder(INSTALL_CACHE_NAME);
}

/** Where HOME points when it is unset (bun keeps its download cache under it): this user's own folder, not the shared temp dir. */
export async function homeFallback(): Promise<string> {
  return process.env.HOME ?? (await privateTempFolder("windmill-standin-home"));
}
/** A cold install of the AWS SDK takes ~5 s here; the limit only stops a hung registry. */
const INSTALL_TIMEOUT_MS = 5 * 60 * 1000;

export function bunBinary(): string {
  if (process.versions.bun) return process.execPath;
  return createRequire(import.meta.url).resolve("bun/bin/bun.exe");
}

/** What a lock installs from: its package.json half and, unless it was `<empty>` or never locked, its bun.lock half. */
export interface LockFiles {
  packageJson: string;
  bunLock?: string;
  /** The bun.lock half is the binary `bun.lockb`, base64-encoded. */
  isBinary?: boolean;
}

// windmill-worker/src/bun_executor.rs (install_bun_lockfile, get_common_bun_proc_envs): a cleared env with PATH, HOME and the proxy variables.
async function installEnv(): Promise<Record<string, string>> {
  const env: Record<string, string> = { DO_NOT_TRACK: "1", ...workerProxyEnv(), PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: await homeFallback() };
  if (process.env.TZ) env.TZ = process.env.TZ;
  return env;
}

/** Runs `bun install <args>` in `dir`; throws with bun's output when it fails. */
export async function bunInstall(dir: string, args: string[]): Promise<void> {
  const env = await installEnv();
  return new Promise((resolve, reject) => {
    const child = spawn(bunBinary(), ["install", ...args], { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString("utf8")));
    child.stderr.on("data", (d: Buffer) => (output += d.toString("utf8")));
    const timer = setTimeout(() => child.kill("SIGKILL"), INSTALL_TIMEOUT_MS);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`bun install ${args.join(" ")} failed (exit ${code ?? "killed"}):\n${output.trim()}`));
    });
  });
}

export async function writeLockFiles(dir: string, files: LockFiles): Promise<void> {
  await writeFile(join(dir, "package.json"), files.packageJson);
  if (files.bunLock === undefined) return;
  // windmill-worker/src/bun_executor.rs (write_lock): the text lock verbatim, the binary one base64-decoded.
  if (files.isBinary) await writeFile(join(dir, "bun.lockb"), Buffer.from(files.bunLock, "base64"));
  else await writeFile(join(dir, "bun.lock"), files.bunLock);
}

/** In this process, the install under way for each lock's folder (a second job with that lock waits for it). */
const installing = new Map<string, Promise<string>>();

/**
 * The folder whose node_modules holds the lock's packages, installed on first use. The cache
 * is checked on every call, not once per process: it may have changed hands since.
 */
export async function installedLock(files: LockFiles): Promise<string> {
  const hash = createHash("sha256").update(JSON.stringify([files.packageJson, files.bunLock ?? null, files.isBinary ?? false])).digest("hex");
  const folder = join(await installCacheDir(), hash);
  let install = installing.get(folder);
  if (!install) {
    install = installOnce(folder, files);
    installing.set(folder, install);
    install.catch(() => installing.delete(folder));
  }
  return install;
}

/**
 * Installs into a private folder and renames it into place, so another process (a second
 * test run, `npm run metadata`) never sees a half-done install; if it finished first, its
 * folder is kept and ours is dropped.
 */
async function installOnce(folder: string, files: LockFiles): Promise<string> {
  if (await exists(folder)) return folder;
  const partial = `${folder}.partial-${process.pid}-${randomUUID()}`;
  await mkdir(partial, { recursive: true });
  try {
    await writeLockFiles(partial, files);
    // windmill-worker/src/bun_executor.rs (install_bun_lockfile): no --frozen-lockfile, so bun may rewrite bun.lock.
    await bunInstall(partial, ["--save-text-lockfile"]);
    await mkdir(join(partial, "node_modules"), { recursive: true });
    await rename(partial, folder).catch(async (err: unknown) => {
      if (!(await exists(folder))) throw err;
    });
  } finally {
    await rm(partial, { recursive: true, force: true });
  }
  return folder;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(() => true, () => false);
}
