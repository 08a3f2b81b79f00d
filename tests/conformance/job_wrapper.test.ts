// Issue 20, point 3: a Bun job as Windmill's worker runs it (windmill-worker/src/bun_executor.rs
// handle_bun_job and the wrapper.mjs it generates). Each test runs a real job process through
// the stand-in's worker and checks what the job's result shows.
import { describe, expect, test } from "bun:test";
import { runScriptJob, type ScriptJob } from "../../local/windmill/worker.ts";

/** A deployed script's lock when it imports no npm package (gen_bun_lockfile with empty dependencies). */
const EMPTY_LOCK = '{\n  "dependencies": {}\n}\n//bun.lock\n<empty>';

function job(content: string, options: Partial<ScriptJob> = {}): ScriptJob {
  const scripts: Record<string, string> = {};
  return {
    path: `f/conformance/wrapper_${crypto.randomUUID().slice(0, 8)}`,
    content,
    lock: EMPTY_LOCK,
    readScript: async (path) => scripts[path],
    pin: () => "latest",
    env: {},
    timeoutMs: 30_000,
    ...options,
  };
}

describe("the result (wrapper.mjs run: JSON.stringify(res ?? null, undefined -> null), then process.exit(0))", () => {
  test("undefined fields and array items are written as null, not dropped", async () => {
    const outcome = await runScriptJob(job("export async function main() { return { a: undefined, b: [1, undefined] }; }"), {});
    expect(outcome).toMatchObject({ success: true, result: { a: null, b: [1, null] } });
  });

  test("a main that returns nothing gives null", async () => {
    const outcome = await runScriptJob(job("export async function main() {}"), {});
    expect(outcome).toMatchObject({ success: true, result: null });
  });

  test("a BigInt is written through the toJSON the wrapper sets (its decimal string)", async () => {
    const outcome = await runScriptJob(job("export async function main() { return { n: 12345678901234567890n }; }"), {});
    expect(outcome).toMatchObject({ success: true, result: { n: "12345678901234567890" } });
  });

  test("an open handle (an interval, a pending timer) does not keep a finished job alive", async () => {
    const code = "export async function main() { setInterval(() => {}, 1000); setTimeout(() => {}, 600_000); return 'done'; }";
    const outcome = await runScriptJob(job(code, { timeoutMs: 30_000 }), {});
    expect(outcome).toMatchObject({ success: true, result: "done" });
  });
});

describe("the error (wrapper.mjs catch: {message, name, stack, step_id, extra}, exit 1)", () => {
  const failing = `
class QueryError extends Error {
  code = "42P01";
  constructor(message: string) { super(message); this.name = "QueryError"; }
}
export async function main() { const e = new QueryError("relation does not exist"); (e as any).detail = { table: "orders" }; throw e; }`;

  test("the error's own properties other than name, message and stack go in `extra`", async () => {
    const outcome = await runScriptJob(job(failing), {});
    expect(outcome.success).toBe(false);
    const { error } = outcome.result as { error: Record<string, unknown> };
    expect(error).toMatchObject({ name: "QueryError", message: "relation does not exist", extra: { code: "42P01", detail: { table: "orders" } } });
    expect(String(error.stack)).toContain("relation does not exist");
    expect(error).not.toHaveProperty("step_id");
  });

  test("inside a flow, the step's id (WM_FLOW_STEP_ID) is written as step_id", async () => {
    const outcome = await runScriptJob(job(failing, { env: { WM_FLOW_STEP_ID: "load" } }), {});
    expect((outcome.result as { error: Record<string, unknown> }).error).toMatchObject({ step_id: "load", name: "QueryError" });
  });

  test("a plain Error has no `extra`", async () => {
    const outcome = await runScriptJob(job("export async function main() { throw new Error('boom'); }"), {});
    const { error } = outcome.result as { error: Record<string, unknown> };
    expect(error).toMatchObject({ name: "Error", message: "boom" });
    expect(error).not.toHaveProperty("extra");
  });

  test("a script without main fails with the wrapper's message", async () => {
    const outcome = await runScriptJob(job("export async function notMain() { return 1; }"), {});
    expect(outcome).toMatchObject({ success: false, result: { error: { name: "Error", message: "main function is missing" } } });
  });
});

describe("arguments", () => {
  test("a parameter typed Date gets a Date (the parser's Typ::Datetime), a missing one undefined", async () => {
    const code = "export async function main(at: Date, until: Date | undefined, label: string) { return { at: at instanceof Date ? at.toISOString() : typeof at, until: until === undefined ? 'undefined' : typeof until, label }; }";
    const outcome = await runScriptJob(job(code), { at: "2026-01-02T03:04:05Z", until: null, label: "2026-01-02T03:04:05Z" });
    expect(outcome).toMatchObject({ success: true, result: { at: "2026-01-02T03:04:05.000Z", until: "undefined", label: "2026-01-02T03:04:05Z" } });
  });
});

describe("bundling (handle_bun_job: a locked script without //nobundling runs as a Bun.build bundle, cached)", () => {
  // import.meta.path tells what ran: the script (.ts) or a bundle (.js, the cached file it was saved as).
  const selfPath = "export async function main() { return import.meta.path.split('/').pop(); }";
  const withLib = "import { tag } from '/f/conformance/tag.ts';\nexport async function main() { return [tag, import.meta.path.split('/').pop()]; }";

  test("a locked script runs as a bundle", async () => {
    expect((await runScriptJob(job(selfPath), {})).result).toMatch(/^[0-9a-f]{64}\.js$/);
  });

  test("the same script, lock and imported scripts reuse the cached bundle; a changed import makes a new one", async () => {
    const lib = (tag: string) => async (path: string) => (path === "f/conformance/tag" ? `export const tag = "${tag}";` : undefined);
    const first = await runScriptJob(job(withLib, { path: "f/conformance/bundle_cache", readScript: lib("v1") }), {});
    const again = await runScriptJob(job(withLib, { path: "f/conformance/bundle_cache", readScript: lib("v1") }), {});
    const changed = await runScriptJob(job(withLib, { path: "f/conformance/bundle_cache", readScript: lib("v2") }), {});
    expect(first.result).toEqual(again.result);
    expect((changed.result as string[])[0]).toBe("v2");
    expect((changed.result as string[])[1]).not.toBe((first.result as string[])[1]);
  });

  test("//nobundling runs the script itself through the loader", async () => {
    expect((await runScriptJob(job(`//nobundling\n${selfPath}`), {})).result).toMatch(/^wrapper_[0-9a-f]{8}\.ts$/);
  });

  test("a script with no lock (a preview, an inline flow step) is not bundled", async () => {
    expect((await runScriptJob(job(selfPath, { lock: undefined }), {})).result).toMatch(/^wrapper_[0-9a-f]{8}\.ts$/);
  });

  test("a script that Bun.build cannot bundle fails the job with the builder's message", async () => {
    const outcome = await runScriptJob(job("import { x } from './not_deployed.ts';\nexport async function main() { return x; }"), {});
    expect(outcome.success).toBe(false);
    expect(outcome.logs).toContain("Failed to build node bundle");
  });
});
