// What an STS error means for the person who set up the role, and whether trying again
// can help. AWS's own messages say what failed; these add what to change.
import { AwsCallError } from "./awsError.ts";
import type { IdTokenClaims } from "./idToken.ts";

/** Error codes STS documents as transient for AssumeRole*. */
const TRANSIENT_CODES = new Set(["IDPCommunicationError", "Throttling", "ThrottlingException", "RequestLimitExceeded", "ServiceUnavailable", "InternalFailure"]);
/** Node/undici network failures worth one more try (connection refused or reset mid-call). */
const NETWORK_CODES = new Set(["ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT", "EAI_AGAIN", "UND_ERR_SOCKET", "ConnectionRefused"]);

/**
 * What STS answers when it could not fetch the issuer's JWKS (a network blip, a 5xx from
 * Windmill): an InvalidIdentityToken, not an IDPCommunicationError. aws-sdk-go-v2
 * (credentials/stscreds/web_identity_provider.go) retries every InvalidIdentityToken as
 * "a temporary error"; we retry only this one, because the others (audience, issuer,
 * signature) are set-up mistakes that no retry fixes.
 */
const KEY_FETCH_FAILED = "Couldn't retrieve verification key from your identity provider";

interface AwsErrorShape {
  name?: string;
  code?: string;
  Code?: string;
  message?: string;
  $fault?: string;
  $metadata?: { httpStatusCode?: number };
}

/** The STS error code: the SDK names modeled errors `<Code>Exception`. */
export function stsErrorCode(err: unknown): string {
  const e = (err ?? {}) as AwsErrorShape;
  const raw = e.Code ?? e.name ?? e.code ?? "Error";
  return raw.endsWith("Exception") && raw !== "ExpiredTokenException" ? raw.slice(0, -"Exception".length) : raw;
}

/** STS could not fetch the issuer's keys: transient, unlike every other InvalidIdentityToken. */
export function isKeyFetchFailure(err: unknown): boolean {
  return stsErrorCode(err) === "InvalidIdentityToken" && ((err as AwsErrorShape)?.message ?? "").includes(KEY_FETCH_FAILED);
}

export function isTransientStsError(err: unknown): boolean {
  const e = (err ?? {}) as AwsErrorShape & { cause?: { code?: string } };
  const status = e.$metadata?.httpStatusCode ?? 0;
  if (status >= 500 || isKeyFetchFailure(err)) return true;
  const code = stsErrorCode(err);
  return TRANSIENT_CODES.has(code) || NETWORK_CODES.has(e.code ?? "") || NETWORK_CODES.has(e.cause?.code ?? "") || NETWORK_CODES.has(code);
}

export interface StsCallContext {
  operation: "AssumeRoleWithWebIdentity" | "AssumeRole" | "GetCallerIdentity";
  roleArn: string;
  region: string;
  claims?: IdTokenClaims;
}

/** Wraps an STS failure in an error whose message says what to fix. */
export class StsError extends AwsCallError {
  override name = "StsError";
  constructor(operation: StsCallContext["operation"], code: string, problem: string, fix: string) {
    super("STS", operation, code, problem, fix);
  }
}

export function explainStsError(err: unknown, ctx: StsCallContext): StsError {
  const code = stsErrorCode(err);
  const awsMessage = ((err as AwsErrorShape)?.message ?? String(err)).trim();
  const head = `STS ${ctx.operation} for ${ctx.roleArn} failed with ${code}: ${awsMessage}`;
  return new StsError(ctx.operation, code, head, isKeyFetchFailure(err) ? keyFetchFix(ctx) : stsFix(code, ctx));
}

function keyFetchFix(ctx: StsCallContext): string {
  const issuer = ctx.claims?.iss ?? "<windmill base url>/api/oidc/";
  return `AWS could not reach ${issuer}jwks (it was retried). The Windmill base URL must be reachable from the internet over HTTPS with a publicly trusted certificate, and ${issuer}jwks must answer 200 with the keys.`;
}

