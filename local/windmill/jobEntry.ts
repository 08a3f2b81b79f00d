// Entry point of a job process (see worker.ts): makes `/f/...` and `/u/...`
// imports resolve inside the job folder as Windmill's loader does, imports the script, calls main
// with the job's args in parameter order, and writes the outcome where the worker reads it.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

interface JobSpec {
  scriptFile: string;
  workspaceRoot: string;
  /** main's parameter names in order; an arg absent from `args` stays undefined so its default applies. */
  parameters: string[];
  args: Record<string, unknown>;
  resultFile: string;
}

const spec = JSON.parse(await readFile(process.env.WM_LOCAL_JOB_SPEC ?? "", "utf8")) as JobSpec;
Bun.plugin({
  name: "windmill-workspace-paths",
  setup(build) {
    build.onResolve({ filter: /^\/(f|u)\// }, (args) => ({ path: join(spec.workspaceRoot, args.path) }));
  },
});
try {
  const script = (await import(spec.scriptFile)) as { main: (...args: unknown[]) => unknown };
  const result = await script.main(...spec.parameters.map((name) => spec.args[name]));
  await writeFile(spec.resultFile, JSON.stringify({ ok: true, result: result ?? null }));
} catch (err) {
  const error = err instanceof Error ? { name: err.name, message: err.message, stack: err.stack } : { name: "Error", message: String(err) };
  console.error(`${error.name}: ${error.message}`);
  await writeFile(spec.resultFile, JSON.stringify({ ok: false, error }));
  process.exitCode = 1;
}
