// f/aws_oidc/doctor as a Windmill job on the stand-ins: each failure mode of the README's
// troubleshooting table is a broken setup whose row and fix the doctor must name, and a
// correct setup passes every check. Plus the offline trust-policy check: it agrees with
// the STS stand-in's evaluator, and its CLI (npm run aws:doctor) reads a policy file.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { assumeRoleAndSave } from "../../f/aws_oidc/lib/assumeRoleAndSave.ts";
import type { DoctorRow } from "../../f/aws_oidc/lib/doctorRow.ts";
import { s3Client } from "../../f/aws_oidc/lib/s3.ts";
import { checkTrustPolicy, suggestedSubPatterns, type PolicyClaims, type TrustPolicy } from "../../f/aws_oidc/lib/trustPolicyCheck.ts";
import { ensureBucket } from "../../local/demo/demoData.ts";
import { evaluateTrustPolicy, type PolicyDocument as StandInPolicy } from "../../local/sts/iamPolicy.ts";
import { auditLeaksThenClose } from "../helpers/leaks.ts";
import { ACCOUNT_ID, DB_USER, DBI_RESOURCE_ID, DEMO_ROLE_ARN, REGION, REPO_ROOT, startStack, trustPolicy, type PolicyDocument, type Stack } from "../helpers/testStack.ts";

const BUCKET = "doctor-data";
const PREFIX = "incoming/";
let stack: Stack;
let ws: string;

beforeAll(async () => {
  stack = await startStack({ s3: true, rds: true });
  ws = stack.windmill.workspace;
  stack.actAsJob("f/aws_oidc/doctor_test");
  await assumeRoleAndSave({ roleArn: DEMO_ROLE_ARN, region: REGION, saveTo: "f/aws_oidc/doctor_test_creds" }, () => {});
  const { s3 } = await s3Client("f/aws_oidc/doctor_test_creds");
  await ensureBucket(s3, BUCKET);
  await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: `${PREFIX}orders.csv`, Body: "id\n1\n" }));
  await stack.rds!.adminSql("create user doctor_no_grant; create user doctor_other; grant rds_iam to doctor_other");
});
afterAll(async () => {
  await auditLeaksThenClose(stack);
});

const allow = (Action: string, Resource: string, Condition?: Record<string, unknown>) => ({ Effect: "Allow", Action, Resource, ...(Condition ? { Condition } : {}) });
/** The least-privilege permissions f/aws_oidc/trust_policy writes: list one prefix, read it, connect as one user. */
function permissions(options: { listBucket?: boolean; dbUser?: string } = {}): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [
      ...(options.listBucket === false ? [] : [allow("s3:ListBucket", `arn:aws:s3:::${BUCKET}`, { StringLike: { "s3:prefix": [`${PREFIX}*`] } })]),
      allow("s3:GetObject", `arn:aws:s3:::${BUCKET}/${PREFIX}*`),
      allow("rds-db:connect", `arn:aws:rds-db:${REGION}:${ACCOUNT_ID}:dbuser:${DBI_RESOURCE_ID}/${options.dbUser ?? DB_USER}`),
    ],
  } as PolicyDocument;
}

const doctorSub = () => `*::f/aws_oidc/doctor::no_flow::${ws}`;

/** Adds a role; returns what the doctor takes: the aws_oidc resource value and the trust policy as pasted from IAM. */
async function role(name: string, options: { sub?: string; aud?: string; maxSessionDuration?: number; permissions?: PolicyDocument } = {}) {
  const trust = trustPolicy(stack.provider, ACCOUNT_ID, options.sub ?? doctorSub(), options.aud);
  const roleArn = await stack.addRole({ roleName: name, maxSessionDuration: options.maxSessionDuration ?? 3600, assumeRolePolicyDocument: trust, permissionPolicies: [options.permissions ?? permissions()] });
  return { aws_oidc: { roleArn, region: REGION }, trust_policy: JSON.stringify(trust, null, 2) };
}

function database(user = DB_USER) {
  const rds = stack.rds!;
  return { host: rds.host, port: rds.port, database: "postgres", user, tlsMode: "verify-full", caCert: rds.caCertPem };
}

async function doctor(args: Record<string, unknown>): Promise<DoctorRow[]> {
  const { status, result } = await stack.runScript("f/aws_oidc/doctor", args);
  expect(status).toBe(200);
  return result as DoctorRow[];
}

const rowOf = (rows: DoctorRow[], check: string) => rows.find((r) => r.check === check)!;
const results = (rows: DoctorRow[]) => Object.fromEntries(rows.map((r) => [r.check, r.result]));

