// The job API of the Windmill stand-in: webhooks that start scripts and flows (waiting
// for the result or not), the `jobs_u` look-ups that take the job id as capability, job
// lists and progress.
import { HttpError, readJson, sendJson, sendText } from "../shared/http.ts";
import { requireScope } from "./auth.ts";
import { jobView, type JobEngine } from "./jobs.ts";
import { dependencyJobResult } from "./locks.ts";
import type { Caller, JobRecord, Route, RouteContext, WorkspaceState } from "./state.ts";

export function jobRoutes(engine: JobEngine, workspaces: ReadonlyMap<string, WorkspaceState>): Route[] {
  /** `jobs_u` endpoints take no token in Windmill: the job id (a UUID) is the capability. */
  function visibleJob(c: RouteContext, id: string): JobRecord {
    const job = engine.get(id);
    if (!job || !workspaces.has(c.match[1])) throw new HttpError(404, `Job ${id} not found`);
    return job;
  }

  function startJob(c: RouteContext, kind: "script" | "flow", path: string, args: Record<string, unknown>): JobRecord {
    // The job runs as the caller: a webhook token's owner, or the user whose token calls jobs/run.
    const info = c.token();
    requireScope(info, `jobs:run:${kind === "flow" ? "flows" : "scripts"}:${path}`);
    const caller: Caller = { workspace: info.workspace, email: info.email, username: info.username };
    return engine.start(caller, c.ws(), kind, path, args ?? {});
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
    ["POST", /^\/api\/w\/([^/]+)\/jobs\/run_wait_result\/(p|f)\/(.+)$/, async (c, res) => {
      const job = startJob(c, c.match[2] === "f" ? "flow" : "script", c.match[3], await readJson<Record<string, unknown>>(c.req));
      const done = await engine.wait(job.id);
      sendJson(res, done.success ? 200 : 500, done.result);
    }],
    ["POST", /^\/api\/w\/([^/]+)\/jobs\/run\/(p|f)\/(.+)$/, async (c, res) => {
      const job = startJob(c, c.match[2] === "f" ? "flow" : "script", c.match[3], await readJson<Record<string, unknown>>(c.req));
      sendText(res, 201, job.id);
    }],
    ["GET", /^\/api\/w\/([^/]+)\/jobs_u\/get\/([^/]+)$/, (c, res) => sendJson(res, 200, jobView(visibleJob(c, c.match[2])))],
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
      sendJson(res, 200, engine.records.filter((j) => !c.url.searchParams.get("parent_job") || j.parentJobId === c.url.searchParams.get("parent_job")).map(jobView));
    }],
  ];
}
