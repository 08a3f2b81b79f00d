// What is pushed is what the policy admits (issue 19, points 1 and 2): the repo pushed to the
// stand-in, `npm run aws:policy` run as a user runs it, its trust and permission policies loaded
// into the STS stand-in as the workspace's role, and the workspace holding only the resources the
// docs tell users to create. Every enabled schedule then runs without error, every schedule's
// target and every flow step (loop iterations included) gets a session, and a script outside
// the set is refused.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { assumeRoleWithWindmillToken } from "../../f/aws_oidc/lib/assumeRole.ts";
import { auditLeaksThenClose } from "../helpers/leaks.ts";
import { ACCOUNT_ID, DB_USER, DBI_RESOURCE_ID, REGION, REPO_ROOT, startStack, type PolicyDocument, type Stack } from "../helpers/testStack.ts";

/** What the docs tell users to create: the role (the refresh_credentials schedule reads it) and, for RDS, the database. */
const ROLE_RESOURCE = "f/aws_oidc/aws_role";
const DATABASE_RESOURCE = "f/aws_oidc/orders_db";
const CREDENTIALS = "f/aws_oidc/aws_credentials";
/** Not windmill-<workspace>: that is the stand-in's demo role, which this must not replace. */
const SHIPPED_ROLE = "windmill-shipped-policy";

interface ScheduleFile {
  path: string;
  script_path: string;
  is_flow: boolean;
  enabled: boolean;
  args: Record<string, unknown>;
}

interface FlowModule {
  id: string;
  value: { type: string; path?: string; parallel?: boolean; modules?: FlowModule[] };
}

let stack: Stack;
let out: string;
let roleArn: string;

async function shippedSchedules(): Promise<ScheduleFile[]> {
  const dir = join(REPO_ROOT, "f/aws_oidc");
  const files = (await readdir(dir)).filter((f) => f.endsWith(".schedule.yaml")).sort();
  return Promise.all(files.map(async (f) => ({ path: `f/aws_oidc/${f.slice(0, -".schedule.yaml".length)}`, ...parse(await readFile(join(dir, f), "utf8")) })));
}

async function shippedFlows(): Promise<{ path: string; modules: FlowModule[]; failure?: FlowModule }[]> {
  const dir = join(REPO_ROOT, "f/aws_oidc");
  const flows = (await readdir(dir)).filter((f) => f.endsWith("__flow")).sort();
  return Promise.all(flows.map(async (f) => {
    const flow = parse(await readFile(join(dir, f, "flow.yaml"), "utf8")) as { value: { modules: FlowModule[]; failure_module?: FlowModule } };
    return { path: `f/aws_oidc/${f.slice(0, -"__flow".length)}`, modules: flow.value.modules, failure: flow.value.failure_module };
  }));
}

