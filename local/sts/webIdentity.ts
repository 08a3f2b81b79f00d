// AssumeRoleWithWebIdentity: the ID token is verified through its issuer's OIDC discovery
// document and JWKS (signature, expiry, audience, subject), then the role's trust policy
// decides with the token's claims as condition keys.
import { compactVerify, createLocalJWKSet, decodeJwt, errors as joseErrors, type JSONWebKeySet, type JWTPayload } from "jose";
import { findRole, providerArnOf, providerKeyOf, type StsConfig } from "./config.ts";
import { accessDenied, invalidIdentityToken, StsErrorReply, verificationKeyUnavailable } from "./errors.ts";
import type { ConditionContext } from "./iamPatterns.ts";
import { evaluateTrustPolicy } from "./iamPolicy.ts";
import { isRecord } from "./json.ts";
import { ID_TOKEN_ALGORITHMS, ID_TOKEN_EXPIRY_GRACE_SECONDS, ID_TOKEN_MAX_CLOCK_SKEW_SECONDS, IDP_TIMEOUT_MS } from "./limits.ts";
import { readAssumeRoleInput, readString, WEB_IDENTITY_TOKEN_RULE } from "./params.ts";
import { callKeys } from "./requestContext.ts";
import { resolveSessionPolicies } from "./sessionPolicies.ts";
import { assumedRoleUserXml, credentialsXml, mintSession, sessionDuration } from "./sessions.ts";
import type { StsCall } from "./state.ts";
import type { XmlFields } from "./xml.ts";

interface VerifiedIdentity {
  providerUrl: string;
  audience: string;
  subject: string;
  claims: JWTPayload;
}

function decodeClaims(token: string): JWTPayload {
  try {
    return decodeJwt(token);
  } catch {
    throw invalidIdentityToken("The ID Token provided is not a valid JWT. (You may see this error if you sent an Access Token)");
  }
}

/**
 * Whatever stops STS from getting the keys (no connection, a 5xx, a 404, a body that is not
 * JSON) comes back as InvalidIdentityToken "Couldn't retrieve verification key…", HTTP 400:
 * that is what AWS answers when it cannot fetch an issuer's JWKS (GitLab's and AWS re:Post's
 * reports of unreachable issuers; aws-sdk-go-v2's web identity provider retries it), not the
 * IDPCommunicationError its API reference suggests.
 */
async function fetchIdpJson(url: string): Promise<unknown> {
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(IDP_TIMEOUT_MS), redirect: "error" });
  } catch {
    throw verificationKeyUnavailable();
  }
  if (!response.ok) throw verificationKeyUnavailable();
  try {
    return await response.json();
  } catch {
    throw verificationKeyUnavailable();
  }
}

/** OIDC discovery: `<issuer>/.well-known/openid-configuration` names the JWKS. */
async function fetchIssuerKeys(issuer: string): Promise<JSONWebKeySet> {
  const discovery = await fetchIdpJson(`${issuer.replace(/\/+$/, "")}/.well-known/openid-configuration`);
  if (!isRecord(discovery) || typeof discovery.jwks_uri !== "string") throw verificationKeyUnavailable();
  if (discovery.issuer !== issuer) {
    throw invalidIdentityToken(`The issuer in your identity provider's discovery document (${String(discovery.issuer)}) does not match the token's issuer (${issuer})`);
  }
  const jwks = await fetchIdpJson(discovery.jwks_uri);
  if (!isRecord(jwks) || !Array.isArray(jwks.keys)) throw verificationKeyUnavailable();
  return jwks as unknown as JSONWebKeySet;
}

async function verifySignature(token: string, jwks: JSONWebKeySet): Promise<void> {
  try {
    await compactVerify(token, createLocalJWKSet(jwks), { algorithms: ID_TOKEN_ALGORITHMS });
  } catch (err) {
    if (err instanceof joseErrors.JWSSignatureVerificationFailed) {
      throw invalidIdentityToken("The token's signature does not verify with any key of your identity provider's JWKS");
    }
    if (err instanceof joseErrors.JOSEAlgNotAllowed) throw invalidIdentityToken(`The token is signed with an unsupported algorithm; use one of ${ID_TOKEN_ALGORITHMS.join(", ")}`);
    throw verificationKeyUnavailable();
  }
}

