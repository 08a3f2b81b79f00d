// The OpenFlow runner of the Windmill stand-in: walks a flow's modules the way
// Windmill's executor does and runs every script step as its own job (own process, env,
// token and WM_FLOW_PATH), so each step's OIDC `sub` carries the flow path. For-loop
// iterations and branchall branches are flow jobs of their own, as in windmill-worker/src/worker_flow.rs.
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
  /** Read only to tell whether a loop is "simple" (worker_flow.rs is_simple_modules). */
  sleep?: unknown;
  suspend?: unknown;
  cache_ttl?: number;
  stop_after_all_iters_if?: unknown;
  mock?: { enabled?: boolean };
}

export type ModuleValue =
  | { type: "script"; path: string; input_transforms?: Record<string, InputTransform> }
  | { type: "rawscript"; content: string; language: string; lock?: string; input_transforms?: Record<string, InputTransform> }
  | { type: "flow"; path: string; input_transforms?: Record<string, InputTransform> }
  | { type: "forloopflow"; iterator: InputTransform; modules: FlowModule[]; skip_failures?: boolean; parallel?: boolean; parallelism?: number | InputTransform }
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
  /** `pathInFlow`: the job's path under the flow's (default: the step id). `lock`: the inline script's own lock, if it has one. */
  runRawScript(step: { content: string; language: string; lock: string | undefined; stepId: string; pathInFlow?: string; args: Record<string, unknown>; timeoutSeconds?: number }): Promise<StepOutcome>;
  runFlow(step: { path: string; stepId: string; args: Record<string, unknown> }): Promise<StepOutcome>;
  /** One for-loop iteration or branchall branch as a flow job of its own at `<flow path>/<kind>-<index>`. */
  runIteration(iteration: LoopIteration): Promise<StepOutcome>;
  log(line: string): void;
}

export interface LoopIteration {
  /** The loop module's id: the iteration job's flow_step_id. */
  stepId: string;
  /** `forloop` for a parallel loop's iterations, `loop` for a sequential one's, `branchall` for a branch. */
  kind: "forloop" | "loop" | "branchall";
  index: number;
  /** The loop body, with a copy of the flow's failure module. */
  flow: OpenFlowValue;
  /** The iteration job's args: the flow's input plus `iter`. */
  input: Record<string, unknown>;
  /** What the body's expressions see of the enclosing flow. */
  outer: OuterScope;
}

/** What a flow job started by another flow (a loop iteration) sees of it. */
export interface OuterScope {
  results: Record<string, unknown>;
  previous_result: unknown;
}

export interface StepOutcome {
  success: boolean;
  result: unknown;
  /** A flow job that failed after its failure module ran (worker_flow.rs has_triggered_error_handler). */
  failureModuleRan?: boolean;
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
    /** The failure came from a loop iteration whose copy of the failure module already ran. */
    readonly failureModuleRan = false,
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
  /** The flow job's failure module: loop iterations get a copy. */
  failure_module?: FlowModule;
}

export function evaluate(expr: string, scope: Scope & { result?: unknown }): unknown {
  try {
    const fn = new Function("flow_input", "results", "previous_result", "result", `"use strict"; return (${expr});`);
    return fn(scope.flow_input, scope.results, scope.previous_result, scope.result);
  } catch (err) {
    throw new HttpError(400, `Flow expression ${JSON.stringify(expr)} failed: ${(err as Error).message}`);
  }
}

/**
 * windmill-worker/src/js_eval.rs eval_timeout: an expression is evaluated as `x ?? null`,
 * so `flow_input.x` for an input the caller did not send is null, not absent; and
 * worker_flow.rs transform_input inserts every transform's value, so the step gets `x: null`.
 */
function transformInputs(transforms: Record<string, InputTransform> | undefined, scope: Scope): Record<string, unknown> {
  const args: Record<string, unknown> = {};
  for (const [name, t] of Object.entries(transforms ?? {})) {
    args[name] = t.type === "javascript" ? (evaluate(t.expr, scope) ?? null) : t.value;
  }
  return args;
}

/** `outer`: set for a flow job another flow started (a loop iteration), whose expressions see its results. */
export async function runFlowValue(flow: OpenFlowValue, input: Record<string, unknown>, runner: StepRunner, outer?: OuterScope): Promise<StepOutcome> {
  const scope: Scope = {
    flow_input: input,
    results: { ...outer?.results },
    previous_result: outer ? outer.previous_result : input,
    failure_module: flow.failure_module,
  };
  try {
    return { success: true, result: await runModules(flow.modules, scope, runner) };
  } catch (err) {
    if (err instanceof FlowStopped) return { success: true, result: err.result };
    const failure = err instanceof StepFailed ? err : new StepFailed("flow", { error: { name: "FlowError", message: (err as Error).message } });
    // worker_flow.rs update_flow_status_after_job_completion_internal: once a failure module ran in a
    // failed iteration (has_triggered_error_handler), no enclosing flow job runs its own; the flag goes up.
    if (failure.failureModuleRan) return { success: false, result: failure.error, failureModuleRan: true };
    if (!flow.failure_module) return { success: false, result: failure.error };
    runner.log(`Step ${failure.stepId} failed; running the failure module`);
    const errorValue = { ...((failure.error as { error?: object })?.error ?? {}), step_id: failure.stepId };
    const handled = await runModule(flow.failure_module, 0, { ...scope, previous_result: { error: errorValue } }, runner).catch((e: unknown) =>
      e instanceof StepFailed ? e.error : { error: { message: String(e) } });
    return { success: false, result: handled, failureModuleRan: true };
  }
}

