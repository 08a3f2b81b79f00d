// Jobs of the Windmill stand-in: scripts and flows run by path, synchronously or in the
// background, each with a record (status, result, logs, progress) that the API serves
// and the tests' leak audit reads.
import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { HttpError } from "../shared/http.ts";
import { repoVersionPins, type PinVersion } from "./bunLockfile.ts";
import { runFlowValue, type OpenFlowValue, type OuterScope, type StepOutcome, type StepRunner } from "./flows.ts";
import type { Caller, JobRecord, WorkspaceState } from "./state.ts";
import { runPostgresqlJob } from "./pgExecutor.ts";
import { runScriptJob } from "./worker.ts";

/** What the engine needs from the API server. */
export interface JobHost {
  baseUrl(): string;
  jobEnv(): Record<string, string>;
  /** The repo the stand-in serves when nothing was pushed yet. */
  workspaceDir: string;
  /** How many script jobs run at once; the others queue, as on a worker pool. */
  workers: number;
  /** `rootFlowPath`: the flow path without loop-iteration suffixes (what an OIDC `flow_path` claim may carry instead). */
  issueJobToken(caller: Caller, job: { id: string; path: string; flowPath: string | null; rootFlowPath: string | null }): string;
  revokeToken(token: string): void;
  /** A script job's `$res:` / `$var:` / `$WM_*` args resolved by its worker before main runs, as `caller` may read them. */
  resolveArgs(state: WorkspaceState, args: Record<string, unknown>, caller: Caller, reservedVariables: Record<string, string>): Record<string, unknown>;
}

/** What a script job runs: its code, its language and its lock (none for an inline step that was never locked). */
interface RawScript {
  content: string;
  language: string;
  lock: string | undefined;
}

interface Lineage {
  parentJobId: string | null;
  rootJobId: string | null;
  flowPath: string | null;
  stepId: string | null;
  schedulePath: string | null;
  /** v2_job.created_by when it is not the caller's username (a schedule's run, and its steps). */
  createdBy: string | null;
  /** The cron tick a schedule's run was due at (ISO); null = now. */
  scheduledFor: string | null;
}

const TOP_LEVEL: Lineage = { parentJobId: null, rootJobId: null, flowPath: null, stepId: null, schedulePath: null, createdBy: null, scheduledFor: null };

export class JobEngine {
  readonly records: JobRecord[] = [];
  private readonly byId = new Map<string, JobRecord>();
  private readonly running = new Map<string, Promise<JobRecord>>();
  /** Kills a running script job's process when the job is canceled. */
  private readonly aborts = new Map<string, AbortController>();
  /** For-loop iteration jobs (flow jobs a flow started for one iteration). */
  private readonly iterationJobIds = new Set<string>();
  /** Versions for the npm imports of a script that has no lock (see worker.ts). */
  private readonly pin: PinVersion;

  /** Free worker slots, and the jobs waiting for one (first come, first served). */
  private freeWorkers: number;
  private readonly waitingForWorker: (() => void)[] = [];

  constructor(private readonly host: JobHost) {
    this.freeWorkers = host.workers;
    this.pin = repoVersionPins(host.workspaceDir);
  }

  /** A script job holds a worker while its process runs, as on a real instance's worker pool. */
  private async withWorker<T>(run: () => Promise<T>): Promise<T> {
    if (this.freeWorkers > 0) this.freeWorkers--;
    else await new Promise<void>((resolve) => this.waitingForWorker.push(resolve));
    try {
      return await run();
    } finally {
      const next = this.waitingForWorker.shift();
      if (next) next();
      else this.freeWorkers++;
    }
  }

  get(id: string): JobRecord | undefined {
    return this.byId.get(id);
  }

  /** Resolves once the job has finished. */
  wait(id: string): Promise<JobRecord> {
    const job = this.running.get(id);
    const done = this.byId.get(id);
    if (job) return job;
    if (done) return Promise.resolve(done);
    return Promise.reject(new HttpError(404, `Job ${id} not found`));
  }

