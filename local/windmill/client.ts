// Drives the Windmill stand-in from outside a job, for the tests, the benchmark and the
// demo: scripts and flows run through their webhooks (waiting for the result, or started
// and polled), resources read back, and this process acting as a job (windmill-client and
// the AWS SDK env pointed at the stand-ins with a job token).
import wmill from "windmill-client";
import type { WindmillStandIn } from "./server.ts";

/** The webhook path segment: `p` runs a script, `f` a flow. */
export type RunnableKind = "p" | "f";

/** What a webhook call needs: where the stand-in is and a token allowed to run jobs. */
export type WebhookTarget = Pick<WindmillStandIn, "url" | "workspace" | "adminToken">;

/** What `jobs_u/completed/get_result_maybe` answers. */
export interface ResultMaybe {
  completed: boolean;
  success?: boolean;
  result?: unknown;
}

function headers(windmill: WebhookTarget): Record<string, string> {
  return { authorization: `Bearer ${windmill.adminToken}`, "content-type": "application/json" };
}

/**
 * `jobs/run_wait_result`: the job's result and the webhook's HTTP status (200, or 422 when the
 * job failed). A refusal before any job exists (401 unreadable path, 404, 403 scope) or the
 * 500 timeout comes back as its plain-text body.
 */
export async function runWaitResult(windmill: WebhookTarget, kind: RunnableKind, path: string, args: Record<string, unknown>): Promise<{ status: number; result: unknown }> {
  const res = await fetch(`${windmill.url}/api/w/${windmill.workspace}/jobs/run_wait_result/${kind}/${path}`, {
    method: "POST",
    headers: headers(windmill),
    body: JSON.stringify(args),
  });
  const json = res.headers.get("content-type")?.startsWith("application/json");
  return { status: res.status, result: json ? await res.json() : await res.text() };
}

/** `jobs/run`: starts the job and returns its id. */
export async function runAsync(windmill: WebhookTarget, kind: RunnableKind, path: string, args: Record<string, unknown>): Promise<string> {
  const res = await fetch(`${windmill.url}/api/w/${windmill.workspace}/jobs/run/${kind}/${path}`, {
    method: "POST",
    headers: headers(windmill),
    body: JSON.stringify(args),
  });
  if (res.status !== 201) throw new Error(`webhook ${path}: HTTP ${res.status} ${await res.text()}`);
  return res.text();
}

/** Polls a job every `pollMs` until it completes; undefined if it has not once `deadline` (a `performance.now()` time) has passed. */
export async function pollResult(windmill: WebhookTarget, id: string, pollMs: number, deadline: number): Promise<ResultMaybe | undefined> {
  for (;;) {
    const res = await fetch(`${windmill.url}/api/w/${windmill.workspace}/jobs_u/completed/get_result_maybe/${id}`, { headers: headers(windmill) });
    const poll = (await res.json()) as ResultMaybe;
    if (poll.completed) return poll;
    if (performance.now() > deadline) return undefined;
    await Bun.sleep(pollMs);
  }
}

/**
 * Disables every schedule of the workspace (`schedules/list`, then `schedules/setenabled`). Tests
 * and the benchmark do this after the push: the pushed schedules fire on the wall clock (minute
 * 0, 5, 10, ...), so left on they add STS calls, jobs and consumed faults to whatever runs then.
 */
export async function disableSchedules(windmill: WebhookTarget): Promise<void> {
  const api = `${windmill.url}/api/w/${windmill.workspace}/schedules`;
  const list = await fetch(`${api}/list`, { headers: headers(windmill) });
  if (!list.ok) throw new Error(`could not list schedules: HTTP ${list.status} ${await list.text()}`);
  const schedules = (await list.json()) as { path: string }[];
  for (const { path } of schedules) {
    const res = await fetch(`${api}/setenabled/${path}`, { method: "POST", headers: headers(windmill), body: JSON.stringify({ enabled: false }) });
    if (!res.ok) throw new Error(`could not disable schedule ${path}: HTTP ${res.status} ${await res.text()}`);
  }
}

/** A resource's value with its `$var:` / `$res:` references resolved, as a script reads it. */
export async function interpolatedResource(windmill: WebhookTarget, path: string): Promise<unknown> {
  const res = await fetch(`${windmill.url}/api/w/${windmill.workspace}/resources/get_value_interpolated/${path}`, {
    headers: { authorization: `Bearer ${windmill.adminToken}` },
  });
  if (!res.ok) throw new Error(`resource ${path}: HTTP ${res.status} ${await res.text()}`);
  return res.json();
}

/**
 * Points this process's windmill-client and env at the stand-ins as a job at `path` (a
 * step of `flowPath`) would be; `jobEnv` is what every job gets on top (region, endpoints).
 */
export function actAsJob(windmill: Pick<WindmillStandIn, "url" | "workspace" | "createJobToken">, jobEnv: Record<string, string>, path: string | null, flowPath: string | null = null): void {
  const token = windmill.createJobToken({ path, flowPath });
  Object.assign(process.env, {
    WM_TOKEN: token, WM_WORKSPACE: windmill.workspace, BASE_INTERNAL_URL: windmill.url,
    WM_JOB_PATH: path ?? "", WM_JOB_ID: crypto.randomUUID(), ...jobEnv,
  });
  wmill.setClient(token, windmill.url);
}
