// Running a stand-in on its own from the command line: is this module the entry point, and
// a clean stop on Ctrl-C or a kill. Works under Node and Bun alike (s3rver's gate runs under both).
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

/** True when the module at `moduleUrl` (its import.meta.url) is the script being run. */
export function isEntryModule(moduleUrl: string): boolean {
  const script = process.argv[1];
  return script !== undefined && moduleUrl === pathToFileURL(resolve(script)).href;
}

/** Closes the stand-in, then exits 0, on SIGINT or SIGTERM. */
export function closeOnSignals(close: () => Promise<void>): void {
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => void close().then(() => process.exit(0)));
  }
}

/** Reads `--flag value` pairs; undefined for a flag that is absent. */
export function flagReader(argv: string[]): (flag: string) => string | undefined {
  return (flag) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
}