  start(caller: Caller, state: WorkspaceState, kind: "script" | "flow", path: string, args: Record<string, unknown>, lineage: Partial<Lineage> = {}): JobRecord {
    // windmill-common get_latest_hash_for_path / get_latest_flow_version_id_for_path: not_found_if_none.
    if (kind === "script" && !this.scriptExists(state, path)) throw new HttpError(404, `Not found: script not found at name ${path}`);
    if (kind === "flow" && !state.sync.flows.has(path)) throw new HttpError(404, `Not found: flow not found at name ${path}`);
    const record = this.newRecord(caller, kind, path, args, { ...TOP_LEVEL, ...lineage });
    const run = kind === "flow" ? this.executeFlow(caller, state, record) : this.executeScript(caller, state, record, undefined);
    this.track(record, run);
    return record;
  }

  /**
   * windmill-queue jobs.rs cancel_job: the job completes at once as canceled, with the result
   * `{error: {message: "Job canceled: <reason> by <user>", name: "Canceled", reason, canceler}}`
   * (the shape execution.rs cancel_jobs writes for "cancel all"; cancel_job's own text was not
   * read). Its running process is killed, its child jobs canceled; a late result is dropped.
   */
  cancel(id: string, canceler: string, reason: string): void {
    const record = this.byId.get(id);
    if (!record || record.status !== "running" || record.canceled) return;
    record.canceled = { by: canceler, reason };
    record.success = false;
    record.result = { error: { message: `Job canceled: ${reason} by ${canceler}`, name: "Canceled", reason, canceler } };
    record.status = "failure";
    record.durationMs = Date.now() - Date.parse(record.startedAt);
    this.aborts.get(id)?.abort();
    for (const child of this.records.filter((r) => r.parentJobId === id)) this.cancel(child.id, canceler, reason);
  }

  private track(record: JobRecord, run: Promise<void>): void {
    const started = Date.parse(record.startedAt);
    const finished = run
      .catch((err: unknown) => {
        settle(record, { success: false, result: { error: { name: "ExecutionErr", message: err instanceof Error ? err.message : String(err) } } });
      })
      .then(() => {
        if (record.canceled) return record;
        record.status = record.success ? "success" : "failure";
        record.durationMs = Date.now() - started;
        this.running.delete(record.id);
        return record;
      });
    this.running.set(record.id, finished);
  }

  private newRecord(caller: Caller, kind: JobRecord["kind"], path: string, args: Record<string, unknown>, lineage: Lineage): JobRecord {
    const id = randomUUID();
    const record: JobRecord = {
      id, kind, path, args,
      parentJobId: lineage.parentJobId,
      rootJobId: lineage.rootJobId ?? id,
      flowPath: lineage.flowPath,
      stepId: lineage.stepId,
      schedulePath: lineage.schedulePath,
      status: "running", success: false, result: null, logs: "", progress: null,
      startedAt: new Date().toISOString(), durationMs: 0, username: caller.username, email: caller.email,
      createdBy: lineage.createdBy ?? caller.username, scheduledFor: lineage.scheduledFor ?? new Date().toISOString(),
    };
    this.records.push(record);
    this.byId.set(id, record);
    return record;
  }

  private scriptExists(state: WorkspaceState, path: string): boolean {
    return state.sync.scripts.size > 0 ? state.sync.scripts.has(path) : true;
  }

  private executeScript(caller: Caller, state: WorkspaceState, record: JobRecord, raw: RawScript | undefined, timeoutSeconds?: number): Promise<void> {
    return this.withWorker(() => this.runScriptOnWorker(caller, state, record, raw, timeoutSeconds));
  }

  private async runScriptOnWorker(caller: Caller, state: WorkspaceState, record: JobRecord, raw: RawScript | undefined, timeoutSeconds?: number): Promise<void> {
    const script = raw ?? (await this.deployedScript(state, record.path));
    if (!script) {
      Object.assign(record, { success: false, logs: "", result: { error: { name: "NotFound", message: `Script not found at path ${record.path}` } } });
      return;
    }
    if (record.canceled) return;
    const token = this.host.issueJobToken(caller, { id: record.id, path: record.path, flowPath: record.flowPath, rootFlowPath: this.rootFlowPath(record) });
    const abort = new AbortController();
    this.aborts.set(record.id, abort);
    try {
      const reserved: Record<string, string> = {
        BASE_INTERNAL_URL: this.host.baseUrl(), BASE_URL: this.host.baseUrl(), ...reservedVariables(record, token, caller.workspace, this.host.baseUrl()),
      };
      // windmill-worker/src/common.rs transform_json: each job resolves its own args when it starts.
      const args = this.host.resolveArgs(state, record.args, caller, reserved);
      // windmill-worker/src/worker.rs handle_code_execution: the executor is chosen by the script's language.
      if (script.language === "postgresql") return settle(record, await runPostgresqlJob(script.content, args));
      const outcome = await runScriptJob({
        path: record.path, content: script.content, lock: script.lock,
        readScript: async (path) => (await this.deployedScript(state, path))?.content,
        pin: this.pin, timeoutMs: timeoutSeconds ? timeoutSeconds * 1000 : undefined, env: { ...reserved, ...this.host.jobEnv() }, signal: abort.signal,
      }, args);
      settle(record, outcome);
    } finally {
      this.aborts.delete(record.id);
      this.host.revokeToken(token);
    }
  }

