// The job API of the Windmill stand-in: webhooks that start scripts and flows (waiting
// for the result or not), the `jobs_u` look-ups that take the job id as capability (what the
// `wmill` CLI polls), job lists and progress.
import type { IncomingMessage, ServerResponse } from "node:http";
import { HttpError, readJson, sendJson, sendText } from "../shared/http.ts";
import { requireScope } from "./auth.ts";
import type { OpenFlowValue } from "./flows.ts";
import type { JobEngine } from "./jobs.ts";
import { completedJobView, jobUpdateView, jobView, type FlowContext } from "./jobViews.ts";
import { dependencyJobResult } from "./locks.ts";
import { authedAs } from "./permissions.ts";
import { requireReadableRunnable } from "./runnables.ts";
import type { Caller, JobRecord, Route, RouteContext, WorkspaceState } from "./state.ts";

/**
 * backend/windmill-api-jobs/src/execution.rs TIMEOUT_WAIT_RESULT: read once from the env var
 * of that name (whole seconds), default 600.
 */
export function timeoutWaitResultFromEnv(env: Record<string, string | undefined> = process.env): number {
  const parsed = /^\d+$/.test(env.TIMEOUT_WAIT_RESULT ?? "") ? Number(env.TIMEOUT_WAIT_RESULT) : NaN;
  return Number.isSafeInteger(parsed) ? parsed : 600;
}

/**
 * execution.rs result_to_response: 200 for a successful job, 422 for a failed one; an object
 * result carrying windmill_status_code / windmill_content_type / windmill_headers becomes that
 * response (its `result` field the body: raw text when a content type is given, else JSON;
 * no body and no code = 204).
 */
export function sendJobResult(res: ServerResponse, result: unknown, success: boolean): void {
  const composite = result && typeof result === "object" && !Array.isArray(result) ? (result as Record<string, unknown>) : undefined;
  const statusCode = composite?.windmill_status_code;
  const contentType = composite?.windmill_content_type;
  const headers = composite?.windmill_headers;
  if (!composite || (statusCode == null && contentType == null && headers == null)) return sendJson(res, success ? 200 : 422, result);
  if (statusCode != null && !(Number.isInteger(statusCode) && (statusCode as number) >= 100 && (statusCode as number) <= 999)) {
    throw new HttpError(500, "Invalid status code");
  }
  const body = composite.result;
  const status = (statusCode as number | undefined) ?? (!success ? 422 : body !== undefined && body !== null ? 200 : 204);
  for (const [name, value] of Object.entries((headers ?? {}) as Record<string, string>)) res.setHeader(name, String(value));
  if (typeof contentType === "string") {
    res.setHeader("content-type", contentType);
    const text = typeof body === "string" ? body : body === undefined ? "" : JSON.stringify(body);
    res.writeHead(status);
    return void res.end(text);
  }
  if (body === undefined) {
    res.writeHead(status);
    return void res.end();
  }
  sendJson(res, status, body);
}

export interface JobRoutesOptions {
  /** run_wait_result gives up after this many seconds (0 = 2 s, as execution.rs). */
  timeoutWaitResultSeconds: number;
}

