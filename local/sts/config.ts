// The STS stand-in's config file: the account, the OIDC providers IAM trusts, the roles
// (trust and permission policies) and the managed policies session policies may name.
// Its types are declared here once; the launcher and the tests write files of this shape.
import { readFile } from "node:fs/promises";
import { StsErrorReply } from "./errors.ts";
import { policyProblems, type PolicyDocument } from "./iamPolicy.ts";
import { isRecord, isStringList } from "./json.ts";
import { ROLE_MAX_SESSION_BOUNDS } from "./limits.ts";

export type { PolicyDocument } from "./iamPolicy.ts";

export interface OidcProviderConfig {
  /** The issuer URL exactly as ID tokens carry it in `iss` (Windmill: `<base>/api/oidc/`). */
  url: string;
  clientIdList: string[];
}

export interface RoleConfig {
  roleName: string;
  maxSessionDuration: number;
  assumeRolePolicyDocument: PolicyDocument;
  permissionPolicies: PolicyDocument[];
}

export interface ManagedPolicyConfig {
  arn: string;
  document: PolicyDocument;
}

export interface StsConfig {
  accountId: string;
  oidcProviders: OidcProviderConfig[];
  roles: RoleConfig[];
  managedPolicies: ManagedPolicyConfig[];
}

function arrayField(config: Record<string, unknown>, key: string, problems: string[]): unknown[] {
  const value = config[key];
  if (Array.isArray(value)) return value;
  problems.push(`${key} must be an array`);
  return [];
}

/** Everything wrong with a config file, so a broken test fixture fails loudly rather than silently denying. */
function configProblems(value: unknown): string[] {
  if (!isRecord(value)) return ["the config must be a JSON object"];
  const problems: string[] = [];
  if (typeof value.accountId !== "string" || !/^\d{12}$/.test(value.accountId)) problems.push("accountId must be 12 digits");
  arrayField(value, "oidcProviders", problems).forEach((p, i) => {
    if (!isRecord(p) || typeof p.url !== "string" || !/^https?:\/\//.test(p.url)) problems.push(`oidcProviders[${i}].url must be an http(s) URL`);
    if (!isRecord(p) || !isStringList(p.clientIdList) || p.clientIdList.length === 0) problems.push(`oidcProviders[${i}].clientIdList must list audiences`);
  });
  arrayField(value, "roles", problems).forEach((r, i) => {
    if (!isRecord(r)) return void problems.push(`roles[${i}] must be an object`);
    if (typeof r.roleName !== "string" || !/^[\w+=,.@-]{1,64}$/.test(r.roleName)) problems.push(`roles[${i}].roleName is not a valid IAM role name`);
    const max = r.maxSessionDuration;
    if (typeof max !== "number" || !Number.isInteger(max) || max < ROLE_MAX_SESSION_BOUNDS.min || max > ROLE_MAX_SESSION_BOUNDS.max) {
      problems.push(`roles[${i}].maxSessionDuration must be an integer from 3600 to 43200`);
    }
    problems.push(...policyProblems(r.assumeRolePolicyDocument, "trust").map((p) => `roles[${i}].assumeRolePolicyDocument: ${p}`));
    arrayField(r, "permissionPolicies", problems).forEach((doc, j) =>
      problems.push(...policyProblems(doc, "identity").map((p) => `roles[${i}].permissionPolicies[${j}]: ${p}`)),
    );
  });
  arrayField(value, "managedPolicies", problems).forEach((m, i) => {
    if (!isRecord(m) || typeof m.arn !== "string" || !/^arn:aws:iam::(\d{12}|aws):policy\/.+/.test(m.arn)) problems.push(`managedPolicies[${i}].arn must be an IAM policy ARN`);
    if (isRecord(m)) problems.push(...policyProblems(m.document, "identity").map((p) => `managedPolicies[${i}].document: ${p}`));
  });
  return problems;
}

/** Read on every request, so a test can add a role by rewriting the file. */
export async function loadConfig(configPath: string): Promise<StsConfig> {
  let value: unknown;
  try {
    value = JSON.parse(await readFile(configPath, "utf8"));
  } catch (err) {
    throw new StsErrorReply("InternalFailure", `STS stand-in config ${configPath} is unreadable: ${(err as Error).message}`, 500, "Receiver");
  }
  const problems = configProblems(value);
  if (problems.length > 0) throw new StsErrorReply("InternalFailure", `STS stand-in config ${configPath} is invalid: ${problems.join("; ")}`, 500, "Receiver");
  return value as StsConfig;
}

export function roleArnOf(accountId: string, roleName: string): string {
  return `arn:aws:iam::${accountId}:role/${roleName}`;
}

/** IAM names a provider by its URL without the scheme; the same string prefixes its condition keys. */
export function providerKeyOf(url: string): string {
  return url.replace(/^https?:\/\//, "");
}

export function providerArnOf(accountId: string, url: string): string {
  return `arn:aws:iam::${accountId}:oidc-provider/${providerKeyOf(url)}`;
}

/** Role ARNs may carry a path (`role/team/name`); the role is named by the last segment. */
export function roleFromArn(arn: string): { accountId: string; roleName: string } | undefined {
  const match = /^arn:aws:iam::(\d{12}):role\/(?:[\w+=,.@-]+\/)*([\w+=,.@-]{1,64})$/.exec(arn);
  return match ? { accountId: match[1]!, roleName: match[2]! } : undefined;
}

export function findRole(config: StsConfig, roleArn: string): RoleConfig | undefined {
  const parsed = roleFromArn(roleArn);
  if (!parsed || parsed.accountId !== config.accountId) return undefined;
  return config.roles.find((r) => r.roleName === parsed.roleName);
}
