// The bun lock string Windmill stores with a deployed script: the package.json its build
// step wrote, a `//bun.lock` separator, then bun's text lockfile, or `<empty>` when there
// is nothing to install (windmill-worker/src/bun_executor.rs).

export const BUN_LOCK_SPLIT = "\n//bun.lock\n";
export const EMPTY_FILE = "<empty>";
/** What the build step writes when the script imports no npm package. */
export const EMPTY_PACKAGE_JSON = '{\n  "dependencies": {}\n}';

/** The separators `split_lockfile` tries, in its order; `lockb` ones carry the binary lockfile in base64. */
const SEPARATORS: readonly { separator: string; isBinary: boolean }[] = [
  { separator: "\n//bun.lock\n", isBinary: false },
  { separator: "\n//bun.lockb\n", isBinary: true },
  { separator: "\r\n//bun.lock\r\n", isBinary: false },
  { separator: "\r\n//bun.lockb\r\n", isBinary: true },
];

export interface SplitLock {
  packageJson: string;
  /** What follows the separator, verbatim; undefined when the lock has no separator. */
  bunLock: string | undefined;
  /** The lock says `<empty>`: write package.json, install nothing. */
  empty: boolean;
  isBinary: boolean;
}

// windmill-worker/src/bun_executor.rs (split_lockfile): first separator found wins, `<empty>` compared exactly.
export function splitLockfile(lock: string): SplitLock {
  for (const { separator, isBinary } of SEPARATORS) {
    const at = lock.indexOf(separator);
    if (at < 0) continue;
    const after = lock.slice(at + separator.length);
    return { packageJson: lock.slice(0, at), bunLock: after, empty: after === EMPTY_FILE, isBinary };
  }
  return { packageJson: lock, bunLock: undefined, empty: false, isBinary: false };
}

// windmill-worker/src/bun_executor.rs (handle_bun_job, MaybeLock::Resolved): a lock without the separator fails the job.
export function invalidRequirements(lock: string): string {
  return `Invalid requirements, expected to find //bun.lock split pattern in reqs. Found: |${lock}|`;
}

// windmill-worker/src/bun_executor.rs (gen_bun_lockfile, export_pkg): package.json, separator, bun.lock or `<empty>`.
export function assembleLock(packageJson: string, bunLock: string | undefined): string {
  return `${packageJson}${BUN_LOCK_SPLIT}${bunLock ?? EMPTY_FILE}`;
}
