// The Windmill stand-in's flow engine against Windmill's own code: one test per behaviour,
// each naming the source file (windmill-labs/windmill, backend/) and function it checks,
// then the bundle's flows run through their webhooks with only their required inputs.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { assumeRoleAndSave } from "../../f/aws_oidc/lib/assumeRoleAndSave.ts";
import { s3Client } from "../../f/aws_oidc/lib/s3.ts";
import { CREDENTIALS_RESOURCE, DATABASE_RESOURCE, DEMO_TABLE, ROLE_RESOURCE, setUpWorkspace, uploadSampleCsvs } from "../../local/demo/demoData.ts";
import type { JobRecord } from "../../local/windmill/state.ts";
import { DEMO_ROLE_ARN, REGION, startStack, type Stack } from "../helpers/testStack.ts";

let stack: Stack;
let s3: S3Client;

beforeAll(async () => {
  stack = await startStack({ s3: true, rds: true });
  await setUpWorkspace(stack);
  stack.actAsJob("f/aws_oidc/conformance_setup");
  await assumeRoleAndSave({ roleArn: DEMO_ROLE_ARN, region: REGION, saveTo: "f/aws_oidc/conformance_creds" }, () => {});
  s3 = (await s3Client("f/aws_oidc/conformance_creds")).s3;
});
afterAll(async () => {
  await stack.close();
});

const EMPTY_SCHEMA = { $schema: "https://json-schema.org/draft/2020-12/schema", type: "object", properties: {}, required: [] };
/** A lock in the deployed format for a script without dependencies (bun_executor.rs gen_bun_lockfile). */
const NO_DEPENDENCIES_LOCK = '{\n  "dependencies": {}\n}\n//bun.lock\n<empty>';
const js = (expr: string) => ({ type: "javascript", expr });
const raw = (id: string, content: string, inputs: Record<string, unknown> = {}) => ({
  id,
  value: { type: "rawscript", language: "bun", content, input_transforms: inputs },
});
/** A step that reports where it ran: its args and the worker's WM_* variables. */
const WHERE = `export async function main(x: unknown) {
  return { x, flow_path: process.env.WM_FLOW_PATH, flow_job: process.env.WM_FLOW_JOB_ID, step: process.env.WM_FLOW_STEP_ID, job: process.env.WM_JOB_ID };
}`;
/** A step that takes an ID token (with the job's own token, no imports) and returns its flow claims. */
const CLAIMS = `export async function main() {
  const res = await fetch(process.env.BASE_INTERNAL_URL + "/api/w/" + process.env.WM_WORKSPACE + "/oidc/token/conformance", {
    method: "POST", headers: { authorization: "Bearer " + process.env.WM_TOKEN },
  });
  const claims = JSON.parse(Buffer.from((await res.text()).split(".")[1], "base64url").toString("utf8"));
  return { flow_path: claims.flow_path, sub: claims.sub, env: process.env.WM_FLOW_PATH };
}`;
/** Sleeps, and says when it ran. */
const TIMED = (ms: number) => `export async function main(i: unknown) { const start = Date.now(); await Bun.sleep(${ms}); return { i, start, end: Date.now() }; }`;