async function runModules(modules: FlowModule[], scope: Scope, runner: StepRunner): Promise<unknown> {
  for (const [step, module] of modules.entries()) {
    if (module.skip_if && evaluate(module.skip_if.expr, scope)) {
      runner.log(`Step ${module.id} skipped (skip_if)`);
      scope.results[module.id] = null;
      continue;
    }
    const result = await withRetry(module, runner, () => runModule(module, step, scope, runner));
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

/** `step`: the module's index in its flow (Windmill's `status.step`), which names loop iterations' failure modules. */
async function runModule(module: FlowModule, step: number, scope: Scope, runner: StepRunner): Promise<unknown> {
  const v = module.value;
  switch (v.type) {
    case "identity":
      return scope.previous_result;
    case "script":
    case "rawscript":
    case "flow":
      return stepResult(module.id, runStep(module, module.id, transformInputs(inputTransformsOf(module), scope), undefined, runner));
    case "forloopflow":
      return runForLoop(module.id, step, v, scope, runner);
    case "branchone": {
      const branch = v.branches.find((b) => evaluate(b.expr, scope));
      return runModules(branch?.modules ?? v.default, childScope(scope), runner);
    }
    case "branchall":
      return runBranchAll(module.id, step, v, scope, runner);
    default:
      throw new HttpError(400, `Module ${module.id}: type ${(v as { type: string }).type} is not supported by the stand-in`);
  }
}

async function stepResult(stepId: string, outcome: Promise<StepOutcome>): Promise<unknown> {
  const { success, result } = await outcome;
  if (!success) throw new StepFailed(stepId, result);
  return result;
}

/** A script, raw script or subflow module run as a job with `args`; `pathInFlow` names a raw script's job. */
function runStep(module: FlowModule, stepId: string, args: Record<string, unknown>, pathInFlow: string | undefined, runner: StepRunner): Promise<StepOutcome> {
  const v = module.value;
  switch (v.type) {
    case "script":
      return runner.runScript({ path: v.path, stepId, args, timeoutSeconds: module.timeout });
    case "rawscript":
      return runner.runRawScript({ content: v.content, language: v.language, lock: v.lock ?? undefined, stepId, pathInFlow, args, timeoutSeconds: module.timeout });
    case "flow":
      return runner.runFlow({ path: v.path, stepId, args });
    default:
      throw new HttpError(400, `Module ${module.id}: type ${v.type} is not a step`);
  }
}

function inputTransformsOf(module: FlowModule): Record<string, InputTransform> | undefined {
  const v = module.value;
  return v.type === "script" || v.type === "rawscript" || v.type === "flow" ? v.input_transforms : undefined;
}

function childScope(scope: Scope): Scope {
  return { flow_input: scope.flow_input, results: { ...scope.results }, previous_result: scope.previous_result, failure_module: scope.failure_module };
}

/**
 * worker_flow.rs is_simple_modules: a sequential loop whose body is one script step with
 * none of these options, in a flow without a failure module, pushes each iteration as that
 * script's job instead of a flow job.
 */
function isSimpleBody(modules: FlowModule[], failureModule: FlowModule | undefined): boolean {
  const [m] = modules;
  return modules.length === 1 && (m.value.type === "script" || m.value.type === "rawscript") &&
    m.sleep === undefined && m.suspend === undefined && m.cache_ttl === undefined && m.retry === undefined &&
    m.stop_after_if === undefined && m.stop_after_all_iters_if === undefined && m.skip_if === undefined &&
    !m.mock?.enabled && failureModule === undefined;
}

/** worker_flow.rs insert_iter_arg: an `iter` already there (a loop in a loop) moves to `iter_parent`, and so on up. */
function insertIterArg(args: Record<string, unknown>, key: string, value: unknown): Record<string, unknown> {
  const withParent = key in args ? insertIterArg(args, `${key}_parent`, args[key]) : { ...args };
  withParent[key] = value;
  return withParent;
}

/**
 * worker_flow.rs (push of for-loop iterations, evaluate_input_transform::<u16>): `parallelism`
 * is an InputTransform (a bare number is a static one), evaluated against the flow.
 */
function evaluateParallelism(id: string, parallelism: number | InputTransform, scope: Scope): number {
  const value = typeof parallelism === "number" ? parallelism : parallelism.type === "static" ? parallelism.value : evaluate(parallelism.expr, scope);
  if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > 65_535) {
    throw new StepFailed(id, { error: { name: "ExecutionErr", message: `The parallelism of ${id} must evaluate to an integer from 0 to 65535, found: ${JSON.stringify(value)}` } });
  }
  return value as number;
}

async function runForLoop(id: string, step: number, v: Extract<ModuleValue, { type: "forloopflow" }>, scope: Scope, runner: StepRunner): Promise<unknown[]> {
  const items = v.iterator.type === "javascript" ? evaluate(v.iterator.expr, scope) : v.iterator.value;
  if (!Array.isArray(items)) throw new StepFailed(id, { error: { name: "ExecutionErr", message: `Expected an array value in the iterator expression, found: ${JSON.stringify(items)?.slice(0, 200)}` } });
  // flows.rs: a for-loop's `parallel` is `unwrap_or(false)`.
  const parallel = v.parallel ?? false;
  const simple = !parallel && isSimpleBody(v.modules, scope.failure_module);
  // worker_flow.rs update_flow_status_after_job_completion_internal reads `skip_failures` with
  // `.unwrap_or(false)`: a loop that omits it stops at the first failed iteration (the typed default, true, is not what runs).
  const skipFailures = v.skip_failures === true;
  const results: unknown[] = new Array(items.length);
  const runIteration = async (index: number) => {
    const iter = { index, value: items[index] };
    const input = insertIterArg(scope.flow_input, "iter", iter);
    const outer: OuterScope = { results: { ...scope.results }, previous_result: items[index] };
    const outcome = simple
      // worker_flow.rs next_loop_iteration / payload_from_simple_module: the step's job, a child of this flow, its
      // input transforms evaluated per iteration; a raw script without a path runs at `<flow>/loop-<i>`.
      ? await runStep(v.modules[0], id, transformInputs(inputTransformsOf(v.modules[0]), { ...outer, flow_input: input }), `loop-${index}`, runner)
      // worker_flow.rs payload_from_modules: a flow job of the body, with the flow's failure module copied and its id
      // suffixed `-<step>-<i>` (FlowModule::id_append).
      : await runner.runIteration({
        stepId: id, kind: parallel ? "forloop" : "loop", index, input, outer,
        flow: { modules: v.modules, failure_module: scope.failure_module && { ...scope.failure_module, id: `${scope.failure_module.id}-${step}-${index}` } },
      });
    if (!outcome.success && !skipFailures) throw new StepFailed(id, outcome.result, outcome.failureModuleRan);
    results[index] = outcome.result;
  };
  const width = parallel ? Math.max(1, v.parallelism === undefined ? items.length : evaluateParallelism(id, v.parallelism, scope)) : 1;
  let next = 0;
  const lanes = Array.from({ length: Math.min(width, items.length) }, async () => {
    while (next < items.length) await runIteration(next++);
  });
  await Promise.all(lanes);
  runner.log(`Loop ${id}: ${items.length} iterations${parallel ? ` (parallelism ${width})` : ""}`);
  return results;
}

/**
 * worker_flow.rs (BranchAll in compute_next_flow_transform): each branch is a raw-flow job at
 * `<flow path>/branchall-<i>`, child of this flow, with the flow's input and the flow's failure
 * module (in parallel with its id appended `-<step>/<i>`, in turn as it is).
 */
async function runBranchAll(id: string, step: number, v: Extract<ModuleValue, { type: "branchall" }>, scope: Scope, runner: StepRunner): Promise<unknown[]> {
  // windmill-common/src/flows.rs (Deserialize for FlowModuleValue): branchall `parallel` is `unwrap_or(true)`.
  const parallel = v.parallel ?? true;
  const outer: OuterScope = { results: { ...scope.results }, previous_result: scope.previous_result };
  const runBranch = async (b: (typeof v.branches)[number], index: number) => {
    const failureModule = scope.failure_module && (parallel ? { ...scope.failure_module, id: `${scope.failure_module.id}-${step}/${index}` } : scope.failure_module);
    const outcome = await runner.runIteration({ stepId: id, kind: "branchall", index, input: scope.flow_input, outer, flow: { modules: b.modules, failure_module: failureModule } });
    if (outcome.success) return outcome.result;
    // worker_flow.rs compute_skip_branchall_failure: `b.skip_failure.unwrap_or(false)`, so an absent flag fails the branchall.
    if (b.skip_failure === true) return outcome.result;
    throw new StepFailed(id, outcome.result, outcome.failureModuleRan);
  };
  if (parallel) return Promise.all(v.branches.map(runBranch));
  const results: unknown[] = [];
  for (const [index, b] of v.branches.entries()) results.push(await runBranch(b, index));
  return results;
}
