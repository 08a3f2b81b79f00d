// Entry point of a job process (see worker.ts), doing what Windmill's Bun wrapper does
// (windmill-worker/src/bun_executor.rs handle_bun_job, the generated wrapper.mjs): imports the
// script (or its bundle), calls main with the job's args in parameter order, writes the result
// or the error where the worker reads it, and exits at once.
import { readFile, writeFile } from "node:fs/promises";
import { workspaceResolver } from "./jobLoader.ts";

interface JobSpec {
  /** The script itself (run through Windmill's loader) or its bundle. */
  mainFile: string;
  workspaceRoot: string;
  /** Unbundled: `/f/...` imports resolved at run time by the loader plugin. */
  runtimeLoader: boolean;
  /** main's parameters in order; `datetime` for a parameter typed `Date`. */
  parameters: { name: string; datetime: boolean }[];
  args: Record<string, unknown>;
  resultFile: string;
}

/** The error's own properties the wrapper leaves out of `extra`. */
const NOT_EXTRA = new Set(["line", "name", "stack", "column", "message", "sourceURL", "originalLine", "originalColumn"]);

const spec = JSON.parse(await readFile(process.env.WM_LOCAL_JOB_SPEC ?? "", "utf8")) as JobSpec;
if (spec.runtimeLoader) Bun.plugin(workspaceResolver(spec.workspaceRoot));

// wrapper.mjs: undefined anywhere in the result is written as null.
const toJson = (value: unknown) => JSON.stringify(value ?? null, (_key, v: unknown) => (v === undefined ? null : v));

function isAsyncIterable(value: unknown): value is AsyncIterable<string> {
  return value != null && typeof (value as AsyncIterable<string>)[Symbol.asyncIterator] === "function";
}

/** wrapper.mjs: a `Date` parameter gets `new Date(arg)`, or undefined for a falsy arg. */
function callArgs(): unknown[] {
  return spec.parameters.map(({ name, datetime }) => {
    const value = spec.args[name];
    return datetime ? (value ? new Date(value as string) : undefined) : value;
  });
}

async function run(): Promise<void> {
  const script = (await import(spec.mainFile)) as { main?: unknown };
  // wrapper.mjs sets this after the script's module code has run: the script's own top-level toJSON is replaced.
  (BigInt.prototype as unknown as { toJSON: () => string }).toJSON = function (this: bigint) {
    return this.toString();
  };
  if (typeof script.main !== "function") throw new Error("main function is missing");
  let result: unknown = await (script.main as (...args: unknown[]) => unknown)(...callArgs());
  if (isAsyncIterable(result)) {
    for await (const chunk of result) console.log(`WM_STREAM: ${chunk.replace(/\n/g, "\\n")}`);
    result = null;
  }
  await writeFile(spec.resultFile, toJson(result));
  // Open handles (timers, sockets) never keep a finished job alive.
  process.exit(0);
}

/** wrapper.mjs: {message, name, stack}, the flow step's id, and the error's other own properties as `extra`. */
function errorValue(err: unknown): Record<string, unknown> {
  const e = err as Record<string, unknown>;
  const value: Record<string, unknown> = { message: e?.message, name: e?.name, stack: e?.stack };
  if (process.env.WM_FLOW_STEP_ID) value.step_id = process.env.WM_FLOW_STEP_ID;
  const extra: Record<string, unknown> = {};
  for (const key of Object.getOwnPropertyNames(err)) if (!NOT_EXTRA.has(key)) extra[key] = e[key];
  if (Object.keys(extra).length > 0) value.extra = extra;
  return value;
}

try {
  await run();
} catch (err) {
  console.error(err);
  await writeFile(spec.resultFile, JSON.stringify(errorValue(err)));
  process.exit(1);
}
