// Running a stand-in on its own from the command line: is this module the entry point, and
// a clean stop on Ctrl-C or a kill. Works under Node and Bun alike (s3rver's gate runs under both).
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

/** True when the module at `moduleUrl` (its import.meta.url) is the script being run. */
export function isEntryModule(moduleUrl: string): boolean {
  const script = process.argv[1];
  return script !== undefined && moduleUrl === pathToFileURL(resolve(script)).href;
}

/** What ends a stand-in: Ctrl-C, a kill, and the terminal closing (SIGHUP, whose default would end the process without closing anything). */
export const STOP_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

/**
 * On the first of STOP_SIGNALS, runs `close` once, then exits with `exitCode(signal)`. A second
 * signal (a terminal closing sends SIGHUP to a whole process group) waits for that close.
 */
export function onStopSignal(close: () => Promise<unknown>, exitCode: (signal: NodeJS.Signals) => number): void {
  let closing: Promise<unknown> | undefined;
  const stop = (signal: NodeJS.Signals) => {
    closing ??= close().catch((err: unknown) => console.error(err instanceof Error ? err.message : err)).finally(() => process.exit(exitCode(signal)));
  };
  for (const signal of STOP_SIGNALS) process.on(signal, stop);
}

/** Closes the stand-in, then exits 0, on SIGINT, SIGTERM or SIGHUP. */
export function closeOnSignals(close: () => Promise<void>): void {
  onStopSignal(close, () => 0);
}

/** Reads `--flag value` pairs; undefined for a flag that is absent. */
export function flagReader(argv: string[]): (flag: string) => string | undefined {
  return (flag) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
}
