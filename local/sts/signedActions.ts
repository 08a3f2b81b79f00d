// The STS calls signed with a role session's credentials: AssumeRole (role chaining, one
// hour at most, allowed by the caller's permissions AND the target role's trust policy)
// and GetCallerIdentity.
import { authenticate } from "./auth.ts";
import { findRole } from "./config.ts";
import { accessDenied } from "./errors.ts";
import { evaluateSessionPermission, evaluateTrustPolicy } from "./iamPolicy.ts";
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
  const permission = evaluateSessionPermission(
    { rolePolicies: caller.rolePolicies, sessionPolicies: caller.sessionPolicies },
    { action: "sts:AssumeRole", resource: input.roleArn, conditionContext: callerKeys },
  );
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
  if (!permission.allowed || !role || !trust?.allowed) {
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

/** Needs no permission at all: AWS answers it even under an explicit deny. */
export async function getCallerIdentity(call: StsCall): Promise<XmlFields> {
  const caller = await authenticate(call);
  return { Arn: caller.assumedRoleArn, UserId: caller.assumedRoleId, Account: caller.accountId };
}
