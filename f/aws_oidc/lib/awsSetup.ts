// Least-privilege AWS setup for this bundle: the IAM trust policy (who may assume the
// role), the permission policy (what the session may do) and a CloudFormation template
// creating the OIDC provider and the role. Pure functions: no AWS call.
import type { AdmittedRunnable } from "./admitted.ts";
import { checkKnownRegion } from "./awsRegions.ts";
import { InputError } from "./validate.ts";

export interface SetupInput {
  accountId: string;
  /** Windmill's public base URL, e.g. https://windmill.example.com */
  baseUrl: string;
  workspace: string;
  /** Scripts allowed to assume the role when run on their own (not as a flow step). */
  scripts: string[];
  /** Flows any of whose steps may assume the role. */
  flows: string[];
  /** Optional: only jobs run by these users. */
  emails: string[];
  audience: string;
  /** The IAM role's name; empty: `windmill-<workspace>`, so each workspace gets its own role. */
  roleName: string;
  /** Session length the role allows (seconds, 3600-43200). */
  maxSessionDuration: number;
  s3: { bucket: string; prefix: string; write: boolean } | null;
  /** Optional: the KMS key the bucket's objects are encrypted with (SSE-KMS); empty: none. */
  kmsKeyArn?: string;
  rds: { region: string; dbiResourceId: string; dbUser: string } | null;
  /** Why each script and flow is admitted, for the result; absent: "listed". */
  admitted?: AdmittedRunnable[];
  /** Where the CloudFormation template is written, for the deploy command; absent: windmill-oidc.json. */
  templatePath?: string;
}

/** The aws_oidc resource the shipped schedule refresh_credentials reads: create it at exactly this path. */
export const ROLE_RESOURCE_PATH = "f/aws_oidc/aws_role";

export type PolicyDocument = { Version: "2012-10-17"; Statement: Record<string, unknown>[] };

const ACCOUNT_PATTERN = /^\d{12}$/;
/** Windmill workspace ids: lowercase letters, digits, - and _. */
const WORKSPACE_PATTERN = /^[a-z0-9_-]+$/;
const PATH_PATTERN = /^(u|f)\/[\w-]+\/[\w\-/*]+$/;
const DBI_PATTERN = /^db-[A-Z0-9]+$/;
/** A KMS key ARN (multi-Region keys are key/mrk-…). IAM authorizes KMS actions on the key, never on an alias. */
const KMS_KEY_ARN_PATTERN = /^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[A-Za-z0-9-]+$/;

/** The local stand-ins serve plain http on a port; AWS itself can never reach these hosts. */
const LOOPBACK_HOSTS = ["127.0.0.1", "localhost"];
/** IAM role names: 1-64 characters of [\w+=,.@-] (IAM API reference, CreateRole). */
const ROLE_NAME_PATTERN = /^[\w+=,.@-]{1,64}$/;

/** The provider as IAM writes it in ARNs and condition keys: host + path, no scheme. */
export function providerId(baseUrl: string): string {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw new InputError("base_url", `${JSON.stringify(baseUrl)} is not a URL`, "Use Windmill's public URL, e.g. https://windmill.example.com");
  }
  const loopback = LOOPBACK_HOSTS.includes(url.hostname);
  if (url.protocol !== "https:" && !loopback) {
    throw new InputError("base_url", "it is not https", "AWS fetches the OIDC keys over HTTPS only: use Windmill's public https URL");
  }
  // IAM CreateOpenIDConnectProvider: "The URL should not contain a port number."
  if (url.port && !loopback) {
    throw new InputError("base_url", `it has a port (:${url.port}), and IAM refuses an OIDC provider URL with a port number`,
      "Serve Windmill on the default https port 443 (e.g. behind a reverse proxy or load balancer) and give that URL, without a port");
  }
  const path = url.pathname.replace(/\/+$/, "");
  // The issuer (<base>/api/oidc/) is a natural thing to paste; appending /api/oidc again would
  // give a provider no token names.
  if (path.endsWith("/api/oidc")) {
    const base = `${url.protocol}//${url.host}${path.slice(0, -"/api/oidc".length)}`;
    throw new InputError("base_url", `${JSON.stringify(baseUrl)} ends in /api/oidc, the OIDC issuer's path, which is added to the base URL`,
      `Give Windmill's base URL without it: ${base}`);
  }
  return `${url.host}${path}/api/oidc/`;
}

