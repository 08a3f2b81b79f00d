// The global condition keys (aws:*) the STS stand-in fills in for a request, as IAM does for
// a role session: who the caller is, when, and from where (IAM User Guide, "AWS global
// condition context keys", and "Variables and tags", table "Principal key values").
import { sourceIpContext, sourceIpOf } from "../aws/sourceIp.ts";
import type { ConditionContext } from "./iamPatterns.ts";
import type { Session } from "./sessions.ts";
import type { StsCall } from "./state.ts";
import { isoSeconds } from "./xml.ts";

/** aws:CurrentTime (ISO 8601) and aws:EpochTime (seconds): in every request. */
export function timeKeys(now: Date): ConditionContext {
  return { "aws:CurrentTime": isoSeconds(now), "aws:EpochTime": String(Math.floor(now.getTime() / 1000)) };
}

/**
 * What a role session brings to every request signed with it. aws:username is absent: IAM
 * sets it for IAM users only ("Assumed role: (not present)"), so `${aws:username}` never
 * matches a role session. Roles here carry no tags, so no aws:PrincipalTag/* either.
 */
export function sessionKeys(session: Session): ConditionContext {
  return {
    // "role-id:caller-specified-role-name"
    "aws:userid": session.assumedRoleId,
    // For a role session this is the role's ARN, not the assumed-role session's.
    "aws:PrincipalArn": session.roleArn,
    "aws:PrincipalAccount": session.accountId,
    "aws:PrincipalType": "AssumedRole",
    // "present in the request context only when the principal uses temporary credentials"
    "aws:TokenIssueTime": isoSeconds(session.issuedAt),
  };
}

/** The keys of an STS call itself: its time, and the address it came from. */
export function callKeys(call: StsCall): ConditionContext {
  return { ...timeKeys(call.now), ...sourceIpContext(sourceIpOf(call.req.socket)) };
}
