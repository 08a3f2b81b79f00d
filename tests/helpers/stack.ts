// Starts the Windmill and STS stand-ins for a test file, wired as they are in `npm run dev`:
// STS trusts the Windmill issuer, jobs reach STS through AWS_ENDPOINT_URL_STS.
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import wmill from "windmill-client";
import { startSts, type StsStandIn } from "../../local/sts.ts";
import { startWindmill, type WindmillStandIn } from "../../local/windmill.ts";

export const REPO_ROOT = resolve(import.meta.dir, "../..");
export const ACCOUNT_ID = "123456789012";
export const DEMO_ROLE = "windmill-demo";
export const DEMO_ROLE_ARN = `arn:aws:iam::${ACCOUNT_ID}:role/${DEMO_ROLE}`;
export const REGION = "us-east-1";

export type PolicyDocument = { Version: string; Statement: Record<string, unknown>[] };
export interface RoleConfig {
  roleName: string;
  maxSessionDuration: number;
  assumeRolePolicyDocument: PolicyDocument;
  permissionPolicies: PolicyDocument[];
}
export interface StsConfig {
  accountId: string;
  oidcProviders: { url: string; clientIdList: string[] }[];
  roles: RoleConfig[];
  managedPolicies: { arn: string; document: PolicyDocument }[];
}

export interface Stack {
  windmill: WindmillStandIn;
  sts: StsStandIn;
  configPath: string;
  /** The provider host/path as IAM writes it in condition keys: `127.0.0.1:PORT/api/oidc/`. */
  provider: string;
  config(): Promise<StsConfig>;
  writeConfig(config: StsConfig): Promise<void>;
  addRole(role: RoleConfig): Promise<string>;
  /** Runs a script as a Windmill job through the sync webhook endpoint. */
  runScript(path: string, args: Record<string, unknown>): Promise<{ status: number; result: any }>;
  /** Points this process's windmill-client at the stand-in as if running inside a job at `path`. */
  actAsJob(path: string | null, flowPath?: string | null): void;
  stsStats(): Promise<{ calls: Record<string, number> }>;
  stsSession(accessKeyId: string): Promise<{ secretAccessKey: string; sessionToken: string } | undefined>;
  stsFaults(body: Record<string, unknown>): Promise<void>;
  close(): Promise<void>;
}

export function trustPolicy(provider: string, accountId: string, sub: string, aud = "sts.amazonaws.com"): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [{
      Effect: "Allow",
      Action: "sts:AssumeRoleWithWebIdentity",
      Principal: { Federated: `arn:aws:iam::${accountId}:oidc-provider/${provider}` },
      Condition: { StringEquals: { [`${provider}:aud`]: aud }, StringLike: { [`${provider}:sub`]: sub } },
    }],
  };
}

export async function startStack(): Promise<Stack> {
  const dir = await mkdtemp(join(tmpdir(), "aws-oidc-test-"));
  const jobEnv: Record<string, string> = { AWS_REGION: REGION };
  const windmill = await startWindmill({ workspaceDir: REPO_ROOT, jobEnv });
  const provider = windmill.issuer.replace(/^https?:\/\//, "");
  const configPath = join(dir, "sts.json");
  const initial: StsConfig = {
    accountId: ACCOUNT_ID,
    oidcProviders: [{ url: windmill.issuer, clientIdList: ["sts.amazonaws.com"] }],
    roles: [{
      roleName: DEMO_ROLE,
      maxSessionDuration: 43_200,
      assumeRolePolicyDocument: trustPolicy(provider, ACCOUNT_ID, `*::*::*::${windmill.workspace}`),
      permissionPolicies: [{ Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: ["s3:*", "sts:AssumeRole"], Resource: "*" }] }],
    }],
    managedPolicies: [{
      arn: `arn:aws:iam::${ACCOUNT_ID}:policy/read-only`,
      document: { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "s3:Get*", Resource: "*" }] },
    }],
  };
  await writeFile(configPath, JSON.stringify(initial, null, 2));
  const sts = await startSts({ configPath });
  jobEnv.AWS_ENDPOINT_URL_STS = sts.url;
  await pushResourceType(windmill, "aws_sts_credentials");

  const config = async () => JSON.parse(await readFile(configPath, "utf8")) as StsConfig;
  const writeConfig = (c: StsConfig) => writeFile(configPath, JSON.stringify(c, null, 2));
  const stsJson = async (path: string, init?: RequestInit) => {
    const res = await fetch(`${sts.url}${path}`, init);
    return res.status === 404 ? undefined : res.json();
  };
  return {
    windmill, sts, configPath, provider, config, writeConfig,
    async addRole(role) {
      const c = await config();
      c.roles = [...c.roles.filter((r) => r.roleName !== role.roleName), role];
      await writeConfig(c);
      return `arn:aws:iam::${c.accountId}:role/${role.roleName}`;
    },
    async runScript(path, args) {
      const res = await fetch(`${windmill.url}/api/w/${windmill.workspace}/jobs/run_wait_result/p/${path}`, {
        method: "POST",
        headers: { authorization: `Bearer ${windmill.adminToken}`, "content-type": "application/json" },
        body: JSON.stringify(args),
      });
      return { status: res.status, result: await res.json() };
    },
    actAsJob(path, flowPath = null) {
      const token = windmill.createJobToken({ path, flowPath });
      Object.assign(process.env, {
        WM_TOKEN: token, WM_WORKSPACE: windmill.workspace, BASE_INTERNAL_URL: windmill.url,
        WM_JOB_PATH: path ?? "", WM_JOB_ID: crypto.randomUUID(), AWS_ENDPOINT_URL_STS: sts.url, AWS_REGION: REGION,
      });
      wmill.setClient(token, windmill.url);
    },
    stsStats: () => stsJson("/_local/stats"),
    stsSession: (id) => stsJson(`/_local/sessions/${id}`),
    async stsFaults(body) {
      await fetch(`${sts.url}/_local/faults`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    },
    async close() {
      await sts.close();
      await windmill.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Pushes a root `<name>.resource-type.yaml` the way `wmill sync push` does. */
async function pushResourceType(windmill: WindmillStandIn, name: string): Promise<void> {
  const spec = Bun.YAML.parse(await readFile(join(REPO_ROOT, `${name}.resource-type.yaml`), "utf8")) as { schema: unknown; description: string };
  const res = await fetch(`${windmill.url}/api/w/${windmill.workspace}/resources/type/create`, {
    method: "POST",
    headers: { authorization: `Bearer ${windmill.adminToken}`, "content-type": "application/json" },
    body: JSON.stringify({ name, schema: spec.schema, description: spec.description }),
  });
  if (!res.ok) throw new Error(`pushing resource type ${name}: ${res.status} ${await res.text()}`);
}
