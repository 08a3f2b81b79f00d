// Issue 19, point 3: the real `wmill` CLI (windmill-cli) runs scripts and flows against the
// Windmill stand-in as against Windmill: `wmill script run` polls jobs_u/completed/get and
// streams logs through jobs_u/getupdate; `wmill flow run` walks jobs_u/get's flow_status.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startWindmill, type WindmillStandIn } from "../../local/windmill/server.ts";
import { runWmill, type WmillTarget } from "../../local/windmill/wmillCli.ts";

let dir: string;
let windmill: WindmillStandIn;
let target: WmillTarget;

const raw = (id: string, content: string, inputs: Record<string, unknown> = {}) => ({ id, value: { type: "rawscript", language: "bun", content, input_transforms: inputs } });

async function createFlow(path: string, value: object): Promise<void> {
  const res = await fetch(`${windmill.url}/api/w/${windmill.workspace}/flows/create`, {
    method: "POST",
    headers: { authorization: `Bearer ${windmill.adminToken}`, "content-type": "application/json" },
    body: JSON.stringify({ path, summary: path, value, schema: { type: "object", properties: {}, required: [] } }),
  });
  expect(res.status).toBe(201);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "wm-cli-run-"));
  await mkdir(join(dir, "f/t"), { recursive: true });
  await writeFile(join(dir, "f/t/greet.ts"), "export async function main(name: string) { console.log('greeting ' + name); return { greeting: `hello ${name}` }; }");
  await writeFile(join(dir, "f/t/refuse.ts"), "export async function main() { throw new Error('no greeting today'); }");
  windmill = await startWindmill({ workspaceDir: dir, workers: 2 });
  target = { url: windmill.url, workspace: windmill.workspace, token: windmill.adminToken };
  await createFlow("f/t/greet_flow", {
    modules: [
      raw("a", "export async function main(name: string) { return name.toUpperCase(); }", { name: { type: "javascript", expr: "flow_input.name" } }),
      { id: "each", value: { type: "forloopflow", iterator: { type: "javascript", expr: "[1, 2]" }, parallel: false, modules: [raw("n", "export async function main(i: number) { return i * 10; }", { i: { type: "javascript", expr: "flow_input.iter.value" } })] } },
      raw("b", "export async function main(shout: string, tens: number[]) { return { shout, tens }; }", { shout: { type: "javascript", expr: "results.a" }, tens: { type: "javascript", expr: "results.each" } }),
    ],
  });
  await createFlow("f/t/failing_flow", { modules: [raw("boom", "export async function main() { throw new Error('flow step broke'); }")] });
});
afterAll(async () => {
  await windmill.close();
  await rm(dir, { recursive: true, force: true });
});

describe("wmill script run / flow run against the stand-in (windmill-cli script run, flow run)", () => {
  test("script run: streams the logs, prints the result, exits 0", async () => {
    const run = await runWmill(dir, ["script", "run", "f/t/greet", "-d", JSON.stringify({ name: "ada" })], target);
    expect(run.output).not.toContain("failed to get job updated");
    expect(run.output).toContain("greeting ada");
    expect(run.output).toContain('"greeting": "hello ada"');
    expect(run.code).toBe(0);
  });

  test("script run of a failing script: prints the error, exits 1", async () => {
    const run = await runWmill(dir, ["script", "run", "f/t/refuse", "-d", "{}"], target);
    expect(run.output).toContain('"message": "no greeting today"');
    expect(run.code).toBe(1);
  });

  test("script run -s prints only the result as one JSON line", async () => {
    const run = await runWmill(dir, ["script", "run", "f/t/greet", "-d", JSON.stringify({ name: "bo" }), "-s"], target);
    expect(run.output.trim()).toBe(JSON.stringify({ greeting: "hello bo" }));
    expect(run.code).toBe(0);
  });

  test("flow run: each step, loop iterations included, then the result; exits 0", async () => {
    const run = await runWmill(dir, ["flow", "run", "f/t/greet_flow", "-d", JSON.stringify({ name: "ada" })], target);
    expect(run.output).toContain("====== a ======");
    expect(run.output).toContain("====== each (iteration 1) ======");
    expect(run.output).toContain("Flow ran to completion");
    expect(run.output).toContain('"shout": "ADA"');
    expect(run.code).toBe(0);
  });

  test("workspace add: the stand-in's workspace id is accepted; another id is refused, listing the ones there are (workspaces.rs list_workspaces)", async () => {
    const added = await runWmill(dir, ["workspace", "add", "local", windmill.workspace, `${windmill.url}/`, "--token", windmill.adminToken]);
    expect(added.output).toContain(`Added workspace local for ${windmill.workspace}`);
    expect(added.code).toBe(0);
    const wrong = await runWmill(dir, ["workspace", "add", "local", "my-workspace", `${windmill.url}/`, "--token", windmill.adminToken]);
    expect(wrong.output).toContain(`- ${windmill.workspace} (name: ${windmill.workspace})`);
    expect(wrong.code).toBe(1);
  });

  test("flow run of a failing flow: the failed step, 'Flow failed', the error; exits 1", async () => {
    const run = await runWmill(dir, ["flow", "run", "f/t/failing_flow", "-d", "{}"], target);
    expect(run.output).toContain("====== boom ======");
    expect(run.output).toContain("Flow failed");
    expect(run.output).toContain("flow step broke");
    expect(run.code).toBe(1);
  });
});
