// The parameters of the AssumeRole* calls, checked as STS checks them: every broken
// constraint reported at once, with the model's member names and AWS's wording.
import { roleFromArn } from "./config.ts";
import { validationError, Violations } from "./errors.ts";
import { ECHO_MAX_CHARS, MAX_DURATION_SECONDS, MAX_POLICY_ARNS, MAX_SESSION_POLICY_CHARS, MIN_DURATION_SECONDS } from "./limits.ts";

/** AWS writes this in place of a sensitive parameter's value in validation messages. */
const REDACTED = "*** Sensitive Data Redacted ***";

interface StringRule {
  param: string;
  /** The name AWS uses in validation messages (the model's member name). */
  member: string;
  required: boolean;
  min: number;
  max: number;
  pattern?: { regex: RegExp; text: string };
  sensitive?: boolean;
}

const ROLE_ARN_RULE: StringRule = { param: "RoleArn", member: "roleArn", required: true, min: 20, max: 2048 };
const ROLE_SESSION_NAME_RULE: StringRule = {
  param: "RoleSessionName", member: "roleSessionName", required: true, min: 2, max: 64,
  pattern: { regex: /^[\w+=,.@-]*$/, text: "[\\w+=,.@-]*" },
};
export const WEB_IDENTITY_TOKEN_RULE: StringRule = { param: "WebIdentityToken", member: "webIdentityToken", required: true, min: 4, max: 20_000, sensitive: true };
const POLICY_RULE: StringRule = {
  param: "Policy", member: "policy", required: false, min: 1, max: MAX_SESSION_POLICY_CHARS,
  pattern: { regex: /^[\u0009\u000A\u000D\u0020-\u00FF]+$/, text: "[\\u0009\\u000A\\u000D\\u0020-\\u00FF]+" },
};
export const EXTERNAL_ID_RULE: StringRule = {
  param: "ExternalId", member: "externalId", required: false, min: 2, max: 1224,
  pattern: { regex: /^[\w+=,.@:/-]*$/, text: "[\\w+=,.@:\\/-]*" },
};
const POLICY_ARN_RULE: Omit<StringRule, "param" | "member"> = { required: true, min: 20, max: 2048 };

function echo(value: string, rule: { sensitive?: boolean }): string {
  if (rule.sensitive) return REDACTED;
  return value.length > ECHO_MAX_CHARS ? `${value.slice(0, ECHO_MAX_CHARS)}...` : value;
}

function checkString(value: string | null, rule: Omit<StringRule, "param">, violations: Violations): string | undefined {
  if (value === null) {
    if (rule.required) violations.add(rule.member, null, "not be null");
    return undefined;
  }
  if (value.length < rule.min) violations.add(rule.member, echo(value, rule), `have length greater than or equal to ${rule.min}`);
  if (value.length > rule.max) violations.add(rule.member, echo(value, rule), `have length less than or equal to ${rule.max}`);
  if (rule.pattern && !rule.pattern.regex.test(value)) violations.add(rule.member, echo(value, rule), `satisfy regular expression pattern: ${rule.pattern.text}`);
  return value;
}

export function readString(params: URLSearchParams, rule: StringRule, violations: Violations): string | undefined {
  return checkString(params.get(rule.param), rule, violations);
}

function readDuration(params: URLSearchParams, violations: Violations): number | undefined {
  const raw = params.get("DurationSeconds");
  if (raw === null) return undefined;
  if (!/^-?\d+$/.test(raw)) {
    violations.add("durationSeconds", raw, "be an integer");
    return undefined;
  }
  const value = Number(raw);
  if (value < MIN_DURATION_SECONDS) violations.add("durationSeconds", raw, `have value greater than or equal to ${MIN_DURATION_SECONDS}`);
  if (value > MAX_DURATION_SECONDS) violations.add("durationSeconds", raw, `have value less than or equal to ${MAX_DURATION_SECONDS}`);
  return value;
}

/** awsQuery serializes a list of PolicyDescriptorType as `PolicyArns.member.N.arn` (N from 1). */
function readPolicyArns(params: URLSearchParams, violations: Violations): string[] {
  const byIndex: [number, string][] = [];
  for (const [key, value] of params) {
    const match = /^PolicyArns\.member\.(\d+)\.arn$/.exec(key);
    if (match) byIndex.push([Number(match[1]), value]);
  }
  const arns = byIndex.sort(([a], [b]) => a - b).map(([, arn]) => arn);
  arns.forEach((arn, i) => checkString(arn, { ...POLICY_ARN_RULE, member: `policyArns.${i + 1}.member.arn` }, violations));
  if (arns.length > MAX_POLICY_ARNS) violations.add("policyArns", `[${arns.join(", ")}]`, `have length less than or equal to ${MAX_POLICY_ARNS}`);
  return arns;
}

export interface AssumeRoleInput {
  roleArn: string;
  roleSessionName: string;
  durationSeconds?: number;
  policy?: string;
  policyArns: string[];
}

/** The parameters AssumeRole and AssumeRoleWithWebIdentity share; `extra` reads the rest into the same violation list. */
export function readAssumeRoleInput<T>(params: URLSearchParams, extra: (v: Violations) => T): AssumeRoleInput & T {
  const violations = new Violations();
  const roleArn = readString(params, ROLE_ARN_RULE, violations);
  const roleSessionName = readString(params, ROLE_SESSION_NAME_RULE, violations);
  const durationSeconds = readDuration(params, violations);
  const policy = readString(params, POLICY_RULE, violations);
  const policyArns = readPolicyArns(params, violations);
  const rest = extra(violations);
  violations.throwIfAny();
  if (!roleFromArn(roleArn!)) throw validationError("Request ARN is invalid");
  return { roleArn: roleArn!, roleSessionName: roleSessionName!, durationSeconds, policy, policyArns, ...rest };
}
