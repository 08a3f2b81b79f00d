// The OpenFlow runner of the Windmill stand-in: walks a flow's modules the way
// Windmill's executor does and runs every script step as its own job (own process, env,
// token and WM_FLOW_PATH), so each step's OIDC `sub` carries the flow path.
import { HttpError } from "../shared/http.ts";

export type InputTransform = { type: "static"; value: unknown } | { type: "javascript"; expr: string };

export interface FlowModule {
  id: string;
  summary?: string;
  value: ModuleValue;
  retry?: { constant?: { attempts?: number; seconds?: number }; exponential?: { attempts?: number; multiplier?: number; seconds?: number } };
  stop_after_if?: { expr: string; skip_if_stopped?: boolean };
  skip_if?: { expr: string };
  /** Seconds. */
  timeout?: number;
}

export type ModuleValue =
  | { type: "script"; path: string; input_transforms?: Record<string, InputTransform> }
  | { type: "rawscript"; content: string; language: string; lock?: string; input_transforms?: Record<string, InputTransform> }
  | { type: "flow"; path: string; input_transforms?: Record<string, InputTransform> }
  | { type: "forloopflow"; iterator: InputTransform; modules: FlowModule[]; skip_failures?: boolean; parallel?: boolean; parallelism?: number }
  | { type: "branchone"; branches: { summary?: string; expr: string; modules: FlowModule[] }[]; default: FlowModule[] }
  | { type: "branchall"; branches: { summary?: string; skip_failure?: boolean; modules: FlowModule[] }[]; parallel?: boolean }
  | { type: "identity" };

export interface OpenFlowValue {
  modules: FlowModule[];
  failure_module?: FlowModule;
}

/** What the runner asks of the job engine: run one step as a job of the flow. */
export interface StepRunner {
  runScript(step: { path: string; stepId: string; args: Record<string, unknown>; timeoutSeconds?: number }): Promise<StepOutcome>;
  runRawScript(step: { content: string; language: string; lock: string | undefined; stepId: string; args: Record<string, unknown>; timeoutSeconds?: number }): Promise<StepOutcome>;
  runFlow(step: { path: string; stepId: string; args: Record<string, unknown> }): Promise<StepOutcome>;
  log(line: string): void;
}

export interface StepOutcome {
  success: boolean;
  result: unknown;
}

/** Raised inside the runner to end the flow early (stop_after_if) with a result. */
class FlowStopped {
  constructor(
    readonly result: unknown,
    readonly skipped: boolean,
  ) {}
}

/** A failed step: carries the step's error object as Windmill shows it. */
export class StepFailed extends Error {
  constructor(
    readonly stepId: string,
    readonly error: unknown,
  ) {
    super(`step ${stepId} failed: ${errorMessage(error)}`);
  }
}

function errorMessage(error: unknown): string {
  const e = (error as { error?: { message?: string } })?.error;
  return e?.message ?? JSON.stringify(error);
}

interface Scope {
  flow_input: Record<string, unknown>;
  results: Record<string, unknown>;
  previous_result: unknown;
}

export function evaluate(expr: string, scope: Scope & { result?: unknown }): unknown {
  try {
    const fn = new Function("flow_input", "results", "previous_result", "result", `"use strict"; return (${expr});`);
    return fn(scope.flow_input, scope.results, scope.previous_result, scope.result);
  } catch (err) {
    throw new HttpError(400, `Flow expression ${JSON.stringify(expr)} failed: ${(err as Error).message}`);
  }
}

function transformInputs(transforms: Record<string, InputTransform> | undefined, scope: Scope): Record<string, unknown> {
  const args: Record<string, unknown> = {};
  for (const [name, t] of Object.entries(transforms ?? {})) {
    args[name] = t.type === "javascript" ? evaluate(t.expr, scope) : t.value;
  }
  return args;
}

export async function runFlowValue(flow: OpenFlowValue, input: Record<string, unknown>, runner: StepRunner): Promise<StepOutcome> {
  const scope: Scope = { flow_input: input, results: {}, previous_result: input };
  try {
    return { success: true, result: await runModules(flow.modules, scope, runner) };
  } catch (err) {
    if (err instanceof FlowStopped) return { success: true, result: err.result };
    const failure = err instanceof StepFailed ? err : new StepFailed("flow", { error: { name: "FlowError", message: (err as Error).message } });
    if (!flow.failure_module) return { success: false, result: failure.error };
    runner.log(`Step ${failure.stepId} failed; running the failure module`);
    const errorValue = { ...((failure.error as { error?: object })?.error ?? {}), step_id: failure.stepId };
    const handled = await runModule(flow.failure_module, { ...scope, previous_result: { error: errorValue } }, runner).catch((e: unknown) =>
      e instanceof StepFailed ? e.error : { error: { message: String(e) } });
    return { success: false, result: handled };
  }
}

