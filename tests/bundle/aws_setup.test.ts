// The generated least-privilege policies, loaded into the STS stand-in: the allowed
// script gets in, every other path, workspace and audience is refused.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setupDocuments, type SetupInput } from "../../f/aws_oidc/lib/awsSetup.ts";
import { assumeRoleWithWindmillToken } from "../../f/aws_oidc/lib/assumeRole.ts";
import { s3Client } from "../../f/aws_oidc/lib/s3.ts";
import { InputError } from "../../f/aws_oidc/lib/validate.ts";
import { ensureBucket } from "../../local/demo/demoData.ts";
import { auditLeaksThenClose } from "../helpers/leaks.ts";
import { ACCOUNT_ID, REGION, REPO_ROOT, startStack, type PolicyDocument, type Stack } from "../helpers/testStack.ts";

const BASE: SetupInput = {
  accountId: ACCOUNT_ID, baseUrl: "https://windmill.example.com", workspace: "prod",
  scripts: [], flows: ["f/aws_oidc/s3_csv_to_rds"], emails: [], audience: "sts.amazonaws.com",
  roleName: "windmill-aws-oidc", maxSessionDuration: 3600,
  s3: { bucket: "data-lake", prefix: "incoming/", write: false },
  rds: { region: "us-east-1", dbiResourceId: "db-ABCDEFGHIJKL", dbUser: "app_user" },
};

type DeployedResource = { Type: string; Properties: Record<string, unknown> };

/**
 * What CloudFormation would create from the template given these parameters: resources whose
 * Condition is false are left out, and Fn::If picks its branch (Ref of a parameter is its value).
 */
function deployTemplate(template: Record<string, unknown>, parameters: Record<string, string>): Record<string, DeployedResource> {
  const params = template.Parameters as Record<string, { Default: string }>;
  const value = (name: string) => parameters[name] ?? params[name].Default;
  const conditions = Object.fromEntries(Object.entries(template.Conditions as Record<string, { "Fn::Equals": [{ Ref: string }, string] }>)
    .map(([name, c]) => [name, value(c["Fn::Equals"][0].Ref) === c["Fn::Equals"][1]]));
  const resolve = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(resolve);
    if (node === null || typeof node !== "object") return node;
    const record = node as Record<string, unknown>;
    if ("Fn::If" in record) {
      const [condition, whenTrue, whenFalse] = record["Fn::If"] as [string, unknown, unknown];
      return resolve(conditions[condition] ? whenTrue : whenFalse);
    }
    if ("Ref" in record && typeof record.Ref === "string" && record.Ref in params) return value(record.Ref);
    return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, resolve(v)]));
  };
  const resources = template.Resources as Record<string, DeployedResource & { Condition?: string }>;
  return Object.fromEntries(Object.entries(resources)
    .filter(([, r]) => r.Condition === undefined || conditions[r.Condition])
    .map(([name, { Condition: _, ...r }]) => [name, resolve(r) as DeployedResource]));
}

function trustPrincipal(deployed: Record<string, DeployedResource>): unknown {
  const trust = deployed.WindmillRole.Properties.AssumeRolePolicyDocument as { Statement: { Principal: { Federated: unknown } }[] };
  return trust.Statement[0].Principal.Federated;
}