describe("a correct setup", () => {
  test("passes every check, and shows the claims but never the token", async () => {
    const setup = await role("doctor-good");
    const rows = await doctor({ ...setup, bucket: BUCKET, prefix: PREFIX, database: database() });
    expect(results(rows)).toEqual({
      "ID token": "ok",
      "trust policy": "ok",
      AssumeRoleWithWebIdentity: "ok",
      "session duration": "ok",
      GetCallerIdentity: "ok",
      "S3 HeadBucket": "ok",
      "S3 ListObjectsV2 (1 key)": "ok",
      "RDS IAM connection": "ok",
      verdict: "ok",
    });
    expect(rowOf(rows, "ID token").detail).toContain(`"sub":"alice@example.com::f/aws_oidc/doctor::no_flow::${ws}"`);
    expect(rowOf(rows, "GetCallerIdentity").detail).toContain(":assumed-role/doctor-good/");
    // The generated policy limits s3:ListBucket to the prefix, which HeadBucket never satisfies.
    expect(rowOf(rows, "S3 HeadBucket").detail).toContain("s3:prefix condition");
    expect(rowOf(rows, "S3 ListObjectsV2 (1 key)").detail).toContain(`${PREFIX}orders.csv`);
    expect(rowOf(rows, "RDS IAM connection").detail).toMatch(new RegExp(`connected as ${DB_USER} .* verify-full: PostgreSQL \\d+`));
    for (const r of rows) expect(r.fix).toBe("");
  });
});