async function runModules(modules: FlowModule[], scope: Scope, runner: StepRunner): Promise<unknown> {
  for (const module of modules) {
    if (module.skip_if && evaluate(module.skip_if.expr, scope)) {
      runner.log(`Step ${module.id} skipped (skip_if)`);
      scope.results[module.id] = null;
      continue;
    }
    const result = await withRetry(module, runner, () => runModule(module, scope, runner));
    scope.results[module.id] = result;
    scope.previous_result = result;
    if (module.stop_after_if && evaluate(module.stop_after_if.expr, { ...scope, result })) {
      runner.log(`Flow stopped after ${module.id} (stop_after_if)`);
      throw new FlowStopped(result, module.stop_after_if.skip_if_stopped ?? false);
    }
  }
  return scope.previous_result;
}

async function withRetry(module: FlowModule, runner: StepRunner, run: () => Promise<unknown>): Promise<unknown> {
  const constant = module.retry?.constant;
  const exponential = module.retry?.exponential;
  const attempts = 1 + (constant?.attempts ?? exponential?.attempts ?? 0);
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (err) {
      if (attempt >= attempts || !(err instanceof StepFailed)) throw err;
      const seconds = constant ? constant.seconds ?? 0 : (exponential?.seconds ?? 1) * (exponential?.multiplier ?? 1) ** attempt;
      runner.log(`Step ${module.id} failed (attempt ${attempt} of ${attempts}); retrying in ${seconds} s`);
      await new Promise((r) => setTimeout(r, seconds * 1000));
    }
  }
}

async function runModule(module: FlowModule, scope: Scope, runner: StepRunner): Promise<unknown> {
  const v = module.value;
  const step = async (outcome: Promise<StepOutcome>) => {
    const { success, result } = await outcome;
    if (!success) throw new StepFailed(module.id, result);
    return result;
  };
  switch (v.type) {
    case "identity":
      return scope.previous_result;
    case "script":
      return step(runner.runScript({ path: v.path, stepId: module.id, args: transformInputs(v.input_transforms, scope), timeoutSeconds: module.timeout }));
    case "rawscript":
      return step(runner.runRawScript({ content: v.content, language: v.language, lock: v.lock ?? undefined, stepId: module.id, args: transformInputs(v.input_transforms, scope), timeoutSeconds: module.timeout }));
    case "flow":
      return step(runner.runFlow({ path: v.path, stepId: module.id, args: transformInputs(v.input_transforms, scope) }));
    case "forloopflow":
      return runForLoop(module.id, v, scope, runner);
    case "branchone": {
      const branch = v.branches.find((b) => evaluate(b.expr, scope));
      return runModules(branch?.modules ?? v.default, childScope(scope), runner);
    }
    case "branchall": {
      const runBranch = (b: (typeof v.branches)[number]) =>
        runModules(b.modules, childScope(scope), runner).catch((err: unknown) => {
          if (b.skip_failure && err instanceof StepFailed) return err.error;
          throw err;
        });
      if (v.parallel) return Promise.all(v.branches.map(runBranch));
      const results: unknown[] = [];
      for (const b of v.branches) results.push(await runBranch(b));
      return results;
    }
    default:
      throw new HttpError(400, `Module ${module.id}: type ${(v as { type: string }).type} is not supported by the stand-in`);
  }
}

function childScope(scope: Scope): Scope {
  return { flow_input: scope.flow_input, results: { ...scope.results }, previous_result: scope.previous_result };
}

async function runForLoop(id: string, v: Extract<ModuleValue, { type: "forloopflow" }>, scope: Scope, runner: StepRunner): Promise<unknown[]> {
  const items = v.iterator.type === "javascript" ? evaluate(v.iterator.expr, scope) : v.iterator.value;
  if (!Array.isArray(items)) throw new StepFailed(id, { error: { name: "IteratorError", message: `The iterator of ${id} is not a list: ${JSON.stringify(items)?.slice(0, 200)}` } });
  const results: unknown[] = new Array(items.length);
  const runIteration = async (index: number) => {
    const iterScope: Scope = {
      flow_input: { ...scope.flow_input, iter: { value: items[index], index } },
      results: { ...scope.results },
      previous_result: items[index],
    };
    try {
      results[index] = await runModules(v.modules, iterScope, runner);
    } catch (err) {
      if (v.skip_failures && err instanceof StepFailed) results[index] = err.error;
      else throw err;
    }
  };
  const width = v.parallel ? Math.max(1, v.parallelism ?? items.length) : 1;
  let next = 0;
  const lanes = Array.from({ length: Math.min(width, items.length) }, async () => {
    while (next < items.length) await runIteration(next++);
  });
  await Promise.all(lanes);
  runner.log(`Loop ${id}: ${items.length} iterations${v.parallel ? ` (parallelism ${width})` : ""}`);
  return results;
}