/** The role's name: the one given, or one per workspace so two workspaces never share a role. */
export function roleNameFor(input: Pick<SetupInput, "roleName" | "workspace">): string {
  return input.roleName || `windmill-${input.workspace}`;
}

/** The CloudFormation stack's name, one per workspace: deploying a second never replaces the first. */
export function stackNameFor(input: Pick<SetupInput, "workspace">): string {
  return `windmill-oidc-${input.workspace.replace(/_/g, "-")}`;
}

export function checkSetupInput(input: SetupInput): SetupInput {
  if (!ACCOUNT_PATTERN.test(input.accountId)) throw new InputError("account_id", `${JSON.stringify(input.accountId)} is not a 12-digit account id`, "Copy it from the AWS console's account menu");
  if (!WORKSPACE_PATTERN.test(input.workspace)) {
    throw new InputError("workspace", `${JSON.stringify(input.workspace)} is not a workspace id`, "Use the workspace id (lowercase, as in the URL), never a wildcard");
  }
  if (input.scripts.length + input.flows.length === 0) {
    throw new InputError("scripts", "no script or flow is allowed", "List the scripts and/or flows that may assume the role, e.g. f/aws_oidc/s3_csv_to_rds");
  }
  for (const [name, paths] of [["scripts", input.scripts], ["flows", input.flows]] as const) {
    for (const p of paths) {
      if (!PATH_PATTERN.test(p) || p.includes("::")) {
        throw new InputError(name, `${JSON.stringify(p)} is not a Windmill path`, "Use f/<folder>/<name> (a * inside the name is allowed, e.g. f/aws_oidc/*)");
      }
    }
  }
  if (input.s3 && !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(input.s3.bucket)) {
    throw new InputError("bucket", `${JSON.stringify(input.s3.bucket)} is not a bucket name`, "Use the bucket's name, without s3://");
  }
  if (!Number.isInteger(input.maxSessionDuration) || input.maxSessionDuration < 3600 || input.maxSessionDuration > 43_200) {
    throw new InputError("max_session_hours", `${input.maxSessionDuration / 3600} h is out of range`, "IAM roles allow 1 to 12 hours");
  }
  if (!ROLE_NAME_PATTERN.test(roleNameFor(input))) {
    throw new InputError("role_name", `${JSON.stringify(roleNameFor(input))} is not an IAM role name`, "Use 1 to 64 letters, digits and +=,.@_- (or leave it empty for windmill-<workspace>)");
  }
  if (input.kmsKeyArn) {
    if (!input.s3) throw new InputError("kms_key_arn", "a KMS key is given but no bucket", "Give the bucket whose objects the key encrypts, or clear kms_key_arn");
    if (!KMS_KEY_ARN_PATTERN.test(input.kmsKeyArn)) {
      throw new InputError("kms_key_arn", `${JSON.stringify(input.kmsKeyArn)} is not a KMS key ARN`,
        "Use the key's ARN, arn:aws:kms:<region>:<account>:key/<key id>, from the KMS console (a policy cannot name a key by its alias); " +
        "for the AWS managed key aws/s3 give none: its key policy already lets the account use it through S3");
    }
  }
  if (input.rds) checkKnownRegion("rds_region", input.rds.region);
  if (input.rds && !DBI_PATTERN.test(input.rds.dbiResourceId)) {
    throw new InputError("dbi_resource_id", `${JSON.stringify(input.rds.dbiResourceId)} is not a DbiResourceId`,
      "Use the instance's Resource ID (db-XXXX) from the RDS console's Configuration tab, not its name");
  }
  return input;
}

/**
 * How Windmill names the flow jobs of loop iterations: parallel iterations run at
 * `<flow>/forloop-<i>`, sequential ones at `<flow>/loop-<i>`
 * (windmill-worker/src/worker_flow.rs, where the iterations are pushed). A step inside an
 * iteration has that job as its parent; whether its OIDC `flow_path` claim keeps the suffix
 * is decided in Windmill's enterprise code, so both forms are allowed, and nothing else.
 */
const LOOP_ITERATION_SUFFIXES = ["/forloop-*", "/loop-*"];