describe("generated documents", () => {
  test("pin aud exactly and sub to the workspace, never a bare *", () => {
    const docs = setupDocuments({ ...BASE, scripts: ["f/aws_oidc/whoami"], emails: ["ops@example.com"] });
    const statement = docs.trust_policy.Statement[0] as { Condition: Record<string, Record<string, unknown>>; Principal: { Federated: string } };
    expect(statement.Principal.Federated).toBe("arn:aws:iam::123456789012:oidc-provider/windmill.example.com/api/oidc/");
    expect(statement.Condition.StringEquals).toEqual({
      "windmill.example.com/api/oidc/:aud": "sts.amazonaws.com",
      "windmill.example.com/api/oidc/:email": ["ops@example.com"],
    });
    const subs = statement.Condition.StringLike["windmill.example.com/api/oidc/:sub"] as string[];
    expect(subs).toEqual([
      "*::f/aws_oidc/whoami::no_flow::prod",
      "*::*::f/aws_oidc/s3_csv_to_rds::prod",
      "*::*::f/aws_oidc/s3_csv_to_rds/forloop-*::prod",
      "*::*::f/aws_oidc/s3_csv_to_rds/loop-*::prod",
    ]);
    for (const s of subs) expect(s.endsWith("::prod")).toBe(true);
  });

  test("grant one prefix of one bucket and one database user", () => {
    const { permission_policy } = setupDocuments(BASE);
    expect(permission_policy.Statement).toEqual([
      { Sid: "ListThePrefix", Effect: "Allow", Action: "s3:ListBucket", Resource: "arn:aws:s3:::data-lake", Condition: { StringLike: { "s3:prefix": ["incoming/*"] } } },
      { Sid: "ReadObjects", Effect: "Allow", Action: ["s3:GetObject"], Resource: "arn:aws:s3:::data-lake/incoming/*" },
      { Sid: "ConnectAsOneDatabaseUser", Effect: "Allow", Action: "rds-db:connect", Resource: "arn:aws:rds-db:us-east-1:123456789012:dbuser:db-ABCDEFGHIJKL/app_user" },
    ]);
  });

  test("a KMS key adds kms:Decrypt on it to read, and kms:GenerateDataKey too to write", () => {
    const kmsKeyArn = "arn:aws:kms:us-east-1:123456789012:key/mrk-1234abcd";
    const read = setupDocuments({ ...BASE, kmsKeyArn }).permission_policy.Statement;
    expect(read).toContainEqual({ Sid: "DecryptWithTheKey", Effect: "Allow", Action: ["kms:Decrypt"], Resource: kmsKeyArn });
    const write = setupDocuments({ ...BASE, kmsKeyArn, s3: { bucket: "data-lake", prefix: "", write: true } }).permission_policy.Statement;
    expect(write).toContainEqual({ Sid: "EncryptAndDecryptWithTheKey", Effect: "Allow", Action: ["kms:GenerateDataKey", "kms:Decrypt"], Resource: kmsKeyArn });
    expect(JSON.stringify(setupDocuments(BASE).permission_policy)).not.toContain("kms:");
  });

  test("the CloudFormation template creates the provider and the role", () => {
    const { cloudformation } = setupDocuments(BASE);
    const deployed = deployTemplate(cloudformation, {});
    expect(deployed.WindmillOidcProvider.Properties).toEqual({ Url: "https://windmill.example.com/api/oidc/", ClientIdList: ["sts.amazonaws.com"] });
    expect(deployed.WindmillRole.Type).toBe("AWS::IAM::Role");
    expect(deployed.WindmillRole.Properties.MaxSessionDuration).toBe(3600);
    expect(trustPrincipal(deployed)).toEqual({ Ref: "WindmillOidcProvider" });
  });

  // IAM holds each provider URL once per account: the second workspace of an instance
  // must reuse the provider and get a stack and a role of its own.
  test("two workspaces of one instance: the second reuses the provider, neither replaces the other", () => {
    const prod = setupDocuments({ ...BASE, workspace: "prod", roleName: "" });
    const staging = setupDocuments({ ...BASE, workspace: "staging", roleName: "" });
    const stackName = (docs: typeof prod) => /--stack-name (\S+)/.exec(docs.next_steps[0])![1];
    expect(stackName(prod)).toBe("windmill-oidc-prod");
    expect(stackName(staging)).toBe("windmill-oidc-staging");
    const providerArn = "arn:aws:iam::123456789012:oidc-provider/windmill.example.com/api/oidc/";
    expect(staging.next_steps[1]).toContain(`--parameter-overrides OidcProviderArn=${providerArn}`);

    const first = deployTemplate(prod.cloudformation, {});
    const second = deployTemplate(staging.cloudformation, { OidcProviderArn: providerArn });
    expect(Object.keys(first).sort()).toEqual(["WindmillOidcProvider", "WindmillRole"]);
    expect(Object.keys(second)).toEqual(["WindmillRole"]);
    expect(first.WindmillRole.Properties.RoleName).toBe("windmill-prod");
    expect(second.WindmillRole.Properties.RoleName).toBe("windmill-staging");
    expect(trustPrincipal(second)).toBe(providerArn);
    const subs = (docs: typeof prod) => JSON.stringify(docs.sub_patterns);
    expect(subs(prod)).not.toContain("::staging");
    expect(subs(staging)).not.toContain("::prod");
  });

  test("a provider URL with a port is refused with IAM's reason and the fix", () => {
    let error: unknown;
    try {
      setupDocuments({ ...BASE, baseUrl: "https://windmill.example.com:8443" });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).input).toBe("base_url");
    expect((error as Error).message).toContain("IAM refuses an OIDC provider URL with a port number");
    expect((error as Error).message).toContain("443");
  });

  test.each([
    [{ accountId: "1234" }, "account_id"],
    [{ workspace: "*" }, "workspace"],
    [{ workspace: "Prod Space" }, "workspace"],
    [{ flows: [], scripts: [] }, "scripts"],
    [{ flows: ["f/x/y::z"] }, "flows"],
    [{ baseUrl: "http://windmill.example.com" }, "base_url"],
    [{ baseUrl: "windmill" }, "base_url"],
    [{ s3: { bucket: "s3://data", prefix: "", write: false } }, "bucket"],
    [{ rds: { region: "us-east-1", dbiResourceId: "mydb", dbUser: "app" } }, "dbi_resource_id"],
    [{ rds: { region: "useast", dbiResourceId: "db-ABC", dbUser: "app" } }, "rds_region"],
    [{ maxSessionDuration: 13 * 3600 }, "max_session_hours"],
    [{ s3: null, rds: null }, "bucket"],
    [{ kmsKeyArn: "arn:aws:kms:us-east-1:123456789012:alias/data" }, "kms_key_arn"],
    [{ kmsKeyArn: "1234abcd-12ab-34cd-56ef-1234567890ab" }, "kms_key_arn"],
    [{ kmsKeyArn: "arn:aws:kms:us-east-1:123456789012:key/1234abcd", s3: null }, "kms_key_arn"],
  ] as [Partial<SetupInput>, string][])("bad input #%# is refused, naming the input", (patch, input) => {
    let error: unknown;
    try {
      setupDocuments({ ...BASE, ...patch });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).input).toBe(input);
  });
});

