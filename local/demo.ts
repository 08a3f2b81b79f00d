// `npm run demo`: starts every stand-in, runs the bundle's main job through its webhook
// and prints what a person would see in Windmill, then stops everything.
// `npm run dev`: the same set-up, then keeps running and prints how to call it.
import { DEMO_ROLE_ARN, REGION, startLocalStack, type LocalStack } from "./stack.ts";

const DEMO_ROLE_RESOURCE = "f/aws_oidc/demo_role";
const CREDENTIALS_RESOURCE = "f/aws_oidc/aws_credentials";

async function api(stack: LocalStack, path: string, body: unknown): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${stack.windmill.url}/api/w/${stack.windmill.workspace}/${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${stack.windmill.adminToken}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: res.headers.get("content-type")?.includes("json") ? JSON.parse(text) : text };
}

async function setUp(stack: LocalStack): Promise<void> {
  const created = await api(stack, "resources/create", {
    path: DEMO_ROLE_RESOURCE,
    resource_type: "aws_oidc",
    value: { roleArn: DEMO_ROLE_ARN, region: REGION },
    description: "The demo role the local STS trusts for this workspace",
  });
  if (created.status >= 300) throw new Error(`creating ${DEMO_ROLE_RESOURCE}: ${JSON.stringify(created.body)}`);
}

async function runStep(stack: LocalStack, title: string, path: string, args: Record<string, unknown>): Promise<unknown> {
  console.log(`\n▶ ${title}  (POST /api/w/${stack.windmill.workspace}/jobs/run_wait_result/p/${path})`);
  const { status, body } = await api(stack, `jobs/run_wait_result/p/${path}`, args);
  console.log(JSON.stringify(body, null, 2));
  if (status !== 200) throw new Error(`${path} failed (HTTP ${status})`);
  return body;
}

async function stsCalls(stack: LocalStack): Promise<Record<string, number>> {
  return ((await (await fetch(`${stack.sts.url}/_local/stats`)).json()) as { calls: Record<string, number> }).calls;
}

function printConnectionInfo(stack: LocalStack): void {
  const { url, workspace, adminToken } = stack.windmill;
  console.log(`
Windmill stand-in  ${url}   (workspace ${workspace}, OIDC issuer ${stack.windmill.issuer})
STS stand-in       ${stack.sts.url}
Token              ${adminToken}

Assume the demo role and save the credentials:
  curl -s -X POST -H "Authorization: Bearer ${adminToken}" -H "Content-Type: application/json" \\
    -d '{"aws_oidc": "$res:${DEMO_ROLE_RESOURCE}"}' \\
    ${url}/api/w/${workspace}/jobs/run_wait_result/p/f/aws_oidc/assume_role
Check who AWS thinks you are:
  curl -s -X POST -H "Authorization: Bearer ${adminToken}" -H "Content-Type: application/json" \\
    -d '{"credentials": "$res:${CREDENTIALS_RESOURCE}"}' \\
    ${url}/api/w/${workspace}/jobs/run_wait_result/p/f/aws_oidc/whoami`);
}

async function demo(): Promise<void> {
  const stack = await startLocalStack();
  try {
    await setUp(stack);
    console.log(`Stand-ins up: Windmill ${stack.windmill.url}, STS ${stack.sts.url}`);
    await runStep(stack, "assume_role: Windmill OIDC token -> STS -> resource", "f/aws_oidc/assume_role", { aws_oidc: `$res:${DEMO_ROLE_RESOURCE}` });
    await runStep(stack, "whoami: GetCallerIdentity with the saved resource", "f/aws_oidc/whoami", { credentials: `$res:${CREDENTIALS_RESOURCE}` });
    await runStep(stack, "assume_role again: the saved session is reused", "f/aws_oidc/assume_role", { aws_oidc: `$res:${DEMO_ROLE_RESOURCE}` });
    console.log(`\nSTS calls made: ${JSON.stringify(await stsCalls(stack))}`);
  } finally {
    await stack.close();
  }
}

async function dev(): Promise<void> {
  const stack = await startLocalStack();
  await setUp(stack);
  printConnectionInfo(stack);
  console.log("\nRunning; Ctrl-C stops every stand-in.");
  const stop = () => stack.close().then(() => process.exit(0));
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

const mode = process.argv[2] ?? "demo";
if (mode !== "demo" && mode !== "dev") {
  console.error("usage: bun local/demo.ts demo|dev");
  process.exit(2);
}
await (mode === "dev" ? dev() : demo()).catch((err: unknown) => {
  console.error(`\n✖ ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