/**
 * `sub` = `<email>::<script path>::<flow path>::<workspace>`. A script alone runs as
 * `*::<script>::no_flow::<ws>`; any step of a flow as `*::*::<flow>::<ws>`, or inside a loop
 * iteration as `*::*::<flow>/forloop-<i>::<ws>`. Each pattern ends with the workspace, so no
 * other workspace of the instance can match, and the flow path is followed by `::` or the
 * iteration suffix, so `<flow>2` or `<flow>_x` cannot.
 */
export function subPatterns(input: Pick<SetupInput, "scripts" | "flows" | "workspace">): string[] {
  return [
    ...input.scripts.map((s) => `*::${s}::no_flow::${input.workspace}`),
    ...input.flows.flatMap((f) => [f, ...LOOP_ITERATION_SUFFIXES.map((suffix) => f + suffix)].map((path) => `*::*::${path}::${input.workspace}`)),
  ];
}

export function trustPolicy(input: SetupInput): PolicyDocument {
  const provider = providerId(input.baseUrl);
  const equals: Record<string, string | string[]> = { [`${provider}:aud`]: input.audience };
  if (input.emails.length) equals[`${provider}:email`] = input.emails;
  return {
    Version: "2012-10-17",
    Statement: [{
      Sid: "WindmillJobsOfThisWorkspace",
      Effect: "Allow",
      Action: "sts:AssumeRoleWithWebIdentity",
      Principal: { Federated: `arn:aws:iam::${input.accountId}:oidc-provider/${provider}` },
      Condition: { StringEquals: equals, StringLike: { [`${provider}:sub`]: subPatterns(input) } },
    }],
  };
}

export function permissionPolicy(input: SetupInput): PolicyDocument {
  const statements: Record<string, unknown>[] = [];
  if (input.s3) {
    const { bucket, prefix, write } = input.s3;
    const objects = `arn:aws:s3:::${bucket}/${prefix}*`;
    statements.push({
      Sid: "ListThePrefix",
      Effect: "Allow",
      Action: "s3:ListBucket",
      Resource: `arn:aws:s3:::${bucket}`,
      ...(prefix ? { Condition: { StringLike: { "s3:prefix": [`${prefix}*`] } } } : {}),
    });
    statements.push({
      Sid: write ? "ReadWriteObjects" : "ReadObjects",
      Effect: "Allow",
      Action: write ? ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"] : ["s3:GetObject"],
      Resource: objects,
    });
    // S3 calls KMS as the caller for SSE-KMS objects: kms:Decrypt to read them (and to upload
    // each part of a multipart upload), kms:GenerateDataKey to write them (S3 User Guide,
    // "Permissions for SSE-KMS"; S3 API reference, CreateMultipartUpload).
    if (input.kmsKeyArn) {
      statements.push({
        Sid: write ? "EncryptAndDecryptWithTheKey" : "DecryptWithTheKey",
        Effect: "Allow",
        Action: write ? ["kms:GenerateDataKey", "kms:Decrypt"] : ["kms:Decrypt"],
        Resource: input.kmsKeyArn,
      });
    }
  }
  if (input.rds) {
    const { region, dbiResourceId, dbUser } = input.rds;
    statements.push({
      Sid: "ConnectAsOneDatabaseUser",
      Effect: "Allow",
      Action: "rds-db:connect",
      Resource: `arn:aws:rds-db:${region}:${input.accountId}:dbuser:${dbiResourceId}/${dbUser}`,
    });
  }
  if (statements.length === 0) throw new InputError("bucket", "the role would have no permission", "Give a bucket (and prefix) and/or a database user");
  return { Version: "2012-10-17", Statement: statements };
}

/**
 * A template creating the role, and the OIDC provider unless one exists. IAM holds each
 * provider URL once per account (CreateOpenIDConnectProvider fails for a second), so the
 * second workspace of an instance passes the existing provider's ARN as OidcProviderArn.
 */