describe("the generated trust policy in the STS stand-in", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ s3: true });
  });
  afterAll(async () => {
    await auditLeaksThenClose(stack);
  });

  async function roleFor(name: string, patch: Partial<SetupInput>): Promise<string> {
    const docs = setupDocuments({ ...BASE, baseUrl: stack.windmill.url, workspace: stack.windmill.workspace, s3: { bucket: "demo", prefix: "", write: true }, rds: null, ...patch });
    return stack.addRole({
      roleName: name,
      maxSessionDuration: 3600,
      assumeRolePolicyDocument: docs.trust_policy as unknown as PolicyDocument,
      permissionPolicies: [docs.permission_policy as unknown as PolicyDocument],
    });
  }

  async function assume(roleArn: string, audience = "sts.amazonaws.com") {
    return stack.runScript("f/aws_oidc/assume_role", { role_arn: roleArn, region: REGION, audience, save_to: "f/aws_oidc/setup_creds", force: true });
  }

  test("the allowed script gets credentials", async () => {
    const role = await roleFor("allow-assume-role", { scripts: ["f/aws_oidc/assume_role"], flows: [] });
    const { status, result } = await assume(role);
    expect(status).toBe(200);
    expect(result.role_arn).toBe(role);
  });

  test("a wildcard inside the folder works, the folder stays pinned", async () => {
    const role = await roleFor("allow-folder", { scripts: ["f/aws_oidc/*"], flows: [] });
    expect((await assume(role)).status).toBe(200);
    const other = await roleFor("allow-other-folder", { scripts: ["f/etl/*"], flows: [] });
    expect((await assume(other)).result.error.message).toContain("AccessDenied");
  });

  test("a script allowed only inside a flow is refused when run alone", async () => {
    const role = await roleFor("allow-flow-only", { scripts: [], flows: ["f/aws_oidc/s3_csv_to_rds"] });
    const { status, result } = await assume(role);
    expect(status).toBe(422);
    expect(result.error.message).toContain("AccessDenied");
    expect(result.error.message).toContain("::f/aws_oidc/assume_role::no_flow::");
  });

  // Whether Windmill's OIDC flow_path claim carries a loop iteration's suffix is enterprise
  // code (worker_flow.rs names the iteration job <flow>/forloop-<i>): both must get in.
  test.each([
    ["f/aws_oidc/s3_csv_to_rds", true],
    ["f/aws_oidc/s3_csv_to_rds/forloop-3", true],
    ["f/aws_oidc/s3_csv_to_rds/loop-0", true],
    ["f/aws_oidc/s3_csv_to_rds_evil", false],
    ["f/aws_oidc/s3_csv_to_rds2", false],
    ["f/aws_oidc/s3_csv_to_rds/other", false],
    ["f/aws_oidc/other_flow", false],
  ] as const)("a flow step with flow_path %s: allowed %p", async (flowPath, allowed) => {
    const role = await roleFor("allow-flow-steps", { scripts: [], flows: ["f/aws_oidc/s3_csv_to_rds"] });
    stack.actAsJob("f/aws_oidc/rds_load_csv_from_s3", flowPath);
    const outcome = await assumeRoleWithWindmillToken({ roleArn: role, region: REGION, audience: "sts.amazonaws.com", sessionName: "loop-step", durationSeconds: 900 }, () => {})
      .then(() => "allowed", (err: Error) => err.message);
    if (allowed) expect(outcome).toBe("allowed");
    else expect(outcome).toContain("AccessDenied");
  });

  test("another workspace is refused", async () => {
    const role = await roleFor("allow-other-workspace", { workspace: "prod", scripts: ["f/aws_oidc/assume_role"], flows: [] });
    expect((await assume(role)).result.error.message).toContain("AccessDenied");
  });

  test("another audience is refused", async () => {
    const c = await stack.config();
    c.oidcProviders[0].clientIdList = ["sts.amazonaws.com", "other-audience"];
    await stack.writeConfig(c);
    const role = await roleFor("allow-aud", { scripts: ["f/aws_oidc/assume_role"], flows: [] });
    expect((await assume(role)).status).toBe(200);
    const { result } = await assume(role, "other-audience");
    expect(result.error.message).toContain("AccessDenied");
    expect(result.error.message).toContain('"aud":["other-audience"]');
  });

  test("the generated permission policy allows its bucket prefix and refuses every other", async () => {
    const role = await roleFor("allow-prefix", { scripts: ["f/aws_oidc/*"], flows: [], s3: { bucket: "lake", prefix: "incoming/", write: true } });
    const put = (creds: string, bucket: string, key: string) =>
      stack.runScript("f/aws_oidc/s3_put_object", { credentials: `$res:${creds}`, bucket, key, content: "x" });
    // The bucket must exist: created with the demo role, whose policy allows s3:*.
    await stack.runScript("f/aws_oidc/assume_role", { role_arn: "arn:aws:iam::123456789012:role/windmill-demo", region: REGION, save_to: "f/aws_oidc/demo_any" });
    stack.actAsJob("f/aws_oidc/setup_buckets");
    const { s3 } = await s3Client("f/aws_oidc/demo_any");
    await ensureBucket(s3, "lake");
    await ensureBucket(s3, "other-lake");
    const saved = await stack.runScript("f/aws_oidc/assume_role", { role_arn: role, region: REGION, save_to: "f/aws_oidc/prefix_creds" });
    expect(saved.status).toBe(200);
    expect((await put("f/aws_oidc/prefix_creds", "lake", "incoming/a.csv")).status).toBe(200);
    for (const [bucket, key] of [["lake", "elsewhere/a.csv"], ["other-lake", "incoming/a.csv"]]) {
      const denied = await put("f/aws_oidc/prefix_creds", bucket, key);
      expect(denied.status).toBe(422);
      expect(denied.result.error.message).toContain("AccessDenied");
      expect(denied.result.error.message).toContain(`s3:PutObject on arn:aws:s3:::${bucket}/${key}`);
    }
    const listed = await stack.runScript("f/aws_oidc/s3_list_objects", { credentials: "$res:f/aws_oidc/prefix_creds", bucket: "lake", prefix: "incoming/" });
    expect(listed.result).toHaveLength(1);
    const listedOutside = await stack.runScript("f/aws_oidc/s3_list_objects", { credentials: "$res:f/aws_oidc/prefix_creds", bucket: "lake", prefix: "elsewhere/" });
    expect(listedOutside.result.error.message).toContain("AccessDenied");
  });

  test("with kms_key_arn the generated role writes and reads SSE-KMS objects with that key; without it S3 names the kms action to add", async () => {
    const kmsKeyArn = `arn:aws:kms:${REGION}:${ACCOUNT_ID}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;
    await stack.runScript("f/aws_oidc/assume_role", { role_arn: "arn:aws:iam::123456789012:role/windmill-demo", region: REGION, save_to: "f/aws_oidc/demo_any" });
    stack.actAsJob("f/aws_oidc/setup_buckets");
    await ensureBucket((await s3Client("f/aws_oidc/demo_any")).s3, "demo");
    const putAndGet = async (role: string) => {
      await stack.runScript("f/aws_oidc/assume_role", { role_arn: role, region: REGION, save_to: "f/aws_oidc/kms_creds", force: true });
      const args = { credentials: "$res:f/aws_oidc/kms_creds", bucket: "demo", key: "kms/a.txt" };
      const put = await stack.runScript("f/aws_oidc/s3_put_object", { ...args, content: "x", sse: "aws:kms", kms_key_id: kmsKeyArn });
      return put.status === 200 ? (await stack.runScript("f/aws_oidc/s3_get_object", args)).result : put.result;
    };
    expect(await putAndGet(await roleFor("allow-kms", { scripts: ["f/aws_oidc/*"], flows: [], kmsKeyArn }))).toMatchObject({ body: "x" });
    const refused = await putAndGet(await roleFor("no-kms", { scripts: ["f/aws_oidc/*"], flows: [] }));
    expect(refused.error.message).toContain(`must allow kms:GenerateDataKey on ${kmsKeyArn}`);
  });
});

// rds-db:connect names an instance's DbiResourceId, an Aurora cluster's DbClusterResourceId or
// an RDS Proxy's id (RDS User Guide, "Creating and using an IAM policy for IAM database access").
describe("npm run aws:policy for an instance, an Aurora cluster and an RDS Proxy", () => {
  /** Runs the CLI as a user would; returns its exit code, stderr and the permission policy it wrote. */
  async function awsPolicy(dbiResourceId: string) {
    const out = await mkdtemp(join(tmpdir(), "aws-policy-"));
    try {
      const child = Bun.spawn(["bun", "tools/aws_policy.ts", "--account-id", ACCOUNT_ID, "--base-url", "https://windmill.example.com", "--workspace", "prod",
        "--flow", "f/aws_oidc/s3_csv_to_rds", "--rds-region", "us-east-1", "--dbi-resource-id", dbiResourceId, "--db-user", "app_user", "--out", out],
      { cwd: REPO_ROOT, stdout: "pipe", stderr: "pipe" });
      const [stderr, code] = await Promise.all([new Response(child.stderr).text(), child.exited]);
      const policy = code === 0 ? JSON.parse(await readFile(join(out, "permission-policy.json"), "utf8")) as PolicyDocument : undefined;
      return { code, stderr, policy };
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  }

  test.each([
    ["a DB instance", "db-ABCDEFGHIJKLMNOPQRSTUVWXY1"],
    ["an Aurora cluster", "cluster-ABCDEFGHIJKL01234"],
    ["an RDS Proxy", "prx-0123a01b12345c0ab"],
  ])("%s: the rds-db:connect ARN names its resource id", async (_what, id) => {
    const { code, policy } = await awsPolicy(id);
    expect(code).toBe(0);
    expect(policy!.Statement).toContainEqual({
      Sid: "ConnectAsOneDatabaseUser", Effect: "Allow", Action: "rds-db:connect", Resource: `arn:aws:rds-db:us-east-1:${ACCOUNT_ID}:dbuser:${id}/app_user`,
    });
  });

  test("a name instead of a resource id is refused, and the fix says where each form is found", async () => {
    const { code, stderr } = await awsPolicy("my-aurora-cluster");
    expect(code).toBe(2);
    expect(stderr).toContain('"my-aurora-cluster" is not a DB instance, Aurora cluster or RDS Proxy resource id');
    expect(stderr).toContain("DBInstances[].DbiResourceId");
    expect(stderr).toContain("DBClusters[].DbClusterResourceId");
    expect(stderr).toContain("the last part of the proxy's ARN");
  });
});
