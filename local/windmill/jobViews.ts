// How the Windmill stand-in shows a job through the API: `jobs_u/get` (queued or completed),
// `jobs_u/completed/get`, `jobs_u/getupdate` and a flow job's `flow_status`, the fields the
// `wmill` CLI and the UI read (backend/windmill-api-jobs/src/jobs.rs get_job, get_completed_job,
// get_job_update; windmill-common/src/flow_status.rs FlowStatus / FlowStatusModule).
import type { OpenFlowValue } from "./flows.ts";
import type { JobRecord } from "./state.ts";

/** What a flow job's status needs: its flow (for the module list) and its child jobs. */
export interface FlowContext {
  flow: OpenFlowValue | undefined;
  children: JobRecord[];
}

/**
 * FlowStatusModule per top-level module: WaitingForPriorSteps until a step job exists, then
 * InProgress / Success / Failure with `job`; a for-loop lists its iteration jobs in `flow_jobs`.
 * The stand-in derives it from the step jobs (the last one of a retried step counts).
 */
export function flowStatus(job: JobRecord, ctx: FlowContext): Record<string, unknown> {
  const moduleStatus = (id: string) => {
    const jobs = ctx.children.filter((c) => c.stepId === id);
    const last = jobs.at(-1);
    if (!last) return { type: "WaitingForPriorSteps", id };
    const type = last.status === "running" ? "InProgress" : last.success ? "Success" : "Failure";
    const iterations = jobs.filter((c) => /\/(forloop|loop)-\d+$/.test(c.path)).map((c) => c.id);
    return { type, id, job: last.id, ...(iterations.length ? { flow_jobs: iterations } : {}) };
  };
  const modules = (ctx.flow?.modules ?? []).map((m) => moduleStatus(m.id));
  const step = Math.max(0, modules.findIndex((m) => m.type === "WaitingForPriorSteps" || m.type === "InProgress"));
  return { step: job.status === "running" ? step : modules.length, modules, failure_module: moduleStatus("failure") };
}

function jobKind(job: JobRecord): string {
  return job.kind === "rawscript" ? "flowscript" : job.kind;
}

/** The fields queued and completed jobs share (v2_job columns). */
function commonFields(job: JobRecord, workspace: string, ctx: FlowContext | undefined): Record<string, unknown> {
  return {
    workspace_id: workspace,
    id: job.id,
    parent_job: job.parentJobId,
    root_job: job.rootJobId,
    created_by: job.createdBy,
    created_at: job.scheduledFor,
    started_at: job.startedAt,
    scheduled_for: job.scheduledFor,
    script_path: job.path,
    args: job.args,
    logs: job.logs,
    canceled: job.canceled !== undefined,
    canceled_by: job.canceled?.by ?? null,
    canceled_reason: job.canceled?.reason ?? null,
    job_kind: jobKind(job),
    schedule_path: job.schedulePath,
    permissioned_as: `u/${job.username}`,
    email: job.email,
    flow_step_id: job.stepId,
    is_flow_step: job.parentJobId !== null,
    flow_status: job.kind === "flow" && ctx ? flowStatus(job, ctx) : null,
    raw_flow: job.kind === "flow" ? (ctx?.flow ?? null) : null,
    visible_to_owner: true,
    mem_peak: null,
    progress: job.progress,
  };
}

/** `jobs_u/completed/get`: the CompletedJob, type included. */
export function completedJobView(job: JobRecord, workspace: string, ctx: FlowContext | undefined): Record<string, unknown> {
  return {
    type: "CompletedJob", ...commonFields(job, workspace, ctx),
    duration_ms: job.durationMs, success: job.success, result: job.result, deleted: false, is_skipped: false,
  };
}

/** `jobs_u/get`: a QueuedJob (running or waiting) or the CompletedJob. */
export function jobView(job: JobRecord, workspace: string, ctx: FlowContext | undefined): Record<string, unknown> {
  if (job.status !== "running") return completedJobView(job, workspace, ctx);
  return { type: "QueuedJob", ...commonFields(job, workspace, ctx), running: true };
}

/**
 * `jobs_u/getupdate` (jobs.rs get_job_update): a queued job answers `running: true` only when
 * the caller did not know it ran yet, `completed` absent; a completed one `running: false,
 * completed: true`; `new_logs` = the logs from `log_offset` on.
 */
export function jobUpdateView(job: JobRecord, knownRunning: boolean, logOffset: number): Record<string, unknown> {
  const done = job.status !== "running";
  return {
    running: done ? false : knownRunning ? null : true,
    completed: done ? true : null,
    new_logs: job.logs.slice(Math.max(0, logOffset)),
    log_offset: job.logs.length,
    mem_peak: null,
    progress: job.progress,
  };
}