function stsFix(code: string, ctx: StsCallContext): string {
  const claims = ctx.claims;
  const provider = claims ? claims.iss.replace(/^https?:\/\//, "") : "<windmill base url>/api/oidc/";
  switch (code) {
    case "AccessDenied":
      if (ctx.operation === "AssumeRole") {
        return `the chained role's trust policy must allow the first role as Principal AWS (and sts:ExternalId must match chain_external_id if it sets one), and the first role needs sts:AssumeRole on ${ctx.roleArn}.`;
      }
      return [
        roleArnCheck(ctx.roleArn),
        `Then the role's trust policy must allow sts:AssumeRoleWithWebIdentity for Principal Federated arn:aws:iam::<account>:oidc-provider/${provider}`,
        `and its conditions must match this job's token. Token claims (not secret): ${JSON.stringify(claimSummary(claims))}.`,
        `Compare them with the conditions on ${provider}:aud (StringEquals) and ${provider}:sub (StringLike, e.g. "*::*::f/aws_oidc/*::${claims?.workspace ?? "<workspace>"}").`,
      ].join(" ");
    case "InvalidIdentityToken":
      return `in IAM > Identity providers, the OIDC provider URL must be exactly ${claims?.iss ?? "<windmill base url>/api/oidc/"} and its audiences must include ${JSON.stringify(claims?.aud ?? [])} (the audience input of this script); AWS must be able to reach ${provider}.well-known/openid-configuration.`;
    case "ExpiredTokenException":
    case "ExpiredToken":
      return "the ID token expired before STS checked it. This script asks Windmill for a fresh token on every call; if it persists, the Windmill server's clock is off: check NTP on the Windmill host.";
    case "IDPRejectedClaim":
      return `the identity provider rejected a claim of this token; check the OIDC provider's configuration in IAM for ${provider}.`;
    case "IDPCommunicationError":
      return `AWS could not reach ${provider}.well-known/openid-configuration or its JWKS. The Windmill base URL must be public over HTTPS for AWS to fetch its keys.`;
    case "MalformedPolicyDocument":
      return "the session_policy input is not a valid IAM policy (check Version, Statement, Effect, Action and Resource).";
    case "PackedPolicyTooLarge":
      return "session_policy plus policy_arns are too large once packed by AWS: shorten the inline policy or pass fewer policy ARNs.";
    case "RegionDisabledException":
      return `STS is not activated in ${ctx.region}. Activate it in IAM > Account settings > Security Token Service, or use another region.`;
    case "ValidationError":
      return "check session_name (2-64 chars of [\\w+=,.@-]) and duration (900-43200 s, and at most the role's Maximum session duration in IAM; 1 h for a chained role).";
    case "InvalidClientTokenId":
    case "SignatureDoesNotMatch":
      return "the credentials used to sign this call are not valid: run assume_role again to mint a fresh session.";
    default:
      return `see the AWS STS documentation for ${code}; the role is ${ctx.roleArn} in ${ctx.region}.`;
  }
}

/**
 * STS answers AccessDenied alike for a role that does not exist and for a trust policy that
 * refuses the token (AssumeRoleWithWebIdentity API reference, Errors), so the ARN comes first.
 */
function roleArnCheck(roleArn: string): string {
  const match = /^arn:[\w-]+:iam::(\d{12}):role\/(?:.*\/)?([^/]+)$/.exec(roleArn);
  const [account, name] = match ? [match[1], match[2]] : ["<account>", roleArn];
  return `First check the role ARN ${roleArn}: role ${name} must exist in account ${account} (IAM > Roles in that account, or aws iam get-role --role-name ${name}); ` +
    "AWS answers a missing role, a typo in its name or a wrong account id exactly like a trust policy that refuses the job.";
}

function claimSummary(claims: IdTokenClaims | undefined): Record<string, unknown> {
  if (!claims) return {};
  return { iss: claims.iss, aud: claims.aud, sub: claims.sub, email: claims.email };
}