async function api(method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(`${stack.windmill.url}/api/w/${stack.windmill.workspace}/${path}`, {
    method, headers: { authorization: `Bearer ${stack.windmill.adminToken}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

async function webIdentityCalls(): Promise<number> {
  return (await stack.stsStats()).calls.AssumeRoleWithWebIdentity ?? 0;
}

/** Runs a schedule's target with its args, as the schedule's tick does (windmill-queue schedule.rs pushes exactly that job). */
async function runAsScheduled(schedule: ScheduleFile) {
  const kind = schedule.is_flow ? "f" : "p";
  const res = await api("POST", `jobs/run_wait_result/${kind}/${schedule.script_path}`, schedule.args);
  return { status: res.status, result: await res.json() };
}

/** Makes the saved session look expired, so the next job that uses it must mint under its own sub. */
async function expireSavedSession(): Promise<void> {
  const saved = (await (await api("GET", `resources/get/${CREDENTIALS}`)).json()) as { value: Record<string, unknown> };
  const res = await api("POST", `resources/update_value/${CREDENTIALS}`, { value: { ...saved.value, expiration: new Date(Date.now() - 60_000).toISOString() } });
  expect(res.status).toBe(200);
}

/** Mints as a job at `path` (a step of `flowPath`) would: the job's own OIDC token against the role. */
async function mintAs(path: string, flowPath: string | null): Promise<string> {
  stack.actAsJob(path, flowPath);
  return assumeRoleWithWindmillToken({ roleArn, region: REGION, audience: "sts.amazonaws.com", sessionName: "shipped-policy", durationSeconds: 900 }, () => {})
    .then(() => "session", (err: Error) => err.message);
}

const policyArgs = () => [
  "--account-id", ACCOUNT_ID, "--base-url", stack.windmill.url, "--workspace", stack.windmill.workspace,
  "--bucket", "demo-data", "--s3-write", "--db-user", DB_USER, "--dbi-resource-id", DBI_RESOURCE_ID, "--rds-region", REGION,
  "--role-name", SHIPPED_ROLE,
];

beforeAll(async () => {
  stack = await startStack({ rds: true });
  out = await mkdtemp(join(tmpdir(), "shipped-policy-"));
  const run = Bun.spawn([process.execPath, "tools/aws_policy.ts", ...policyArgs(), "--out", out], { cwd: REPO_ROOT, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(run.stdout).text(), new Response(run.stderr).text(), run.exited]);
  if (code !== 0) throw new Error(`aws:policy failed (${code}): ${stdout}${stderr}`);
  const read = async (name: string) => JSON.parse(await readFile(join(out, name), "utf8")) as PolicyDocument;
  roleArn = await stack.addRole({
    roleName: SHIPPED_ROLE,
    maxSessionDuration: 3600,
    assumeRolePolicyDocument: await read("trust-policy.json"),
    permissionPolicies: [await read("permission-policy.json")],
  });
  const created = await api("POST", "resources/create", { path: ROLE_RESOURCE, resource_type: "aws_oidc", value: { roleArn, region: REGION } });
  expect(created.status).toBe(201);
});

afterAll(async () => {
  await auditLeaksThenClose(stack);
  await rm(out, { recursive: true, force: true });
});

describe("a fresh push with only the documented resources", () => {
  test("every enabled schedule runs once without error (those needing more ship disabled)", async () => {
    const enabled = (await shippedSchedules()).filter((s) => s.enabled);
    expect(enabled.map((s) => s.path)).toContain("f/aws_oidc/refresh_credentials");
    for (const schedule of enabled) {
      const { status, result } = await runAsScheduled(schedule);
      expect({ schedule: schedule.path, status, error: result?.error?.message }).toEqual({ schedule: schedule.path, status: 200, error: undefined });
    }
  });
});

describe("the generated trust policy in the STS stand-in", () => {
  // By path: refresh_credentials saves the session refresh_rds_postgresql reads.
  test("each shipped schedule's target, run as the schedule runs it with an expired session, mints its own", async () => {
    const created = await api("POST", "resources/create", {
      path: DATABASE_RESOURCE, resource_type: "aws_rds_iam_postgres",
      value: { host: stack.rds!.host, port: stack.rds!.port, database: "postgres", user: DB_USER, region: REGION, tlsMode: "verify-full", caCert: stack.rds!.caCertPem },
    });
    expect(created.status).toBe(201);
    const schedules = await shippedSchedules();
    expect(schedules.map((s) => s.script_path)).toEqual(["f/aws_oidc/assume_role", "f/aws_oidc/rds_iam_postgresql_resource"]);
    for (const schedule of schedules) {
      if ((await api("GET", `resources/exists/${CREDENTIALS}`).then((r) => r.json())) === true) await expireSavedSession();
      const before = await webIdentityCalls();
      const { status, result } = await runAsScheduled(schedule);
      expect({ schedule: schedule.path, status, error: result?.error?.message }).toEqual({ schedule: schedule.path, status: 200, error: undefined });
      expect({ schedule: schedule.path, minted: (await webIdentityCalls()) - before }).toEqual({ schedule: schedule.path, minted: 1 });
    }
  });

  test("each step of each shipped flow gets a session, inside loop iterations too", async () => {
    const flows = await shippedFlows();
    expect(flows.map((f) => f.path)).toEqual(["f/aws_oidc/rds_to_s3_export", "f/aws_oidc/s3_csv_to_rds"]);
    const outcomes: Record<string, string> = {};
    for (const flow of flows) {
      const steps = flow.failure ? [...flow.modules, flow.failure] : flow.modules;
      for (const step of steps) {
        if (step.value.type === "forloopflow") {
          // worker_flow.rs: each iteration is a flow job at <flow>/forloop-<i> (parallel) or <flow>/loop-<i>.
          for (const body of step.value.modules ?? []) {
            for (const iteration of ["forloop-0", "forloop-7", "loop-0", "loop-3"]) {
              outcomes[`${flow.path}/${iteration} ${body.id}`] = await mintAs(body.value.path ?? `${flow.path}/${body.id}`, `${flow.path}/${iteration}`);
            }
          }
        } else {
          outcomes[`${flow.path} ${step.id}`] = await mintAs(step.value.path ?? `${flow.path}/${step.id}`, flow.path);
        }
      }
    }
    expect(Object.keys(outcomes)).toContain("f/aws_oidc/s3_csv_to_rds/forloop-7 load");
    for (const [step, outcome] of Object.entries(outcomes)) expect({ step, outcome }).toEqual({ step, outcome: "session" });
  });

  test("a script outside the set is refused, alone and as a job needing a new session", async () => {
    expect(await mintAs("f/aws_oidc/s3_list_objects", null)).toContain("AccessDenied");
    expect(await mintAs("f/aws_oidc/rds_load_csv_from_s3", "f/aws_oidc/other_flow")).toContain("AccessDenied");
    await expireSavedSession();
    const { status, result } = await stack.runScript("f/aws_oidc/whoami", { credentials: `$res:${CREDENTIALS}` });
    expect(status).toBe(422);
    expect(result.error.message).toContain("AccessDenied");
    expect(result.error.message).toContain(`::f/aws_oidc/whoami::no_flow::${stack.windmill.workspace}`);
  });

  test("f/aws_oidc/trust_policy, run in the workspace with the same inputs, writes the same trust policy", async () => {
    const { status, result } = await stack.runScript("f/aws_oidc/trust_policy", {
      account_id: ACCOUNT_ID, windmill_base_url: stack.windmill.url, workspace: stack.windmill.workspace,
      bucket: "demo-data", s3_write: true, db_user: DB_USER, dbi_resource_id: DBI_RESOURCE_ID, rds_region: REGION, role_name: SHIPPED_ROLE,
    });
    expect(status).toBe(200);
    expect(result.trust_policy).toEqual(JSON.parse(await readFile(join(out, "trust-policy.json"), "utf8")));
    expect(result.admitted).toContainEqual({ path: "f/aws_oidc/assume_role", kind: "script", why: "target of schedule f/aws_oidc/refresh_credentials" });
  });
});