/** Expired is past exp plus IAM's five-minute clock-skew window (limits.ts ID_TOKEN_EXPIRY_GRACE_SECONDS). */
function checkExpiry(claims: JWTPayload, now: Date): void {
  if (typeof claims.exp !== "number") throw invalidIdentityToken("The token has no exp claim");
  const nowSeconds = Math.floor(now.getTime() / 1000);
  if (nowSeconds >= claims.exp + ID_TOKEN_EXPIRY_GRACE_SECONDS) {
    throw new StsErrorReply("ExpiredTokenException", `Token expired: current date/time ${nowSeconds} must be before the expiration date/time ${claims.exp}`);
  }
}

/**
 * A token stamped in the future (iat or nbf past now + the skew AWS tolerates) is refused: a
 * clock that runs ahead would otherwise stretch a token's life. AWS's exact wording for this
 * case is not published; the code is the one it uses for tokens it cannot accept.
 */
function checkNotInFuture(claims: JWTPayload, now: Date): void {
  const latest = Math.floor(now.getTime() / 1000) + ID_TOKEN_MAX_CLOCK_SKEW_SECONDS;
  for (const claim of ["iat", "nbf"] as const) {
    const value = claims[claim];
    if (typeof value === "number" && value > latest) {
      throw invalidIdentityToken(`The token's ${claim} (${value}) lies in the future: it is not valid before then. Check the identity provider's clock`);
    }
  }
}

/** Windmill sends `aud` as an array of one string; other issuers send a string. */
function matchAudience(aud: JWTPayload["aud"], clientIds: string[]): string {
  const audiences = typeof aud === "string" ? [aud] : Array.isArray(aud) ? aud : [];
  const match = audiences.find((a) => clientIds.includes(a));
  if (!match) throw invalidIdentityToken("Incorrect token audience");
  return match;
}

async function verifyWebIdentityToken(token: string, config: StsConfig, now: Date): Promise<VerifiedIdentity> {
  const claims = decodeClaims(token);
  const provider = config.oidcProviders.find((p) => p.url === claims.iss);
  if (!provider) throw invalidIdentityToken(`No OpenIDConnect provider found in your account for ${claims.iss ?? "a token without iss"}`);
  await verifySignature(token, await fetchIssuerKeys(provider.url));
  checkExpiry(claims, now);
  checkNotInFuture(claims, now);
  const audience = matchAudience(claims.aud, provider.clientIdList);
  if (typeof claims.sub !== "string" || claims.sub.length === 0) throw invalidIdentityToken("The token has no sub claim");
  return { providerUrl: provider.url, audience, subject: claims.sub, claims };
}

export async function assumeRoleWithWebIdentity(call: StsCall): Promise<XmlFields> {
  const { config, now } = call;
  const input = readAssumeRoleInput(call.params, (v) => ({ webIdentityToken: readString(call.params, WEB_IDENTITY_TOKEN_RULE, v)! }));
  const sessionPolicies = resolveSessionPolicies(input, config);
  const identity = await verifyWebIdentityToken(input.webIdentityToken, config, now);
  const providerKey = providerKeyOf(identity.providerUrl);
  const providerArn = providerArnOf(config.accountId, identity.providerUrl);
  const role = findRole(config, input.roleArn);
  const conditionContext: ConditionContext = {
    [`${providerKey}:aud`]: identity.audience,
    [`${providerKey}:sub`]: identity.subject,
    [`${providerKey}:email`]: typeof identity.claims.email === "string" ? identity.claims.email : undefined,
    "sts:RoleSessionName": input.roleSessionName,
    ...callKeys(call),
  };
  const trust = role && evaluateTrustPolicy(role.assumeRolePolicyDocument, {
    action: "sts:AssumeRoleWithWebIdentity",
    principal: { type: "Federated", ids: [providerArn] },
    conditionContext,
  });
  // AWS gives one answer for a missing role and a refusing trust policy, so roles cannot be probed.
  if (!role || !trust?.allowed) throw accessDenied("Not authorized to perform sts:AssumeRoleWithWebIdentity");
  const session = mintSession(call.state, {
    accountId: config.accountId,
    role,
    roleSessionName: input.roleSessionName,
    durationSeconds: sessionDuration(input.durationSeconds, role, false),
    sessionPolicies: sessionPolicies.documents,
  });
  return {
    Credentials: credentialsXml(session),
    SubjectFromWebIdentityToken: identity.subject,
    AssumedRoleUser: assumedRoleUserXml(session),
    Provider: providerArn,
    Audience: identity.audience,
    PackedPolicySize: sessionPolicies.packedPolicySize,
  };
}