  /** Whether `record` or a flow job above it was canceled. */
  private isCanceled(record: JobRecord): boolean {
    for (let job: JobRecord | undefined = record; job; job = job.parentJobId ? this.byId.get(job.parentJobId) : undefined) {
      if (job.canceled) return true;
    }
    return false;
  }

  /** The path of the nearest flow job above `record` that is not a loop iteration. */
  private rootFlowPath(record: JobRecord): string | null {
    let parent = record.parentJobId ? this.byId.get(record.parentJobId) : undefined;
    while (parent && this.iterationJobIds.has(parent.id)) parent = parent.parentJobId ? this.byId.get(parent.parentJobId) : undefined;
    return parent?.path ?? record.flowPath;
  }

  private executeFlow(caller: Caller, state: WorkspaceState, record: JobRecord): Promise<void> {
    return this.executeFlowValue(caller, state, record, state.sync.flows.get(record.path)?.value as OpenFlowValue, undefined);
  }

  /**
   * A flow job: its input stays as sent (a `"$res:..."` string stays a string, each step
   * resolves what it receives), every step a child job of it.
   */
  private async executeFlowValue(caller: Caller, state: WorkspaceState, record: JobRecord, flow: OpenFlowValue, outer: OuterScope | undefined): Promise<void> {
    // worker_flow.rs pushes each step with the flow job's created_by (a schedule's run stays `schedule-...`), due now.
    const lineage = (stepId: string): Lineage => ({
      parentJobId: record.id, rootJobId: record.rootJobId, flowPath: record.path, stepId, schedulePath: record.schedulePath,
      createdBy: record.createdBy, scheduledFor: null,
    });
    // Steps run as the flow's user: windmill-worker/src/worker_flow.rs pushes them with the
    // flow job's permissioned_as / permissioned_as_email and forwards the root job's perms.
    const child = async (kind: JobRecord["kind"], path: string, stepId: string, args: Record<string, unknown>, run: (r: JobRecord) => Promise<void>): Promise<StepOutcome> => {
      // A canceled flow starts no further step (cancel_job cancels the flow and its queued children).
      if (this.isCanceled(record)) throw new Error(`Flow ${record.path} was canceled`);
      const step = this.newRecord(caller, kind, path, args, lineage(stepId));
      this.track(step, run(step));
      const done = await this.wait(step.id);
      record.logs += `[${stepId}] ${path}: ${done.success ? "success" : "failure"} in ${done.durationMs} ms (job ${done.id})\n`;
      // worker_flow.rs: is_flow() resets has_triggered_error_handler, so only a loop iteration passes it up.
      return { success: done.success, result: done.result, failureModuleRan: this.iterationJobIds.has(done.id) && done.failureModuleRan };
    };
    const runner: StepRunner = {
      runScript: ({ path, stepId, args, timeoutSeconds }) => {
        if (!this.scriptExists(state, path)) throw new HttpError(404, `Flow ${record.path}, step ${stepId}: script ${path} not found`);
        return child("script", path, stepId, args, (r) => this.executeScript(caller, state, r, undefined, timeoutSeconds));
      },
      runRawScript: ({ content, language, lock, stepId, pathInFlow, args, timeoutSeconds }) =>
        child("rawscript", `${record.path}/${pathInFlow ?? stepId}`, stepId, args, (r) => this.executeScript(caller, state, r, { content, language, lock }, timeoutSeconds)),
      runFlow: ({ path, stepId, args }) => {
        if (!state.sync.flows.has(path)) throw new HttpError(404, `Flow ${record.path}, step ${stepId}: flow ${path} not found`);
        return child("flow", path, stepId, args, (r) => this.executeFlow(caller, state, r));
      },
      // worker_flow.rs (push of for-loop iterations): a flow job at `<flow path>/forloop-<i>` (parallel) or
      // `<flow path>/loop-<i>` (sequential), child of this flow; the body's steps are its children.
      runIteration: ({ stepId, kind, index, flow: body, input, outer: enclosing }) =>
        child("flow", `${record.path}/${kind}-${index}`, stepId, input, (r) => {
          this.iterationJobIds.add(r.id);
          return this.executeFlowValue(caller, state, r, body, enclosing);
        }),
      log: (line) => (record.logs += `${line}\n`),
    };
    settle(record, await runFlowValue(flow, record.args, runner, outer));
  }

