// A step inside a for-loop iteration refreshes expired credentials, with the trust policy the
// bundle generates, in a flow started through a webhook token scoped to that flow. Windmill
// runs each parallel iteration as its own flow job at `<flow>/forloop-<i>`
// (windmill-worker/src/worker_flow.rs); whether the OIDC flow_path claim carries that suffix
// is enterprise code, so both forms must work, and a policy without the loop pattern must not.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { setupDocuments } from "../../f/aws_oidc/lib/awsSetup.ts";
import { s3Client } from "../../f/aws_oidc/lib/s3.ts";
import { ensureBucket } from "../../local/demo/demoData.ts";
import type { FlowPathClaim } from "../../local/windmill/oidc.ts";
import { auditLeaksThenClose } from "../helpers/leaks.ts";
import { ACCOUNT_ID, DEMO_ROLE_ARN, REGION, startStack, trustPolicy, type PolicyDocument, type Stack } from "../helpers/testStack.ts";

const FLOW = "f/aws_oidc/loop_refresh_test";
const BUCKET = "loop-refresh";
const CREDENTIALS = "f/aws_oidc/loop_refresh_creds";

let stack: Stack;
let scopedToken: string;

async function api(path: string, body: unknown, token = stack.windmill.adminToken): Promise<Response> {
  return fetch(`${stack.windmill.url}/api${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

/** A role trusted by `policy`, and the aws_oidc resource naming it. */
async function roleResource(name: string, policy: PolicyDocument): Promise<string> {
  const roleArn = await stack.addRole({
    roleName: name,
    maxSessionDuration: 3600,
    assumeRolePolicyDocument: policy,
    permissionPolicies: [{ Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "s3:*", Resource: "*" }] }],
  });
  const path = `f/aws_oidc/${name.replace(/-/g, "_")}`;
  await api(`/w/${stack.windmill.workspace}/resources/create`, { path, resource_type: "aws_oidc", value: { roleArn, region: REGION } });
  return path;
}

/** assume_role, then one parallel iteration that ages the session and lists the bucket (forcing a refresh). */
function loopFlow(): Record<string, unknown> {
  const age = `
import wmill from "windmill-client";
export async function main(sts: string) {
  const path = "${CREDENTIALS}";
  const value = await wmill.ResourceService.getResourceValue({ workspace: process.env.WM_WORKSPACE!, path }) as Record<string, unknown>;
  await fetch(sts + "/_local/sessions/" + value.awsAccessKeyId + "/expire", { method: "POST" });
  await wmill.setResource({ ...value, expiration: new Date(Date.now() + 60_000).toISOString() }, path);
  return process.env.WM_FLOW_PATH;
}`;
  return {
    path: FLOW,
    summary: "a loop step refreshing the session",
    value: {
      modules: [
        { id: "assume", value: { type: "script", path: "f/aws_oidc/assume_role", input_transforms: {
          aws_oidc: { type: "javascript", expr: "flow_input.aws_oidc" }, save_to: { type: "static", value: CREDENTIALS }, force: { type: "static", value: true } } } },
        { id: "each", value: { type: "forloopflow", parallel: true, skip_failures: false, iterator: { type: "static", value: [0] }, modules: [
          { id: "age", value: { type: "rawscript", language: "bun", content: age, input_transforms: { sts: { type: "static", value: stack.sts.url } } } },
          { id: "list", value: { type: "script", path: "f/aws_oidc/s3_list_objects", input_transforms: {
            credentials: { type: "static", value: `$res:${CREDENTIALS}` }, bucket: { type: "static", value: BUCKET } } } },
        ] } },
      ],
    },
    schema: { $schema: "https://json-schema.org/draft/2020-12/schema", type: "object", properties: { aws_oidc: { type: "string" } }, required: ["aws_oidc"] },
  };
}

async function runThroughWebhook(awsOidc: string): Promise<{ status: number; body: unknown }> {
  const res = await api(`/w/${stack.windmill.workspace}/jobs/run_wait_result/f/${FLOW}`, { aws_oidc: `$res:${awsOidc}` }, scopedToken);
  return { status: res.status, body: await res.json() };
}

const assumeCalls = async () => (await stack.stsStats()).calls.AssumeRoleWithWebIdentity ?? 0;

beforeAll(async () => {
  stack = await startStack({ s3: true });
  // The bucket is made with the demo role, whose policy allows s3:*.
  await stack.runScript("f/aws_oidc/assume_role", { role_arn: DEMO_ROLE_ARN, region: REGION, save_to: "f/aws_oidc/loop_setup_creds" });
  stack.actAsJob("f/aws_oidc/loop_refresh_setup");
  await ensureBucket((await s3Client("f/aws_oidc/loop_setup_creds")).s3, BUCKET);
  expect((await api(`/w/${stack.windmill.workspace}/flows/create`, loopFlow())).ok).toBe(true);
  const token = await api("/users/tokens/create", { label: "loop webhook", scopes: [`jobs:run:flows:${FLOW}`] });
  scopedToken = await token.text();
});
afterAll(async () => {
  stack.windmill.faults.flowPathClaim = "iteration";
  await auditLeaksThenClose(stack);
});

describe("a loop step refreshing expired credentials", () => {
  test.each(["iteration", "root"] as FlowPathClaim[])("works with the generated trust policy when flow_path is the %s form", async (claim) => {
    stack.windmill.faults.flowPathClaim = claim;
    const { trust_policy } = setupDocuments({
      accountId: ACCOUNT_ID, baseUrl: stack.windmill.url, workspace: stack.windmill.workspace, scripts: [], flows: [FLOW], emails: [],
      audience: "sts.amazonaws.com", roleName: "", maxSessionDuration: 3600, s3: { bucket: BUCKET, prefix: "", write: false }, rds: null,
    });
    const awsOidc = await roleResource(`loop-generated-${claim}`, trust_policy as unknown as PolicyDocument);
    const before = await assumeCalls();
    const { status, body } = await runThroughWebhook(awsOidc);
    expect(status).toBe(200);
    expect(body).toEqual([[]]);
    // One mint by assume_role, one refresh by the list step inside the iteration.
    expect(await assumeCalls()).toBe(before + 2);
    const age = stack.windmill.jobs.findLast((j) => j.path.endsWith("/each/age") || j.stepId === "age");
    expect(age?.result).toBe(`${FLOW}/forloop-0`);
  });

  test("a trust policy without the loop pattern refuses the refresh when flow_path carries the suffix", async () => {
    stack.windmill.faults.flowPathClaim = "iteration";
    const flowOnly = trustPolicy(stack.provider, ACCOUNT_ID, `*::*::${FLOW}::${stack.windmill.workspace}`);
    const awsOidc = await roleResource("loop-flow-only", flowOnly);
    const { status, body } = await runThroughWebhook(awsOidc);
    expect(status).not.toBe(200);
    expect(JSON.stringify(body)).toContain("AccessDenied");
    expect(JSON.stringify(body)).toContain(`::${FLOW}/forloop-0::`);
  });
});