async function api(path: string, body: unknown): Promise<Response> {
  return fetch(`${stack.windmill.url}/api/w/${stack.windmill.workspace}/${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${stack.windmill.adminToken}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

async function createFlow(path: string, value: object): Promise<void> {
  const res = await api("flows/create", { path, summary: path, value, schema: EMPTY_SCHEMA });
  expect(res.ok).toBe(true);
}

/** `jobs/run_wait_result`, as a webhook caller does. */
async function run(kind: "f" | "p", path: string, args: Record<string, unknown>): Promise<{ status: number; body: any }> {
  const res = await api(`jobs/run_wait_result/${kind}/${path}`, args);
  const text = await res.text();
  return { status: res.status, body: text.startsWith("{") || text.startsWith("[") || text === "null" || text.startsWith('"') ? JSON.parse(text) : text };
}

const lastFlowJob = (path: string): JobRecord => stack.windmill.jobs.findLast((j) => j.kind === "flow" && j.path === path)!;
const childrenOf = (job: JobRecord): JobRecord[] => stack.windmill.jobs.filter((j) => j.parentJobId === job.id);

describe("missing arguments (fact 2)", () => {
  test("js_eval.rs eval_timeout + worker_flow.rs transform_input: flow_input.x not sent is null, and the step gets x: null", async () => {
    await createFlow("f/aws_oidc/conf_missing", {
      modules: [raw("step", 'export async function main(x: string = "ts default") { return x; }', { x: js("flow_input.x") })],
    });
    const { status, body } = await run("f", "f/aws_oidc/conf_missing", {});
    expect(status).toBe(200);
    expect(body).toBeNull();
    const [step] = childrenOf(lastFlowJob("f/aws_oidc/conf_missing"));
    expect(step.args).toEqual({ x: null });
    expect("x" in step.args).toBe(true);
  });

  test("bun_executor.rs wrapper (argsObjToArr): a script run by the API without a key gets undefined (its default), an explicit null stays null", async () => {
    const created = await api("scripts/create", {
      path: "f/aws_oidc/conf_default", summary: "", description: "", language: "bun", lock: NO_DEPENDENCIES_LOCK,
      content: 'export async function main(x: string = "ts default") { return x; }',
    });
    expect(created.ok).toBe(true);
    expect((await run("p", "f/aws_oidc/conf_default", {})).body).toBe("ts default");
    expect((await run("p", "f/aws_oidc/conf_default", { x: null })).body).toBeNull();
  });
});

describe("for-loop iterations are flow jobs (fact 3)", () => {
  test("worker_flow.rs (push of parallel for-loop iterations): each is a flow job at <flow>/forloop-<i>, its steps' WM_FLOW_PATH and WM_FLOW_JOB_ID are the iteration's", async () => {
    await createFlow("f/aws_oidc/conf_parallel", {
      modules: [{ id: "each", value: { type: "forloopflow", iterator: js('["a", "b", "c"]'), parallel: true, modules: [raw("body", WHERE, { x: js("flow_input.iter.value") })] } }],
    });
    const { status, body } = await run("f", "f/aws_oidc/conf_parallel", {});
    expect(status).toBe(200);
    const flow = lastFlowJob("f/aws_oidc/conf_parallel");
    const iterations = childrenOf(flow);
    expect(iterations.map((i) => [i.kind, i.path, i.stepId, i.flowPath])).toEqual(expect.arrayContaining(
      [0, 1, 2].map((i) => ["flow", `f/aws_oidc/conf_parallel/forloop-${i}`, "each", "f/aws_oidc/conf_parallel"])));
    expect(iterations).toHaveLength(3);
    for (const [i, result] of (body as { x: string; flow_path: string; flow_job: string; step: string }[]).entries()) {
      const iteration = iterations.find((j) => j.path === `f/aws_oidc/conf_parallel/forloop-${i}`)!;
      expect(result).toMatchObject({ x: ["a", "b", "c"][i], flow_path: iteration.path, flow_job: iteration.id, step: "body" });
      expect(iteration.result).toEqual(result);
      expect(childrenOf(iteration).map((j) => j.path)).toEqual(["f/aws_oidc/conf_parallel/forloop-" + i + "/body"]);
    }
    // A person sees them: the job list under the flow, and each iteration's own record.
    const listed = await (await fetch(`${stack.windmill.url}/api/w/${stack.windmill.workspace}/jobs/list?parent_job=${flow.id}`, {
      headers: { authorization: `Bearer ${stack.windmill.adminToken}` },
    })).json() as { job_kind: string; script_path: string; parent_job: string }[];
    expect(listed.map((j) => j.script_path).sort()).toEqual([0, 1, 2].map((i) => `f/aws_oidc/conf_parallel/forloop-${i}`));
    for (const job of listed) expect(job).toMatchObject({ job_kind: "flow", parent_job: flow.id });
  });

  test("worker_flow.rs next_loop_iteration: a sequential loop's iterations are flow jobs at <flow>/loop-<i>; a simple one (is_simple_modules) pushes the step's job itself", async () => {
    await createFlow("f/aws_oidc/conf_sequential", {
      modules: [
        { id: "two_steps", value: { type: "forloopflow", iterator: js("[1, 2]"), modules: [raw("first", WHERE, { x: js("flow_input.iter.value") }), { id: "same", value: { type: "identity" } }] } },
        { id: "one_step", value: { type: "forloopflow", iterator: js("[1, 2]"), modules: [raw("only", WHERE, { x: js("flow_input.iter.index") })] } },
      ],
    });
    const { status } = await run("f", "f/aws_oidc/conf_sequential", {});
    expect(status).toBe(200);
    const flow = lastFlowJob("f/aws_oidc/conf_sequential");
    const [iterations, simple] = [childrenOf(flow).filter((j) => j.stepId === "two_steps"), childrenOf(flow).filter((j) => j.stepId === "one_step")];
    expect(iterations.map((j) => [j.kind, j.path])).toEqual([["flow", "f/aws_oidc/conf_sequential/loop-0"], ["flow", "f/aws_oidc/conf_sequential/loop-1"]]);
    for (const iteration of iterations) expect((iteration.result as { flow_path: string }).flow_path).toBe(iteration.path);
    // The simple loop's iterations are raw-script jobs of the flow itself, at <flow>/loop-<i>, under the flow's path.
    expect(simple.map((j) => [j.kind, j.path, j.flowPath])).toEqual([
      ["rawscript", "f/aws_oidc/conf_sequential/loop-0", "f/aws_oidc/conf_sequential"],
      ["rawscript", "f/aws_oidc/conf_sequential/loop-1", "f/aws_oidc/conf_sequential"],
    ]);
    expect(simple.map((j) => (j.result as { x: number }).x)).toEqual([0, 1]);
  });

  test("worker_flow.rs insert_iter_arg: a loop in a loop sees the outer iteration as iter_parent, at <flow>/forloop-<i>/forloop-<j>", async () => {
    await createFlow("f/aws_oidc/conf_nested", {
      modules: [{
        id: "outer", value: {
          type: "forloopflow", iterator: js('["a", "b"]'), parallel: true, modules: [{
            id: "inner", value: { type: "forloopflow", iterator: js("[1, 2]"), parallel: true, modules: [raw("pair", WHERE, { x: js("flow_input.iter_parent.value + flow_input.iter.value") })] },
          }],
        },
      }],
    });
    const { status, body } = await run("f", "f/aws_oidc/conf_nested", {});
    expect(status).toBe(200);
    expect((body as { x: string; flow_path: string }[][]).map((row) => row.map((r) => [r.x, r.flow_path]))).toEqual([
      [["a1", "f/aws_oidc/conf_nested/forloop-0/forloop-0"], ["a2", "f/aws_oidc/conf_nested/forloop-0/forloop-1"]],
      [["b1", "f/aws_oidc/conf_nested/forloop-1/forloop-0"], ["b2", "f/aws_oidc/conf_nested/forloop-1/forloop-1"]],
    ]);
  });

  test("OIDC flow_path claim (built in enterprise code, oidc_ee.rs): the stand-in issues either form, and sub follows it", async () => {
    await createFlow("f/aws_oidc/conf_claims", {
      modules: [{ id: "each", value: { type: "forloopflow", iterator: js("[0]"), parallel: true, modules: [raw("mint", CLAIMS)] } }],
    });
    const ws = stack.windmill.workspace;
    const asIteration = (await run("f", "f/aws_oidc/conf_claims", {})).body as { flow_path: string; sub: string; env: string }[];
    expect(asIteration[0]).toEqual({ flow_path: "f/aws_oidc/conf_claims/forloop-0", env: "f/aws_oidc/conf_claims/forloop-0", sub: `alice@example.com::f/aws_oidc/conf_claims/forloop-0/mint::f/aws_oidc/conf_claims/forloop-0::${ws}` });
    stack.windmill.faults.flowPathClaim = "root";
    try {
      const asRoot = (await run("f", "f/aws_oidc/conf_claims", {})).body as { flow_path: string; sub: string; env: string }[];
      expect(asRoot[0]).toEqual({ flow_path: "f/aws_oidc/conf_claims", env: "f/aws_oidc/conf_claims/forloop-0", sub: `alice@example.com::f/aws_oidc/conf_claims/forloop-0/mint::f/aws_oidc/conf_claims::${ws}` });
    } finally {
      stack.windmill.faults.flowPathClaim = "iteration";
    }
  });

  test("worker_flow.rs payload_from_modules: a failing iteration runs the copied failure module (id failure-<step>-<i>) inside it; its result is the iteration's, which skip_failures keeps", async () => {
    await createFlow("f/aws_oidc/conf_iteration_failure", {
      modules: [
        { id: "each", value: { type: "forloopflow", iterator: js("[1, 2]"), parallel: true, skip_failures: true, modules: [raw("body", "export async function main(n: number) { if (n === 2) throw new Error('two fails'); return n; }", { n: js("flow_input.iter.value") })] } },
      ],
      failure_module: raw("failure", "export async function main(e: { step_id: string; message: string }) { return { handled: e.step_id, why: e.message, flow_path: process.env.WM_FLOW_PATH, step: process.env.WM_FLOW_STEP_ID }; }", { e: js("previous_result.error") }),
    });
    const { status, body } = await run("f", "f/aws_oidc/conf_iteration_failure", {});
    expect(status).toBe(200);
    expect(body).toEqual([1, { handled: "body", why: "two fails", flow_path: "f/aws_oidc/conf_iteration_failure/forloop-1", step: "failure-0-1" }]);
    const flow = lastFlowJob("f/aws_oidc/conf_iteration_failure");
    const failed = childrenOf(flow).find((j) => j.path.endsWith("/forloop-1"))!;
    expect(failed).toMatchObject({ success: false, result: body[1] });
    expect(childrenOf(failed).map((j) => [j.stepId, j.success])).toEqual([["body", false], ["failure-0-1", true]]);
    expect(childrenOf(flow).every((j) => j.stepId === "each")).toBe(true);
  });

  test("worker_flow.rs has_triggered_error_handler: once the copied failure module ran in a failed iteration, the flow's own failure module does not run again", async () => {
    const failing = raw("body", "export async function main() { throw new Error('iteration fails'); }");
    const failureModule = raw("failure", "export async function main(e: { step_id: string }) { return { handled_in: process.env.WM_FLOW_PATH, step: e.step_id }; }", { e: js("previous_result.error") });
    await createFlow("f/aws_oidc/conf_failure_once", {
      modules: [{ id: "each", value: { type: "forloopflow", iterator: js("[1]"), modules: [failing] } }],
      failure_module: failureModule,
    });
    const { status, body } = await run("f", "f/aws_oidc/conf_failure_once", {});
    expect(status).not.toBe(200);
    expect(body).toEqual({ handled_in: "f/aws_oidc/conf_failure_once/loop-0", step: "body" });
    const flow = lastFlowJob("f/aws_oidc/conf_failure_once");
    expect(flow.success).toBe(false);
    // The flow job's only child is the iteration: no failure step of its own.
    expect(childrenOf(flow).map((j) => [j.stepId, j.path])).toEqual([["each", "f/aws_oidc/conf_failure_once/loop-0"]]);
  });
});

describe("loop and branch options (fact 5)", () => {
  test("worker_flow.rs (evaluate_input_transform::<u16> of parallelism): parallelism as {type: static} and {type: javascript} runs every iteration, at most that many at once", async () => {
    const loop = (parallelism: unknown) => ({ modules: [{ id: "each", value: { type: "forloopflow", iterator: js("[1, 2, 3]"), parallel: true, parallelism, modules: [raw("timed", TIMED(300), { i: js("flow_input.iter.value") })] } }] });
    await createFlow("f/aws_oidc/conf_parallelism_static", loop({ type: "static", value: 1 }));
    await createFlow("f/aws_oidc/conf_parallelism_js", loop(js("flow_input.width")));
    const one = (await run("f", "f/aws_oidc/conf_parallelism_static", {})).body as { i: number; start: number; end: number }[];
    expect(one.map((r) => r.i)).toEqual([1, 2, 3]);
    const byStart = [...one].sort((a, b) => a.start - b.start);
    for (let k = 1; k < byStart.length; k++) expect(byStart[k].start).toBeGreaterThanOrEqual(byStart[k - 1].end);
    const viaExpr = await run("f", "f/aws_oidc/conf_parallelism_js", { width: 2 });
    expect(viaExpr.status).toBe(200);
    expect((viaExpr.body as { i: number }[]).map((r) => r.i)).toEqual([1, 2, 3]);
  });

  test("worker_flow.rs update_flow_status_after_job_completion_internal (skip_failures .unwrap_or(false)): a loop without skip_failures fails at the first failed iteration", async () => {
    const failing = (skip: object) => ({
      modules: [{ id: "each", value: { type: "forloopflow", iterator: js("[1, 2, 3]"), ...skip, modules: [raw("body", "export async function main(n: number) { if (n === 2) throw new Error('two fails'); return n; }", { n: js("flow_input.iter.value") }), { id: "same", value: { type: "identity" } }] } }],
    });
    await createFlow("f/aws_oidc/conf_skip_absent", failing({}));
    await createFlow("f/aws_oidc/conf_skip_true", failing({ skip_failures: true }));
    const absent = await run("f", "f/aws_oidc/conf_skip_absent", {});
    expect(absent.status).toBe(422);
    expect(absent.body).toMatchObject({ error: { message: "two fails" } });
    // Sequential: the third iteration never started.
    expect(childrenOf(lastFlowJob("f/aws_oidc/conf_skip_absent")).map((j) => j.path)).toEqual(["f/aws_oidc/conf_skip_absent/loop-0", "f/aws_oidc/conf_skip_absent/loop-1"]);
    const kept = await run("f", "f/aws_oidc/conf_skip_true", {});
    expect(kept.status).toBe(200);
    expect(kept.body).toMatchObject([1, { error: { message: "two fails" } }, 3]);
  });

  test("windmill-common/src/flows.rs (branchall parallel .unwrap_or(true)): branches of a branchall without `parallel` run at once", async () => {
    const branches = [0, 1].map((b) => ({ modules: [raw(`timed_${b}`, TIMED(1500), { i: { type: "static", value: b } })] }));
    await createFlow("f/aws_oidc/conf_branchall_default", { modules: [{ id: "both", value: { type: "branchall", branches } }] });
    await createFlow("f/aws_oidc/conf_branchall_sequential", { modules: [{ id: "both", value: { type: "branchall", branches, parallel: false } }] });
    const together = (await run("f", "f/aws_oidc/conf_branchall_default", {})).body as { start: number; end: number }[];
    expect(Math.max(...together.map((r) => r.start))).toBeLessThan(Math.min(...together.map((r) => r.end)));
    const inTurn = (await run("f", "f/aws_oidc/conf_branchall_sequential", {})).body as { start: number; end: number }[];
    expect(inTurn[1].start).toBeGreaterThanOrEqual(inTurn[0].end);
  });

  test("worker_flow.rs (BranchAll): each branch is a flow job at <flow>/branchall-<i>, whose steps are its children", async () => {
    const branches = [0, 1].map((b) => ({ modules: [raw(`where_${b}`, WHERE, { x: { type: "static", value: b } })] }));
    await createFlow("f/aws_oidc/conf_branchall_jobs", { modules: [{ id: "both", value: { type: "branchall", branches } }] });
    const { status, body } = await run("f", "f/aws_oidc/conf_branchall_jobs", {});
    expect(status).toBe(200);
    const flow = lastFlowJob("f/aws_oidc/conf_branchall_jobs");
    const branchJobs = childrenOf(flow);
    expect(branchJobs.map((j) => [j.kind, j.path, j.stepId]).sort()).toEqual([0, 1].map((b) => ["flow", `f/aws_oidc/conf_branchall_jobs/branchall-${b}`, "both"]));
    for (const [b, result] of (body as { x: number; flow_path: string; flow_job: string; step: string }[]).entries()) {
      const branchJob = branchJobs.find((j) => j.path.endsWith(`/branchall-${b}`))!;
      expect(result).toMatchObject({ x: b, flow_path: branchJob.path, flow_job: branchJob.id, step: `where_${b}` });
    }
  });
});

describe("$res: and $var: arguments (fact 5)", () => {
  beforeAll(async () => {
    expect((await api("variables/create", { path: "f/aws_oidc/conf_secret", value: "s3cr3t", is_secret: true })).ok).toBe(true);
    expect((await api("resources/create", { path: "f/aws_oidc/conf_target", resource_type: "aws_oidc", value: { roleArn: "arn:aws:iam::1:role/x", region: "$var:f/aws_oidc/conf_secret" } })).ok).toBe(true);
  });
  const ECHO = "export async function main(r: unknown, deep: unknown, list: unknown, big: unknown, plain: unknown, literal: boolean) { return { r, deep, list, big, plain, literal }; }";

  test("common.rs transform_json_value: each step resolves what it receives; flow_input keeps the literal \"$res:...\" string", async () => {
    await createFlow("f/aws_oidc/conf_resolve", {
      modules: [
        raw("first", ECHO, { r: js("flow_input.r"), literal: js('flow_input.r === "$res:f/aws_oidc/conf_target"') }),
        raw("second", ECHO, { r: js("flow_input.r") }),
      ],
    });
    const { status, body } = await run("f", "f/aws_oidc/conf_resolve", { r: "$res:f/aws_oidc/conf_target" });
    expect(status).toBe(200);
    expect(body.r).toEqual({ roleArn: "arn:aws:iam::1:role/x", region: "s3cr3t" });
    const flow = lastFlowJob("f/aws_oidc/conf_resolve");
    expect(flow.args).toEqual({ r: "$res:f/aws_oidc/conf_target" });
    const [first, second] = childrenOf(flow);
    expect((first.result as { literal: boolean; r: unknown }).literal).toBe(true);
    expect((first.result as { r: unknown }).r).toEqual(body.r);
    // Each step's job got the reference and resolved it itself.
    expect(first.args.r).toBe("$res:f/aws_oidc/conf_target");
    expect(second.args.r).toBe("$res:f/aws_oidc/conf_target");
  });

  test("common.rs transform_json_value (newest): objects at any depth, arrays at depth <= 2 with <= 1000 items, $NAME a reserved variable", async () => {
    const created = await api("scripts/create", { path: "f/aws_oidc/conf_echo", summary: "", description: "", language: "bun", lock: NO_DEPENDENCIES_LOCK, content: ECHO });
    expect(created.ok).toBe(true);
    const v = "$var:f/aws_oidc/conf_secret";
    const { status, body } = await run("p", "f/aws_oidc/conf_echo", {
      deep: { a: { b: { c: { d: v } } }, job: "$WM_JOB_PATH", price: "$5" },
      list: [v, [v, [v, [v]]]],
      big: [Array.from({ length: 1001 }, () => v)],
      plain: "$WM_JOB_PATH",
    });
    expect(status).toBe(200);
    expect(body.deep).toEqual({ a: { b: { c: { d: "s3cr3t" } } }, job: "f/aws_oidc/conf_echo", price: "$5" });
    expect(body.list).toEqual(["s3cr3t", ["s3cr3t", ["s3cr3t", [v]]]]);
    expect(body.big[0]).toHaveLength(1001);
    expect(body.big[0][0]).toBe(v);
    // Only an arg holding $var:/$res:/$encrypted: is transformed (RE_RES_VAR).
    expect(body.plain).toBe("$WM_JOB_PATH");
  });

  test("common.rs transform_json_value: an unresolvable reference fails the job with Windmill's message before main runs", async () => {
    const bad = await run("p", "f/aws_oidc/conf_echo", { r: "$res:nothing" });
    expect(bad.status).toBe(422);
    expect(bad.body.error.message).toContain("Argument `r` is an invalid resource path: nothing");
    const missing = await run("p", "f/aws_oidc/conf_echo", { deep: { inner: "$res:f/aws_oidc/missing" } });
    expect(missing.body.error.message).toContain("Resource f/aws_oidc/missing not found for `inner`");
  });
});

describe("the bundle's flows through their webhooks, with only their required inputs (as the README's curl)", () => {
  const BUCKET = "conformance-data";
  const required = (table: string) => ({ aws_oidc: `$res:${ROLE_RESOURCE}`, database: `$res:${DATABASE_RESOURCE}`, bucket: BUCKET, table });

  test("s3_csv_to_rds loads with its schema defaults (prefix, header, split_mib, credentials_path, fail_on_failures) coalesced in the flow", async () => {
    await stack.rds!.adminSql(`create table orders_conf (like ${DEMO_TABLE}); grant select, insert on orders_conf to app_user`);
    await uploadSampleCsvs(s3, BUCKET, "in/", 2, 30);
    const { status, body } = await run("f", "f/aws_oidc/s3_csv_to_rds", required("orders_conf"));
    expect(status).toBe(200);
    expect(body.at(-1)).toMatchObject({ object: "TOTAL (2 of 2 loaded)", rows: 60 });
    const steps = childrenOf(lastFlowJob("f/aws_oidc/s3_csv_to_rds"));
    expect(steps.find((s) => s.stepId === "assume_role")!.args.save_to).toBe(CREDENTIALS_RESOURCE);
    expect(steps.find((s) => s.stepId === "summary")!.args.fail_on_failures).toBe(true);
  });

  test("s3_csv_to_rds: a failed iteration (its failure module's report) shows in the summary with its object and error, and fails the flow", async () => {
    await stack.rds!.adminSql(`create table orders_conf_bad (like ${DEMO_TABLE}); grant select, insert on orders_conf_bad to app_user`);
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: "zz-broken.csv", Body: "order_id,customer\n1,only two columns\n" }));
    const { status, body } = await run("f", "f/aws_oidc/s3_csv_to_rds", required("orders_conf_bad"));
    expect(status).toBe(422);
    expect(body).toMatchObject({ failed_step: "summary", error: "LoadFailures" });
    expect(body.message).toContain(`1 of 3 objects failed to load`);
    expect(body.message).toContain(`s3://${BUCKET}/zz-broken.csv: `);
    expect(body.message).toContain("22P04");
    const flow = lastFlowJob("f/aws_oidc/s3_csv_to_rds");
    const broken = childrenOf(flow).find((j) => j.stepId === "load_each" && !j.success)!;
    expect(broken.result).toMatchObject({ failed_step: "load", error: expect.any(String), message: expect.stringContaining("22P04") });
  });

  test("rds_to_s3_export works with link_expires_in, gzip and credentials_path left out", async () => {
    const { status, body } = await run("f", "f/aws_oidc/rds_to_s3_export", {
      aws_oidc: `$res:${ROLE_RESOURCE}`, database: `$res:${DATABASE_RESOURCE}`, bucket: BUCKET, key: "exports/conf.csv",
      query: `select order_id from orders_conf order by order_id`,
    });
    expect(status).toBe(200);
    expect(body.method).toBe("GET");
    // The link asked for the schema's 1h (capped by the saved session's expiry, which the result says).
    const steps = childrenOf(lastFlowJob("f/aws_oidc/rds_to_s3_export"));
    expect(steps.find((s) => s.stepId === "link")!.args).toMatchObject({ expires_in: "1h" });
    expect(steps.find((s) => s.stepId === "export")!.args).toMatchObject({ gzip: false });
    const csv = await (await fetch(body.url)).text();
    expect(csv.split("\n")[0]).toBe("order_id");
  });
});