describe("each broken setup of the troubleshooting table: the doctor names the row and the fix", () => {
  test("wrong audience: the trust policy's aud condition, then STS's InvalidIdentityToken", async () => {
    const setup = await role("doctor-audience");
    const rows = await doctor({ ...setup, audience: "not-sts" });
    const policy = rowOf(rows, "trust policy");
    expect(policy.result).toBe("failed");
    expect(policy.detail).toContain(`${stack.provider}:aud: the token's aud "not-sts" does not satisfy "sts.amazonaws.com"`);
    expect(policy.fix).toContain('run with audience = "sts.amazonaws.com"');
    const sts = rowOf(rows, "AssumeRoleWithWebIdentity");
    expect(sts.result).toBe("failed");
    expect(sts.detail).toContain("InvalidIdentityToken");
    expect(sts.fix).toContain('its audiences must include ["not-sts"]');
    expect(rowOf(rows, "verdict")).toMatchObject({ result: "failed", detail: "first broken link: trust policy", fix: policy.fix });
    expect(rowOf(rows, "GetCallerIdentity")).toMatchObject({ result: "skipped", detail: "not run: AssumeRoleWithWebIdentity failed" });
  });

  test("wrong sub pattern: names the condition and the pattern that would match", async () => {
    const setup = await role("doctor-sub", { sub: `*::*::f/etl/nightly::${ws}` });
    const rows = await doctor(setup);
    const policy = rowOf(rows, "trust policy");
    expect(policy.result).toBe("failed");
    expect(policy.detail).toContain(`StringLike ${stack.provider}:sub: the token's sub "alice@example.com::f/aws_oidc/doctor::no_flow::${ws}"`);
    expect(policy.detail).toContain('its flow path is "f/etl/nightly", the token\'s "no_flow"');
    expect(policy.fix).toContain(`add "${doctorSub()}" to StringLike ${stack.provider}:sub`);
    expect(rowOf(rows, "AssumeRoleWithWebIdentity").detail).toContain("AccessDenied");
    expect(rowOf(rows, "verdict").detail).toBe("first broken link: trust policy");
  });

  test("wrong workspace: the sub pattern pins another workspace", async () => {
    const setup = await role("doctor-workspace", { sub: "*::f/aws_oidc/doctor::no_flow::prod" });
    const rows = await doctor(setup);
    const policy = rowOf(rows, "trust policy");
    expect(policy.result).toBe("failed");
    expect(policy.detail).toContain(`its workspace is "prod", the token's "${ws}"`);
    expect(policy.fix).toContain(`"${doctorSub()}"`);
    expect(rowOf(rows, "AssumeRoleWithWebIdentity")).toMatchObject({ result: "failed" });
    expect(rowOf(rows, "verdict").detail).toBe("first broken link: trust policy");
  });

  test("missing rds_iam grant: the RDS row says PAM authentication failed and names GRANT rds_iam", async () => {
    const setup = await role("doctor-no-grant", { permissions: permissions({ dbUser: "doctor_no_grant" }) });
    const rows = await doctor({ ...setup, database: database("doctor_no_grant") });
    const rds = rowOf(rows, "RDS IAM connection");
    expect(rds.result).toBe("failed");
    expect(rds.detail).toContain('failed with 28000: PAM authentication failed for user "doctor_no_grant"');
    expect(rds.fix).toContain('GRANT rds_iam TO "doctor_no_grant"');
    expect(stack.rds!.lastAuthFailures.at(-1)).toMatchObject({ user: "doctor_no_grant", reason: expect.stringContaining("rds_iam") });
    expect(rowOf(rows, "verdict")).toMatchObject({ detail: "first broken link: RDS IAM connection", fix: rds.fix });
  });

  test("wrong DB user: the role may connect as another user; the fix names the dbuser ARN to allow", async () => {
    const setup = await role("doctor-db-user");
    const rows = await doctor({ ...setup, database: database("doctor_other") });
    const rds = rowOf(rows, "RDS IAM connection");
    expect(rds.result).toBe("failed");
    expect(rds.detail).toContain("PAM authentication failed");
    expect(rds.fix).toContain(`rds-db:connect on arn:aws:rds-db:${REGION}:${ACCOUNT_ID}:dbuser:<resource id>/doctor_other`);
    expect(rds.fix).toContain("an Aurora cluster's DbClusterResourceId (cluster-…");
    expect(stack.rds!.lastAuthFailures.at(-1)).toMatchObject({ user: "doctor_other", reason: expect.stringContaining("rds-db:connect") });
    expect(rowOf(rows, "verdict").detail).toBe("first broken link: RDS IAM connection");
  });

  test("missing s3:ListBucket: HeadBucket and the list are refused, the fix names the action and the prefix condition", async () => {
    const setup = await role("doctor-no-list", { permissions: permissions({ listBucket: false }) });
    const rows = await doctor({ ...setup, bucket: BUCKET, prefix: PREFIX, database: database() });
    const head = rowOf(rows, "S3 HeadBucket");
    expect(head.result).toBe("failed");
    expect(head.fix).toContain(`s3:ListBucket on arn:aws:s3:::${BUCKET}`);
    const list = rowOf(rows, "S3 ListObjectsV2 (1 key)");
    expect(list.result).toBe("failed");
    expect(list.detail).toContain("AccessDenied");
    expect(list.fix).toContain(`s3:ListBucket on arn:aws:s3:::${BUCKET}`);
    expect(list.fix).toContain(`"s3:prefix": ["${PREFIX}*"]`);
    // S3 and RDS are independent links: the database is still checked.
    expect(rowOf(rows, "RDS IAM connection").result).toBe("ok");
    expect(rowOf(rows, "verdict").detail).toBe("first broken link: S3 HeadBucket");
  });

  test("duration above the role's maximum: 1h is tried, and the row says to lower it or raise the maximum", async () => {
    const setup = await role("doctor-duration", { maxSessionDuration: 3600 });
    const rows = await doctor({ ...setup, duration: "4h" });
    expect(rowOf(rows, "AssumeRoleWithWebIdentity")).toMatchObject({ result: "ok", detail: expect.stringContaining("with a 1h session") });
    const duration = rowOf(rows, "session duration");
    expect(duration.result).toBe("failed");
    expect(duration.detail).toContain("ValidationError");
    expect(duration.detail).toContain("MaxSessionDuration");
    expect(duration.detail).toContain("between 1h and 4h");
    expect(duration.fix).toContain("IAM > Roles > doctor-duration > Edit > Maximum session duration");
    expect(rowOf(rows, "GetCallerIdentity").result).toBe("ok");
    expect(rowOf(rows, "verdict").detail).toBe("first broken link: session duration");
  });
});

