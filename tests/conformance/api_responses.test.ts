// Issue 20, points 2 and 4: what Windmill's API answers for a job run and waited for, and for
// resources and resource types. Each test names the Windmill source it follows.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { timeoutWaitResultFromEnv } from "../../local/windmill/jobRoutes.ts";
import { startWindmill, type WindmillStandIn } from "../../local/windmill/server.ts";

const SCRIPTS: Record<string, string> = {
  ok: "export async function main(n: number) { return { doubled: n * 2 }; }",
  fail: "export async function main() { throw new Error('the job failed'); }",
  slow: "export async function main() { await new Promise((r) => setTimeout(r, 120_000)); return 'late'; }",
  csv: "export async function main() { return { windmill_status_code: 201, windmill_content_type: 'text/csv', windmill_headers: { 'x-report': 'orders' }, result: 'a,b\\n1,2\\n' }; }",
  teapot: "export async function main() { return { windmill_status_code: 418, result: { brewing: false } }; }",
  empty: "export async function main() { return { windmill_headers: { 'x-empty': 'yes' } }; }",
};

let dir: string;
let windmill: WindmillStandIn;
/** The same workspace with run_wait_result giving up after 1 s. */
let impatient: WindmillStandIn;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "wm-api-"));
  await mkdir(join(dir, "f/t"), { recursive: true });
  for (const [name, code] of Object.entries(SCRIPTS)) await writeFile(join(dir, `f/t/${name}.ts`), code);
  windmill = await startWindmill({ workspaceDir: dir, workers: 2 });
  impatient = await startWindmill({ workspaceDir: dir, workers: 2, timeoutWaitResultSeconds: 1 });
});
afterAll(async () => {
  await windmill.close();
  await impatient.close();
  await rm(dir, { recursive: true, force: true });
});