  /**
   * A script's code and lock as deployed; before anything was pushed, the repo's files
   * (`<path>.ts` or `<path>.pg.sql`, and `<path>.script.lock`), as `wmill sync push` would deploy them.
   */
  private async deployedScript(state: WorkspaceState, path: string): Promise<RawScript | undefined> {
    if (state.sync.scripts.size > 0) {
      const script = state.sync.scripts.get(path);
      return script && { content: script.content, language: script.language, lock: script.lock ?? undefined };
    }
    const file = join(this.host.workspaceDir, path);
    const sql = await readFile(`${file}.pg.sql`, "utf8").catch(() => undefined);
    if (sql !== undefined) return { content: sql, language: "postgresql", lock: undefined };
    const content = await readFile(`${file}.ts`, "utf8").catch(() => undefined);
    return content === undefined ? undefined : { content, language: "bun", lock: await readFile(`${file}.script.lock`, "utf8").catch(() => undefined) };
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.running.values()]);
  }
}

/** Records what a job returned, unless it was canceled meanwhile (its canceled result stays). */
function settle(record: JobRecord, outcome: Partial<JobRecord>): void {
  if (!record.canceled) Object.assign(record, outcome);
}

/** RFC 3339 to the second, UTC (chrono `to_rfc3339_opts(SecondsFormat::Secs, true)`). */
function rfc3339Seconds(iso: string): string {
  return `${iso.slice(0, 19)}Z`;
}

/**
 * The job's reserved variables, as windmill-common/src/variables.rs get_reserved_variables
 * computes them from the job row (called with email = permissioned_as_email, username =
 * created_by): WM_FLOW_PATH is the parent job's runnable_path (a step inside a loop iteration
 * gets `<flow>/forloop-<i>`); WM_STATE_PATH's trigger is created_by for a schedule's run, else
 * `user`; WM_OBJECT_PATH joins paths with `_` and names the schedule (or `manual`).
 */
export function reservedVariables(record: JobRecord, token: string, workspace: string, baseUrl: string): Record<string, string> {
  const trigger = record.schedulePath ? record.createdBy : "user";
  const statePath = record.flowPath ? `${record.flowPath}/${record.stepId ?? "nostep"}_${trigger}` : `${record.path.endsWith("/") ? `${record.path}state` : record.path}/${trigger}`;
  const joined = (path: string) => path.split("/").join("_");
  const schedule = joined(record.schedulePath ?? "manual");
  const stamp = `${Date.now()}_${record.id}`;
  const objectPath = record.flowPath ? `${joined(record.flowPath)}/${schedule}/${record.stepId ?? ""}/${stamp}` : `${joined(record.path)}/${schedule}/${stamp}`;
  return {
    WM_WORKSPACE: workspace, WM_TOKEN: token, WM_EMAIL: record.email, WM_USERNAME: record.createdBy, WM_BASE_URL: baseUrl,
    WM_JOB_ID: record.id, WM_SCHEDULED_FOR: rfc3339Seconds(record.scheduledFor), WM_JOB_PATH: record.path,
    WM_FLOW_JOB_ID: record.parentJobId ?? "", WM_ROOT_FLOW_JOB_ID: record.parentJobId ? record.rootJobId : "",
    WM_FLOW_PATH: record.flowPath ?? "", WM_SCHEDULE_PATH: record.schedulePath ?? "", WM_PERMISSIONED_AS: `u/${record.username}`,
    WM_STATE_PATH: statePath, WM_FLOW_STEP_ID: record.stepId ?? "", WM_OBJECT_PATH: objectPath,
  };
}
