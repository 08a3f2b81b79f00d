// The Windmill stand-in's OpenFlow runner on the module types and options the bundle's
// users write: rawscript, script, subflow, branchone, branchall, identity, for-loops with
// skip_failures, javascript transforms, retry, stop_after_if, failure_module.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { startStack, type Stack } from "../helpers/testStack.ts";

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await stack.close();
});

const raw = (id: string, content: string, inputs: Record<string, unknown> = {}) => ({
  id,
  value: { type: "rawscript", language: "bun", content, input_transforms: inputs },
});
const js = (expr: string) => ({ type: "javascript", expr });
const EMPTY_SCHEMA = { $schema: "https://json-schema.org/draft/2020-12/schema", type: "object", properties: {}, required: [] };

async function createFlow(path: string, value: object): Promise<void> {
  const res = await fetch(`${stack.windmill.url}/api/w/${stack.windmill.workspace}/flows/create`, {
    method: "POST",
    headers: { authorization: `Bearer ${stack.windmill.adminToken}`, "content-type": "application/json" },
    body: JSON.stringify({ path, summary: path, value, schema: EMPTY_SCHEMA }),
  });
  expect(res.ok).toBe(true);
}

async function runFlow(path: string, args: Record<string, unknown>): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${stack.windmill.url}/api/w/${stack.windmill.workspace}/jobs/run_wait_result/f/${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${stack.windmill.adminToken}`, "content-type": "application/json" },
    body: JSON.stringify(args),
  });
  return { status: res.status, body: await res.json() };
}

test("branches, loops, identity and a subflow compose like Windmill's", async () => {
  await createFlow("f/aws_oidc/test_double", { modules: [raw("double", "export async function main(n: number) { return n * 2; }", { n: js("flow_input.n") })] });
  await createFlow("f/aws_oidc/test_compose", {
    modules: [
      raw("numbers", "export async function main(count: number) { return Array.from({ length: count }, (_, i) => i + 1); }", { count: js("flow_input.count") }),
      {
        id: "each",
        value: {
          type: "forloopflow", iterator: js("results.numbers"), parallel: true, parallelism: 2, skip_failures: true,
          modules: [raw("maybe_fail", "export async function main(x: number) { if (x === 3) throw new Error('three is bad'); return x * 10; }", { x: js("flow_input.iter.value") })],
        },
      },
      {
        id: "pick",
        value: {
          type: "branchone",
          branches: [{ expr: "flow_input.count > 100", modules: [raw("big", "export async function main() { return 'big'; }")] }],
          default: [raw("small", "export async function main() { return 'small'; }")],
        },
      },
      {
        id: "both",
        value: {
          type: "branchall", parallel: true,
          branches: [
            { modules: [{ id: "sub", value: { type: "flow", path: "f/aws_oidc/test_double", input_transforms: { n: js("flow_input.count") } } }] },
            { modules: [{ id: "same", value: { type: "identity" } }] },
          ],
        },
      },
      raw("collect", "export async function main(each: unknown[], pick: string, both: unknown[]) { return { each, pick, both }; }",
        { each: js("results.each"), pick: js("results.pick"), both: js("results.both") }),
    ],
  });
  const { status, body } = await runFlow("f/aws_oidc/test_compose", { count: 4 });
  expect(status).toBe(200);
  const result = body as { each: unknown[]; pick: string; both: unknown[] };
  expect(result.each[0]).toBe(10);
  expect(result.each[1]).toBe(20);
  expect(result.each[2]).toMatchObject({ error: { message: "three is bad" } });
  expect(result.each[3]).toBe(40);
  expect(result.pick).toBe("small");
  expect(result.both[0]).toBe(8);
  expect(result.both[1]).toBe("small");
});

test("retry runs a failing step again; stop_after_if ends the flow early with that step's result", async () => {
  await createFlow("f/aws_oidc/test_retry", {
    modules: [
      {
        ...raw("flaky", `
import wmill from "windmill-client";
export async function main() {
  const path = "f/aws_oidc/flaky_counter";
  const n = Number(await wmill.getVariable(path).catch(() => "0")) + 1;
  await wmill.setVariable(path, String(n));
  if (n < 3) throw new Error("attempt " + n + " fails");
  return n;
}`),
        retry: { constant: { attempts: 3, seconds: 0 } },
        stop_after_if: { expr: "result === 3" },
      },
      raw("never", "export async function main() { return 'should not run'; }"),
    ],
  });
  const { status, body } = await runFlow("f/aws_oidc/test_retry", {});
  expect(status).toBe(200);
  expect(body).toBe(3);
  const flow = stack.windmill.jobs.findLast((j) => j.path === "f/aws_oidc/test_retry")!;
  expect(stack.windmill.jobs.filter((j) => j.parentJobId === flow.id).map((j) => j.stepId)).toEqual(["flaky", "flaky", "flaky"]);
});

test("a failure module receives the failed step and its error", async () => {
  await createFlow("f/aws_oidc/test_failure", {
    modules: [raw("boom", "export async function main() { throw new Error('no such table: orders'); }")],
    failure_module: raw("failure", "export async function main(e: { message: string; step_id: string }) { return { handled: e.step_id, why: e.message }; }", { e: js("previous_result.error") }),
  });
  const { status, body } = await runFlow("f/aws_oidc/test_failure", {});
  expect(status).toBe(422);
  expect(body).toEqual({ handled: "boom", why: "no such table: orders" });
});