describe("the offline trust-policy check", () => {
  const provider = "windmill.example.com/api/oidc/";
  const base: PolicyClaims = { iss: `https://${provider}`, aud: ["sts.amazonaws.com"], sub: "alice@example.com::f/a/s::f/a/flow::prod", email: "alice@example.com" };
  const statement = (Condition: Record<string, Record<string, string | string[]>>, extra: Record<string, string> = {}) => ({
    Effect: "Allow", Action: "sts:AssumeRoleWithWebIdentity", Principal: { Federated: `arn:aws:iam::${ACCOUNT_ID}:oidc-provider/${provider}` }, Condition, ...extra,
  });
  const policies: [string, TrustPolicy][] = [
    ["aud and sub", { Statement: [statement({ StringEquals: { [`${provider}:aud`]: "sts.amazonaws.com" }, StringLike: { [`${provider}:sub`]: "*::*::f/a/flow::prod" } })] }],
    ["sub list, forloop", { Statement: [statement({ StringLike: { [`${provider}:sub`]: ["*::*::f/a/flow/forloop-*::prod", "*::f/a/s::no_flow::prod"] } })] }],
    ["email IfExists", { Statement: [statement({ StringEqualsIfExists: { [`${provider}:email`]: "bob@example.com" } })] }],
    ["ForAnyValue aud", { Statement: [statement({ "ForAnyValue:StringLike": { [`${provider}:aud`]: ["sts.*", "other"] } })] }],
    ["ForAllValues email", { Statement: [statement({ "ForAllValues:StringEquals": { [`${provider}:email`]: ["alice@example.com"] } })] }],
    ["StringNotLike sub", { Statement: [statement({ StringNotLike: { [`${provider}:sub`]: "*::staging" } })] }],
    ["key case", { Statement: [statement({ StringEquals: { [`${provider.toUpperCase()}:AUD`]: "sts.amazonaws.com" } })] }],
    ["Null email", { Statement: [statement({ Null: { [`${provider}:email`]: "true" } })] }],
    ["deny wins", { Statement: [statement({}), { ...statement({ StringLike: { [`${provider}:sub`]: "*::prod" } }), Effect: "Deny" }] }],
    ["other provider", { Statement: [{ ...statement({}), Principal: { Federated: `arn:aws:iam::${ACCOUNT_ID}:oidc-provider/other.example.com/api/oidc/` } }] }],
    ["wrong action", { Statement: [{ ...statement({}), Action: "sts:AssumeRole" }] }],
    ["action wildcard", { Statement: [{ ...statement({ StringLike: { [`${provider}:sub`]: "*::f/a/?::*::prod" } }), Action: "sts:AssumeRoleWith*" }] }],
    // Only AWS knows the caller's address: the doctor must not decide these (issue 21.11).
    ["source ip", { Statement: [statement({ StringEquals: { [`${provider}:aud`]: "sts.amazonaws.com" }, IpAddress: { "aws:SourceIp": "203.0.113.0/24" } })] }],
    ["deny outside ip", { Statement: [statement({ StringLike: { [`${provider}:sub`]: "*::prod" } }), { ...statement({ NotIpAddress: { "aws:SourceIp": "203.0.113.0/24" } }), Effect: "Deny" }] }],
    // Policy variables are substituted (2012-10-17 only), a default applies to a missing key, and a substituted value is literal.
    ["variable", { Version: "2012-10-17", Statement: [statement({ StringLike: { [`${provider}:sub`]: `\${${provider}:email}::*::prod` } })] }],
    ["variable, no Version", { Statement: [statement({ StringLike: { [`${provider}:sub`]: `\${${provider}:email}::*::prod` } })] }],
    ["variable default", { Version: "2012-10-17", Statement: [statement({ StringLike: { [`${provider}:sub`]: `\${${provider}:email, 'alice@example.com'}::*` } })] }],
    ["variable literal star", { Version: "2012-10-17", Statement: [statement({ StringLike: { [`${provider}:sub`]: "alice@example.com::f/a/s::${*}::prod" } })] }],
    // The provider URL is case-sensitive: a Principal naming it in other case is another provider.
    ["provider case", { Statement: [{ ...statement({}), Principal: { Federated: `arn:aws:iam::${ACCOUNT_ID}:oidc-provider/${provider.toUpperCase()}` } }] }],
  ];
  const claimVariants: [string, PolicyClaims][] = [
    ["flow step", base],
    ["loop iteration", { ...base, sub: "alice@example.com::f/a/s::f/a/flow/forloop-2::prod" }],
    ["script alone", { ...base, sub: "alice@example.com::f/a/s::no_flow::prod" }],
    ["other workspace", { ...base, sub: "alice@example.com::f/a/s::f/a/flow::staging" }],
    ["other audience", { ...base, aud: ["not-sts"] }],
    ["no email", { ...base, email: undefined }],
    ["bob", { ...base, email: "bob@example.com" }],
  ];

  /** The doctor's answer: refused, admitted, or left to AWS ("cannot check offline"). */
  const doctorSays = (policy: TrustPolicy, claims: PolicyClaims) => {
    const result = checkTrustPolicy(policy, claims, ACCOUNT_ID);
    if (result.result === "failed") return "refused";
    return result.detail.startsWith("cannot check offline: ") ? "undecided" : "admitted";
  };
  /** The stand-in's answer for a caller at `sourceIp`. */
  const standInSays = (policy: TrustPolicy, claims: PolicyClaims, sourceIp: string) => evaluateTrustPolicy(policy as StandInPolicy, {
    action: "sts:AssumeRoleWithWebIdentity",
    principal: { type: "Federated", ids: [`arn:aws:iam::${ACCOUNT_ID}:oidc-provider/${provider}`] },
    conditionContext: { [`${provider}:aud`]: claims.aud[0], [`${provider}:sub`]: claims.sub, [`${provider}:email`]: claims.email, "aws:SourceIp": sourceIp },
  }).allowed ? "admitted" : "refused";

  test("agrees with the STS stand-in's evaluator (local/sts/iamPolicy.ts) on every policy and token, and leaves to AWS what only AWS knows", () => {
    const decisions: string[] = [];
    for (const [policyName, policy] of policies) {
      for (const [claimsName, claims] of claimVariants) {
        const ours = doctorSays(policy, claims);
        // Inside and outside the policies' address range: a decided answer holds for both; an undecided one differs between them.
        const standIn = [standInSays(policy, claims, "203.0.113.7"), standInSays(policy, claims, "198.51.100.7")];
        const expected = standIn[0] === standIn[1] ? standIn[0] : "undecided";
        expect({ policyName, claimsName, ours }).toEqual({ policyName, claimsName, ours: expected });
        decisions.push(ours);
      }
    }
    // The corpus exercises all three answers.
    expect(new Set(decisions)).toEqual(new Set(["admitted", "refused", "undecided"]));
    expect(decisions.length).toBe(policies.length * claimVariants.length);
  });

  test("an undecidable condition is named, not passed; a substituted variable shows in the refusal", () => {
    const [, sourceIp] = policies.find(([name]) => name === "source ip")!;
    expect(checkTrustPolicy(sourceIp, base, ACCOUNT_ID)).toMatchObject({
      result: "warning",
      detail: "cannot check offline: aws:SourceIp, AWS will evaluate it: statement 0 admits this token's aud, sub and email only if it holds",
    });
    const [, variable] = policies.find(([name]) => name === "variable")!;
    const bob = checkTrustPolicy(variable, { ...base, email: "bob@example.com" }, ACCOUNT_ID);
    expect(bob.result).toBe("failed");
    expect(bob.detail).toContain(`does not satisfy "bob@example.com::*::prod"`);
  });

  test("suggests the patterns f/aws_oidc/trust_policy writes, with the loop variants for a flow", () => {
    expect(suggestedSubPatterns("a@x::f/a/s::no_flow::prod")).toEqual(["*::f/a/s::no_flow::prod"]);
    expect(suggestedSubPatterns("a@x::f/a/s::f/a/flow/forloop-3::prod")).toEqual([
      "*::*::f/a/flow::prod", "*::*::f/a/flow/forloop-*::prod", "*::*::f/a/flow/loop-*::prod",
    ]);
  });

  test("warns when the admitting pattern is not pinned to a workspace", () => {
    const loose = checkTrustPolicy({ Statement: [statement({ StringLike: { [`${provider}:sub`]: "*" } })] }, base, ACCOUNT_ID);
    expect(loose.result).toBe("warning");
    expect(loose.detail).toContain("not pinned to a workspace");
    expect(loose.fix).toContain('"*::*::f/a/flow::prod"');
  });

  test("the CLI reads a policy file, prints the rows and exits 1 on a failed check", async () => {
    const dir = await mkdtemp(join(tmpdir(), "aws-doctor-"));
    try {
      const file = join(dir, "trust.json");
      await writeFile(file, JSON.stringify({ Version: "2012-10-17", ...policies[0][1] }, null, 2));
      const run = async (...args: string[]) => {
        const child = Bun.spawn(["bun", "tools/aws_doctor.ts", "--trust-policy", file, ...args], { cwd: REPO_ROOT, stdout: "pipe", stderr: "pipe" });
        const [out, code] = await Promise.all([new Response(child.stdout).text(), child.exited]);
        return { out, code };
      };
      const refused = await run("--sub", "alice@example.com::f/a/s::f/a/flow::staging");
      expect(refused.code).toBe(1);
      expect(refused.out).toMatch(/^check +\| result +\| detail/);
      expect(refused.out).toMatch(/trust policy +\| failed/);
      // The detail column, read down the wrapped lines.
      const details = refused.out.split("\n").map((line) => line.split(" | ")[2]?.trim() ?? "").join(" ");
      expect(details).toContain('its workspace is "prod", the token\'s "staging"');
      const admitted = await run("--sub", "alice@example.com::f/a/s::f/a/flow::prod", "--aud", "sts.amazonaws.com");
      expect(admitted.code).toBe(0);
      expect(admitted.out).toMatch(/trust policy +\| ok/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