export function cloudFormationTemplate(input: SetupInput): Record<string, unknown> {
  const roleName = roleNameFor(input);
  const trust = trustPolicy(input);
  const [statement] = trust.Statement;
  const federated = { "Fn::If": ["CreateOidcProvider", { Ref: "WindmillOidcProvider" }, { Ref: "OidcProviderArn" }] };
  return {
    AWSTemplateFormatVersion: "2010-09-09",
    Description: `Windmill OIDC role ${roleName} for workspace ${input.workspace} (no stored AWS keys)`,
    Parameters: {
      OidcProviderArn: {
        Type: "String",
        Default: "",
        Description: `The ARN of the account's existing IAM OIDC provider for https://${providerId(input.baseUrl)} (another workspace of this instance made it); empty creates it`,
      },
    },
    Conditions: { CreateOidcProvider: { "Fn::Equals": [{ Ref: "OidcProviderArn" }, ""] } },
    Resources: {
      WindmillOidcProvider: {
        Type: "AWS::IAM::OIDCProvider",
        Condition: "CreateOidcProvider",
        Properties: { Url: `https://${providerId(input.baseUrl)}`, ClientIdList: [input.audience] },
      },
      WindmillRole: {
        Type: "AWS::IAM::Role",
        Properties: {
          RoleName: roleName,
          MaxSessionDuration: input.maxSessionDuration,
          AssumeRolePolicyDocument: { ...trust, Statement: [{ ...statement, Principal: { Federated: federated } }] },
          Policies: [{ PolicyName: `${roleName}-permissions`, PolicyDocument: permissionPolicy(input) }],
        },
      },
    },
    Outputs: { RoleArn: { Value: { "Fn::GetAtt": ["WindmillRole", "Arn"] } } },
  };
}

export interface SetupDocuments {
  provider_url: string;
  /** Each admitted script and flow, with why. */
  admitted: AdmittedRunnable[];
  sub_patterns: string[];
  trust_policy: PolicyDocument;
  permission_policy: PolicyDocument;
  cloudformation: Record<string, unknown>;
  next_steps: string[];
}

export function setupDocuments(raw: SetupInput): SetupDocuments {
  const input = checkSetupInput(raw);
  const admitted = input.admitted ?? [
    ...input.scripts.map((path) => ({ path, kind: "script" as const, why: "listed" })),
    ...input.flows.map((path) => ({ path, kind: "flow" as const, why: "listed" })),
  ];
  return {
    provider_url: `https://${providerId(input.baseUrl)}`,
    admitted,
    sub_patterns: subPatterns(input),
    trust_policy: trustPolicy(input),
    permission_policy: permissionPolicy(input),
    cloudformation: cloudFormationTemplate(input),
    next_steps: nextSteps(input),
  };
}

/**
 * What to do after generating, in an order that works on a fresh workspace: a session must be
 * saved (by assume_role, or by a flow's first step) before anything reads it, and only what
 * the policy admits can save one.
 */
function nextSteps(input: SetupInput): string[] {
  const provider = providerId(input.baseUrl);
  const roleArn = `arn:aws:iam::${input.accountId}:role/${roleNameFor(input)}`;
  const region = input.rds?.region || "<region, e.g. us-east-1>";
  const resource = `$res:${ROLE_RESOURCE_PATH}`;
  const steps = [
    `Deploy: aws cloudformation deploy --template-file ${input.templatePath ?? "windmill-oidc.json"} --stack-name ${stackNameFor(input)} --capabilities CAPABILITY_NAMED_IAM`,
    `  If the account already has the OIDC provider https://${provider} (another workspace of this instance created it), add --parameter-overrides OidcProviderArn=arn:aws:iam::${input.accountId}:oidc-provider/${provider}`,
    ...(input.rds ? [`In the database: CREATE USER ${input.rds.dbUser}; GRANT rds_iam TO ${input.rds.dbUser};`] : []),
    `In Windmill: create the aws_oidc resource ${ROLE_RESOURCE_PATH} = {"roleArn": "${roleArn}", "region": "${region}"} (the schedule refresh_credentials reads that path)`,
  ];
  if (input.scripts.includes("f/aws_oidc/doctor")) {
    steps.push(`Check the setup: run f/aws_oidc/doctor with aws_oidc = ${resource} (paste the trust policy into trust_policy)`);
  }
  if (input.scripts.includes("f/aws_oidc/assume_role")) {
    steps.push(`Save a session: run f/aws_oidc/assume_role with aws_oidc = ${resource} (it saves f/aws_oidc/aws_credentials)`);
    steps.push("Then run f/aws_oidc/whoami with credentials = $res:f/aws_oidc/aws_credentials to see who AWS says the session is");
  } else if (input.flows.length) {
    steps.push(`Run an admitted flow (${input.flows.join(", ")}) with aws_oidc = ${resource}: its first step saves the session its other steps use`);
  }
  return steps;
}
