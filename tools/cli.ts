// Command-line handling shared by the tools: `--help` prints the usage and exits 0; an unknown
// flag, a flag without its value or a bad number prints one line naming it, then the usage,
// and exits 2 (the usual "bad usage" status), never a stack trace.
import { parseArgs, type ParseArgsConfig } from "node:util";

export const USAGE_EXIT = 2;

/** A bad command line: the one line that names what is wrong. */
export class UsageError extends Error {
  override name = "UsageError";
}

type Options = NonNullable<ParseArgsConfig["options"]>;

/** The flag a parseArgs error message names, e.g. `--flow` from "Option '--flow <value>' argument missing". */
function flagOf(message: string): string {
  return /'(-{1,2}[\w-]+)/.exec(message)?.[1] ?? "an option";
}

/** parseArgs's errors as one line a person reads. */
function usageProblem(err: { code?: string; message: string }): string {
  const firstLine = err.message.split("\n")[0];
  if (err.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") return `unknown option ${flagOf(firstLine)}`;
  if (err.code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" && /argument missing|ambiguous/.test(firstLine)) return `${flagOf(firstLine)} needs a value`;
  if (err.code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL") return `unexpected argument ${/'([^']*)'/.exec(firstLine)?.[1] ?? ""} (every value follows its --flag)`;
  return firstLine;
}

/** Parses `argv` against `options`; prints the usage and exits 0 on --help or -h. */
export function parseCommandLine<const T extends Options>(usage: string, options: T, argv = process.argv.slice(2)) {
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(usage);
    process.exit(0);
  }
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    const e = err as { code?: string; message: string };
    if (e.code?.startsWith("ERR_PARSE_ARGS")) throw new UsageError(usageProblem(e));
    throw err;
  }
}

/** A flag's value as a number, or a UsageError naming the flag. */
export function numberFlag(flag: string, text: string): number {
  const value = Number(text);
  if (text.trim() === "" || !Number.isFinite(value)) throw new UsageError(`--${flag} takes a number, got ${JSON.stringify(text)}`);
  return value;
}

/**
 * Runs a tool's main: its exit code, or for a UsageError the line and the usage on stderr
 * with exit 2, and for any other error (a bad input, an unreadable file) its message with exit 2.
 */
export async function runTool(usage: string, main: () => Promise<number>): Promise<void> {
  try {
    process.exitCode = await main();
  } catch (err) {
    console.error(err instanceof UsageError ? `${err.message}\n${usage}` : (err as Error).message);
    process.exitCode = USAGE_EXIT;
  }
}