function api(target: WindmillStandIn, method: string, path: string, body?: unknown, token = target.adminToken, signal?: AbortSignal): Promise<Response> {
  return fetch(`${target.url}/api/w/${target.workspace}/${path}`, {
    method, signal,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

/** Resolves once `target` has a job at `path` that is no longer running. */
async function settledJob(target: WindmillStandIn, path: string) {
  for (;;) {
    const job = target.jobs.find((j) => j.path === path && j.status !== "running");
    if (job) return job;
    await Bun.sleep(50);
  }
}

describe("run_wait_result (backend/windmill-api-jobs/src/execution.rs result_to_response, run_wait_result_internal)", () => {
  test("200 with the result for a successful job, 422 with the error for a failed one", async () => {
    const ok = await api(windmill, "POST", "jobs/run_wait_result/p/f/t/ok", { n: 21 });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ doubled: 42 });
    const failed = await api(windmill, "POST", "jobs/run_wait_result/p/f/t/fail", {});
    expect(failed.status).toBe(422);
    expect(((await failed.json()) as { error: { message: string } }).error.message).toBe("the job failed");
  });

  test("windmill_status_code / windmill_content_type / windmill_headers become the response", async () => {
    const csv = await api(windmill, "POST", "jobs/run_wait_result/p/f/t/csv", {});
    expect(csv.status).toBe(201);
    expect(csv.headers.get("content-type")).toBe("text/csv");
    expect(csv.headers.get("x-report")).toBe("orders");
    expect(await csv.text()).toBe("a,b\n1,2\n");
    const teapot = await api(windmill, "POST", "jobs/run_wait_result/p/f/t/teapot", {});
    expect(teapot.status).toBe(418);
    expect(await teapot.json()).toEqual({ brewing: false });
    const empty = await api(windmill, "POST", "jobs/run_wait_result/p/f/t/empty", {});
    expect(empty.status).toBe(204);
    expect(empty.headers.get("x-empty")).toBe("yes");
  });

  test("TIMEOUT_WAIT_RESULT: read from that env var in whole seconds, 600 by default", () => {
    expect(timeoutWaitResultFromEnv({})).toBe(600);
    expect(timeoutWaitResultFromEnv({ TIMEOUT_WAIT_RESULT: "30" })).toBe(30);
    expect(timeoutWaitResultFromEnv({ TIMEOUT_WAIT_RESULT: "soon" })).toBe(600);
  });

  test("past the timeout: 500 'timeout after <n>s', and the job is canceled (the Guard's cancel_job)", async () => {
    const res = await api(impatient, "POST", "jobs/run_wait_result/p/f/t/slow", {});
    expect(res.status).toBe(500);
    expect(await res.text()).toBe("timeout after 1s");
    const job = await settledJob(impatient, "f/t/slow");
    const shown = await (await api(impatient, "GET", `jobs_u/completed/get/${job.id}`)).json();
    expect(shown).toMatchObject({ success: false, canceled: true, canceled_by: "alice", canceled_reason: "http connection broke" });
    expect(shown.result.error).toMatchObject({ name: "Canceled", message: "Job canceled: http connection broke by alice" });
  });

  test("a dropped connection cancels the job", async () => {
    const abort = new AbortController();
    const before = windmill.jobs.length;
    const call = api(windmill, "POST", "jobs/run_wait_result/p/f/t/slow", {}, windmill.adminToken, abort.signal).catch((err: Error) => err);
    while (!windmill.jobs.slice(before).some((j) => j.path === "f/t/slow")) await Bun.sleep(20);
    abort.abort();
    expect(await call).toBeInstanceOf(Error);
    const job = await settledJob(windmill, "f/t/slow");
    expect(job.canceled).toEqual({ by: "alice", reason: "http connection broke" });
    expect(job.success).toBe(false);
  });
});

describe("resources and resource types (backend/windmill-store/src/resources.rs)", () => {
  test("create_resource checks neither that the type exists nor the value's shape", async () => {
    const unknownType = await api(windmill, "POST", "resources/create", { path: "f/t/anything", value: { x: 1 }, resource_type: "no_such_type" });
    expect(unknownType.status).toBe(201);
    const wrongShape = await api(windmill, "POST", "resources/create", { path: "f/t/role", value: { role: 42 }, resource_type: "aws_oidc" });
    expect(wrongShape.status).toBe(201);
    expect(await (await api(windmill, "GET", "resources/get_value/f/t/role")).json()).toEqual({ role: 42 });
  });

  test("create_resource_type: 201 'resource_type <name> created'; again: 400 already exists (check_rt_path_conflict); a hub name may be shadowed once", async () => {
    const type = { name: "conf_type", schema: { type: "object" }, description: "" };
    const first = await api(windmill, "POST", "resources/type/create", type);
    expect(first.status).toBe(201);
    expect(await first.text()).toBe("resource_type conf_type created");
    const again = await api(windmill, "POST", "resources/type/create", type);
    expect(again.status).toBe(400);
    expect(await again.text()).toBe("Bad request: Resource type conf_type already exists");
    expect((await api(windmill, "POST", "resources/type/create", { ...type, name: "postgresql" })).status).toBe(201);
    expect((await api(windmill, "POST", "resources/type/create", { ...type, name: "postgresql" })).status).toBe(400);
  });

  test("delete_resource: 404 when row-level security deletes nothing (absent, or not the caller's to write)", async () => {
    const absent = await api(windmill, "DELETE", "resources/delete/f/t/never_created");
    expect(absent.status).toBe(404);
    expect(await absent.text()).toBe("Not found: Resource not found at name f/t/never_created");
    await api(windmill, "POST", "workspaces/add_user", { email: "eve@example.com", username: "eve", is_admin: false, operator: false });
    const refused = await api(windmill, "DELETE", "resources/delete/f/t/anything", undefined, windmill.createUserToken("eve"));
    expect(refused.status).toBe(404);
    expect((await api(windmill, "GET", "resources/get_value/f/t/anything")).status).toBe(200);
    const deleted = await api(windmill, "DELETE", "resources/delete/f/t/anything");
    expect(deleted.status).toBe(200);
    expect(await deleted.text()).toBe("resource f/t/anything deleted");
  });
});
