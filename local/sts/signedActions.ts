// The STS calls signed with a role session's credentials: AssumeRole (role chaining, one hour
// at most, allowed by the target role's trust policy and, when that names the account rather
// than the caller, by the caller's own permissions too) and GetCallerIdentity.
import { authenticate } from "./auth.ts";
import { findRole } from "./config.ts";
import { accessDenied } from "./errors.ts";
import { evaluateSessionPermission, evaluateTrustPolicy, type ResourceGrant } from "./iamPolicy.ts";
import { EXTERNAL_ID_RULE, readAssumeRoleInput, readString } from "./params.ts";
import { callKeys, sessionKeys } from "./requestContext.ts";
import { resolveSessionPolicies } from "./sessionPolicies.ts";
import { assumedRoleUserXml, credentialsXml, mintSession, sessionDuration } from "./sessions.ts";
import type { StsCall } from "./state.ts";
import type { XmlFields } from "./xml.ts";

export async function assumeRole(call: StsCall): Promise<XmlFields> {
  const { config } = call;
  const caller = await authenticate(call);
  const input = readAssumeRoleInput(call.params, (v) => ({ externalId: readString(call.params, EXTERNAL_ID_RULE, v) }));
  const sessionPolicies = resolveSessionPolicies(input, config);
  const callerKeys = { ...sessionKeys(caller), ...callKeys(call) };
  const role = findRole(config, input.roleArn);
  const trust = role && evaluateTrustPolicy(role.assumeRolePolicyDocument, {
    action: "sts:AssumeRole",
    // A trust policy may name the role, the session, the account root or the bare account id.
    principal: { type: "AWS", ids: [caller.roleArn, caller.assumedRoleArn, `arn:aws:iam::${caller.accountId}:root`, caller.accountId] },
    conditionContext: {
      "sts:ExternalId": input.externalId,
      "sts:RoleSessionName": input.roleSessionName,
      ...callerKeys,
    },
  });
  const permission = trust?.allowed && evaluateSessionPermission(
    { rolePolicies: caller.rolePolicies, sessionPolicies: caller.sessionPolicies },
    { action: "sts:AssumeRole", resource: input.roleArn, conditionContext: callerKeys },
    resourceGrant(trust.namedIds ?? [], caller),
  );
  if (!role || !trust?.allowed || !permission || !permission.allowed) {
    throw accessDenied(`User: ${caller.assumedRoleArn} is not authorized to perform: sts:AssumeRole on resource: ${input.roleArn}`);
  }
  const session = mintSession(call.state, {
    accountId: config.accountId,
    role,
    roleSessionName: input.roleSessionName,
    // The caller is always a role session here, so this is role chaining.
    durationSeconds: sessionDuration(input.durationSeconds, role, true),
    sessionPolicies: sessionPolicies.documents,
  });
  return { Credentials: credentialsXml(session), AssumedRoleUser: assumedRoleUserXml(session), PackedPolicySize: sessionPolicies.packedPolicySize };
}

/**
 * Role chaining in one account. A trust policy that names the calling role's ARN or its
 * session's ARN grants by itself; one that names the account (`arn:aws:iam::<acct>:root` or
 * `<acct>`) delegates to the account, whose identity policies must then allow sts:AssumeRole
 * too (IAM User Guide, "Policy evaluation logic" for requests within one account, and "IAM
 * JSON policy elements: Principal", AWS account principals). "*" lists every principal, so it
 * is taken as naming the role; how session policies limit it is not documented, and the
 * stricter reading (they do) is used. A NotPrincipal Allow names nobody: the account's grant is needed.
 */
function resourceGrant(namedIds: string[], caller: { roleArn: string; assumedRoleArn: string }): ResourceGrant | undefined {
  if (namedIds.includes(caller.assumedRoleArn)) return "session";
  if (namedIds.includes(caller.roleArn) || namedIds.includes("*")) return "principal";
  return undefined;
}

/** Needs no permission at all: AWS answers it even under an explicit deny. */
export async function getCallerIdentity(call: StsCall): Promise<XmlFields> {
  const caller = await authenticate(call);
  return { Arn: caller.assumedRoleArn, UserId: caller.assumedRoleId, Account: caller.accountId };
}