export function jobRoutes(engine: JobEngine, workspaces: ReadonlyMap<string, WorkspaceState>, options: JobRoutesOptions): Route[] {
  /** `jobs_u` endpoints take no token in Windmill: the job id (a UUID) is the capability. */
  function visibleJob(c: RouteContext, id: string): JobRecord {
    const job = engine.get(id);
    if (!job || !workspaces.has(c.match[1])) throw new HttpError(404, `Not found: Job not found at name ${id}`);
    return job;
  }

  /** A flow job's flow and step jobs, for its flow_status. */
  function flowContext(c: RouteContext, job: JobRecord): FlowContext | undefined {
    if (job.kind !== "flow") return undefined;
    const flow = workspaces.get(c.match[1])?.sync.flows.get(job.path)?.value as OpenFlowValue | undefined;
    return { flow, children: engine.records.filter((r) => r.parentJobId === job.id) };
  }

  /**
   * execution.rs push_script_job_by_path_into_queue / push_flow_job_by_path_into_queue: the
   * token's scope, then the path resolved as the caller may read it; the job runs as the caller
   * (a webhook token's owner, or the user whose token calls jobs/run).
   */
  function startJob(c: RouteContext, kind: "script" | "flow", path: string, args: Record<string, unknown>): JobRecord {
    const info = c.token();
    requireScope(info, `jobs:run:${kind === "flow" ? "flows" : "scripts"}:${path}`);
    const state = c.ws();
    requireReadableRunnable(state, authedAs(state, info.username, info.email), kind, path);
    const caller: Caller = { workspace: info.workspace, email: info.email, username: info.username };
    return engine.start(caller, state, kind, path, args ?? {});
  }

  /**
   * execution.rs run_wait_result_internal: waits up to TIMEOUT_WAIT_RESULT, then 500 "timeout
   * after <n>s"; its Guard cancels the job ("http connection broke") whenever it did not get a
   * result: on that timeout and when the client's connection drops first.
   */
  async function waitForResult(req: IncomingMessage, res: ServerResponse, job: JobRecord): Promise<JobRecord> {
    const seconds = options.timeoutWaitResultSeconds;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let onClose: (() => void) | undefined;
    const outcome = await Promise.race([
      engine.wait(job.id),
      new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), seconds > 0 ? seconds * 1000 : 2000))),
      new Promise<"closed">((resolve) => {
        onClose = () => !res.writableEnded && resolve("closed");
        res.once("close", onClose);
        req.once("aborted", onClose);
      }),
    ]).finally(() => {
      clearTimeout(timer);
      if (onClose) res.off("close", onClose);
    });
    if (outcome === "timeout" || outcome === "closed") {
      engine.cancel(job.id, job.createdBy, "http connection broke");
      throw new HttpError(500, `timeout after ${seconds}s`);
    }
    return outcome;
  }

  /**
   * OptAuthed: a request with no token (or one the stand-in did not issue) is unauthenticated;
   * a scoped webhook token is a token (its scope refusal, 403, does not apply to this look-up).
   */
  function hasToken(c: RouteContext): boolean {
    try {
      c.token();
      return true;
    } catch (err) {
      if (err instanceof HttpError && (err.status === 401 || err.status === 403)) return err.status === 403;
      throw err;
    }
  }

  return [
    ["POST", /^\/api\/w\/([^/]+)\/job_metrics\/set_progress\/([^/]+)$/, async (c, res) => {
      const body = await readJson<{ percent: number }>(c.req);
      const job = engine.get(c.match[2]);
      if (!job) throw new HttpError(404, `Job ${c.match[2]} not found`);
      // Windmill clamps progress to 0..99 and never lets it go back.
      job.progress = Math.max(job.progress ?? 0, Math.min(99, Math.max(0, Math.floor(body.percent))));
      sendJson(res, 200, "progress set");
    }],
    // execution.rs run_wait_result / result_to_response.
    ["POST", /^\/api\/w\/([^/]+)\/jobs\/run_wait_result\/(p|f)\/(.+)$/, async (c, res) => {
      const job = startJob(c, c.match[2] === "f" ? "flow" : "script", c.match[3], await readJson<Record<string, unknown>>(c.req));
      const done = await waitForResult(c.req, res, job);
      sendJobResult(res, done.result, done.success);
    }],
    ["POST", /^\/api\/w\/([^/]+)\/jobs\/run\/(p|f)\/(.+)$/, async (c, res) => {
      const job = startJob(c, c.match[2] === "f" ? "flow" : "script", c.match[3], await readJson<Record<string, unknown>>(c.req));
      sendText(res, 201, job.id);
    }],
    // jobs.rs get_job: the queued or completed job, a flow's flow_status included (`wmill flow run` walks it).
    ["GET", /^\/api\/w\/([^/]+)\/jobs_u\/get\/([^/]+)$/, (c, res) => {
      const job = visibleJob(c, c.match[2]);
      sendJson(res, 200, jobView(job, c.match[1], flowContext(c, job)));
    }],
    // jobs.rs get_completed_job: 404 until the job has completed (`wmill script run` polls it).
    ["GET", /^\/api\/w\/([^/]+)\/jobs_u\/completed\/get\/([^/]+)$/, (c, res) => {
      const job = visibleJob(c, c.match[2]);
      if (job.status === "running") throw new HttpError(404, `Not found: Completed Job not found at name ${job.id}`);
      sendJson(res, 200, completedJobView(job, c.match[1], flowContext(c, job)));
    }],
    // jobs.rs get_job_update (`wmill` streams a job's logs through it).
    ["GET", /^\/api\/w\/([^/]+)\/jobs_u\/getupdate\/([^/]+)$/, (c, res) => {
      const job = visibleJob(c, c.match[2]);
      const logOffset = Number(c.url.searchParams.get("log_offset") ?? 0);
      sendJson(res, 200, jobUpdateView(job, c.url.searchParams.get("running") === "true", Number.isFinite(logOffset) ? logOffset : 0));
    }],
    ["GET", /^\/api\/w\/([^/]+)\/jobs_u\/get_logs\/([^/]+)$/, (c, res) => sendText(res, 200, visibleJob(c, c.match[2]).logs)],
    ["GET", /^\/api\/w\/([^/]+)\/jobs_u\/completed\/get_result\/([^/]+)$/, (c, res) => {
      const job = visibleJob(c, c.match[2]);
      if (job.status === "running") throw new HttpError(404, `Job ${job.id} is not completed yet`);
      sendJson(res, 200, job.result);
    }],
    // windmill-api/src/jobs.rs `get_completed_job_result_maybe` (OptAuthed): no token needed, but a
    // caller without one only sees jobs created by anonymous; fields in struct order, nulls kept.
    ["GET", /^\/api\/w\/([^/]+)\/jobs_u\/completed\/get_result_maybe\/([^/]+)$/, (c, res) => {
      const lockJob = dependencyJobResult(workspaces.get(c.match[1])?.sync, c.match[2]);
      if (lockJob) return sendJson(res, 200, lockJob);
      const job = visibleJob(c, c.match[2]);
      if (job.status === "running") {
        const started = c.url.searchParams.get("get_started") === "true" ? true : null;
        return sendJson(res, 200, { started, success: null, completed: false, result: null });
      }
      if (!hasToken(c) && job.username !== "anonymous") {
        throw new HttpError(400, "Bad request: As a non logged in user, you can only see jobs ran by anonymous users");
      }
      sendJson(res, 200, { started: true, success: job.success, completed: true, result: job.result });
    }],
    ["GET", /^\/api\/w\/([^/]+)\/jobs\/list$/, (c, res) => {
      c.ws();
      sendJson(res, 200, engine.records.filter((j) => !c.url.searchParams.get("parent_job") || j.parentJobId === c.url.searchParams.get("parent_job")).map((j) => jobView(j, c.match[1], undefined)));
    }],
  ];
}
