// The RDS IAM auth token check, as RDS does it: a SigV4 presigned `connect` URL for this
// instance and user, verified with local/aws against the STS session its access key names.
import type { Sql } from "postgres";
import { parseAmzDate } from "../aws/amzDate.ts";
import { AuthFailure } from "../aws/authFailure.ts";
import { checkScope, checkTime, EMPTY_SHA256, parseQuerySignature, sessionSigner, SIGV4_ALGORITHM, verifySignature, type SignedRequest } from "../aws/sigv4.ts";
import { sourceIpContext } from "../aws/sourceIp.ts";
import { checkSession, fetchSession, type StsSession } from "../aws/stsSession.ts";
import { MAX_CLOCK_SKEW_SECONDS, MAX_TOKEN_LIFETIME_SECONDS, RDS_DB_SERVICE, RDS_IAM_ROLE, STS_TIMEOUT_MS } from "./limits.ts";

/** What STS issues as access key ids; anything else is refused before STS is asked. */
const ACCESS_KEY_ID = /^[A-Z0-9]{16,128}$/;

/** A refusal with its real reason; the client only ever sees the PAM message. */
export class IamAuthError extends Error {}

export interface TokenCheckContext {
  /** host:port the token must have been signed for: the instance's endpoint, or (none configured) the address dialled. */
  authority: string;
  /** Whether `authority` is a configured endpoint name or just the address the client dialled. */
  authorityIs: "endpoint" | "dialled";
  user: string;
  region: string;
  /** The id rds-db:connect names: the instance's DbiResourceId, the cluster's DbClusterResourceId or the proxy's id. */
  resourceId: string;
  /** "instance", "cluster" or "proxy": what the refusal reasons call the server. */
  serverKind: string;
  stsUrl: string;
  admin: Sql;
  /** The client's address (aws:SourceIp), when the socket still knows it. */
  sourceIp?: string;
}

interface IamToken {
  authority: string;
  /** Every query parameter, decoded. */
  params: Map<string, string>;
  signed: SignedRequest;
}

export async function verifyIamToken(tokenText: string, ctx: TokenCheckContext): Promise<void> {
  let session: StsSession | undefined;
  try {
    const token = parseIamToken(tokenText);
    checkTokenClaims(token, ctx, new Date());
    session = await sessionOf(ctx.stsUrl, token.signed.scope.accessKeyId);
    checkSession(session, token.signed.sessionToken, new Date());
    await checkSignature(token, session, ctx.region);
  } catch (err) {
    throw err instanceof AuthFailure ? new IamAuthError(reasonOf(err, session)) : err;
  }
  await checkConnectPermission(ctx, session);
  await checkDatabaseUser(ctx.admin, ctx.user);
}

const lifetimeRefusal = (expiresSeconds: number) => `X-Amz-Expires is ${expiresSeconds} s; RDS tokens live 1 to ${MAX_TOKEN_LIFETIME_SECONDS} s`;

/** Why local/aws refused the token, in the words lastAuthFailures reports. */
function reasonOf(failure: AuthFailure, session: StsSession | undefined): string {
  const problem = failure.problem;
  switch (problem.reason) {
    case "unsupported-algorithm":
      return `X-Amz-Algorithm is not ${SIGV4_ALGORITHM}`;
    case "missing-query-parameter":
      return `the token has no ${problem.parameter}`;
    case "malformed-expires":
      return `X-Amz-Expires "${problem.expires}" is not a number of seconds`;
    case "expires-too-long":
      return lifetimeRefusal(problem.expiresSeconds);
    case "malformed-credential":
    case "wrong-terminal":
      return "X-Amz-Credential is not AKID/date/region/service/aws4_request";
    case "malformed-amz-date":
      return `X-Amz-Date "${problem.amzDate}" is not YYYYMMDDTHHMMSSZ`;
    case "wrong-region":
      return `the token is signed for region "${problem.region}", but this instance is in "${problem.expected}"`;
    case "wrong-service":
      return `the token is signed for service "${problem.service}", not "${problem.expected}"`;
    case "scope-date-mismatch":
      return "the credential scope's date is not X-Amz-Date's date";
    case "presign-expired": {
      const signedAt = new Date(problem.expiresAt.getTime() - problem.expiresSeconds * 1000);
      return `the token expired at ${problem.expiresAt.toISOString()} (signed ${signedAt.toISOString()})`;
    }
    case "request-in-future":
      return `the token is dated ${parseAmzDate(problem.amzDate)?.toISOString() ?? problem.amzDate}, in the future: check the client's clock`;
    case "unknown-access-key":
      return `access key ${problem.accessKeyId} belongs to no STS session (unknown or wrong key)`;
    case "invalid-session-token":
      return `X-Amz-Security-Token is not the session token of ${problem.accessKeyId}`;
    case "session-expired":
      return `the session ${session?.assumedRoleArn ?? problem.accessKeyId} expired at ${problem.expiredAt.toISOString()}`;
    case "signature-mismatch":
      return "the signature does not match (signed with another secret key, or the token was altered)";
    default:
      // Header-signed requests' problems: a token is always presigned.
      return failure.message;
  }
}

/** `host:port/?Action=connect&DBUser=...&X-Amz-...`: a presigned URL without its scheme. */
function parseIamToken(text: string): IamToken {
  if (text.length === 0) throw new IamAuthError("empty password: expected an RDS IAM auth token");
  if (/^[a-z]+:\/\//i.test(text)) throw new IamAuthError("the token starts with a URL scheme; RDS tokens start with host:port");
  const split = text.indexOf("/?");
  if (split <= 0) throw new IamAuthError("not an RDS IAM auth token (expected host:port/?Action=connect&...)");
  const params = new Map<string, string>();
  for (const [key, value] of new URLSearchParams(text.slice(split + 2))) {
    if (params.has(key)) throw new IamAuthError(`query parameter ${key} appears twice`);
    params.set(key, value);
  }
  const signed = parseQuerySignature([...params]);
  if (!signed.sessionToken) throw new IamAuthError("the token has no X-Amz-Security-Token");
  return { authority: text.slice(0, split), params, signed };
}

/** Everything that can be checked without asking STS or Postgres. */
function checkTokenClaims(token: IamToken, ctx: TokenCheckContext, now: Date): void {
  const { params, signed } = token;
  if (params.get("Action") !== "connect") throw new IamAuthError(`Action is "${params.get("Action")}", not "connect"`);
  if (params.get("X-Amz-SignedHeaders") !== "host") throw new IamAuthError(`X-Amz-SignedHeaders is "${params.get("X-Amz-SignedHeaders")}", not "host"`);
  if (token.authority.toLowerCase() !== ctx.authority.toLowerCase()) throw new IamAuthError(authorityRefusal(token.authority, ctx));
  if (params.get("DBUser") !== ctx.user) throw new IamAuthError(`the token's DBUser is "${params.get("DBUser")}", but the client logs in as "${ctx.user}"`);
  checkScope(signed, { service: RDS_DB_SERVICE, region: ctx.region });
  const expiresSeconds = signed.expiresSeconds ?? 0;
  if (expiresSeconds < 1 || expiresSeconds > MAX_TOKEN_LIFETIME_SECONDS) throw new IamAuthError(lifetimeRefusal(expiresSeconds));
  checkTime(signed, now, MAX_CLOCK_SKEW_SECONDS * 1000);
}

/**
 * RDS checks the token's host:port against its own endpoint, not against the address the
 * client dialled: "you can't use a custom Route 53 DNS record ... instead of the DB instance
 * endpoint to generate the authentication token" (RDS User Guide, UsingWithRDS.IAMDBAuth.html,
 * Limitations). A tunnel or proxy works when the token names the endpoint.
 */
function authorityRefusal(signedFor: string, ctx: TokenCheckContext): string {
  if (ctx.authorityIs === "dialled") return `the token was signed for ${signedFor}, but the client connected to ${ctx.authority} (Signer hostname/port)`;
  return `the token was signed for ${signedFor}, but this ${ctx.serverKind} is ${ctx.authority}: sign for the ${ctx.serverKind} endpoint (Signer hostname/port) even when the client dials a tunnel, proxy or CNAME`;
}

/** The STS session the token's access key belongs to. */
async function sessionOf(stsUrl: string, accessKeyId: string): Promise<StsSession> {
  if (!ACCESS_KEY_ID.test(accessKeyId)) throw new IamAuthError(`"${accessKeyId}" is not an access key id`);
  return fetchSession(stsUrl, accessKeyId, { signal: AbortSignal.timeout(STS_TIMEOUT_MS) });
}

/** Recomputes the presigned URL with the session's secret, as the SDK's Signer built it: a GET of / whose one signed header is host. */
async function checkSignature(token: IamToken, session: StsSession, region: string): Promise<void> {
  const signer = sessionSigner(session, token.signed, { service: RDS_DB_SERVICE, region });
  const header = (name: string) => (name === "host" ? token.authority : undefined);
  await verifySignature({ method: "GET", path: "/", query: [...token.params], header, payloadHash: EMPTY_SHA256 }, token.signed, signer);
}

export async function checkConnectPermission(ctx: TokenCheckContext, session: StsSession): Promise<void> {
  // RDS User Guide, "Creating and using an IAM policy for IAM database access": dbuser:<db-…|cluster-…|prx-…>/<user>.
  const resource = `arn:aws:rds-db:${ctx.region}:${session.accountId}:dbuser:${ctx.resourceId}/${ctx.user}`;
  const res = await fetch(`${ctx.stsUrl}/_local/authorize`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ accessKeyId: session.accessKeyId, action: "rds-db:connect", resource, context: sourceIpContext(ctx.sourceIp) }),
    signal: AbortSignal.timeout(STS_TIMEOUT_MS),
  });
  if (res.status === 404) throw new IamAuthError(`access key ${session.accessKeyId} belongs to no STS session`);
  if (!res.ok) throw new Error(`STS stand-in answered ${res.status} to /_local/authorize`);
  const decision = (await res.json()) as { allowed: boolean; reason: string };
  if (!decision.allowed) throw new IamAuthError(`${session.assumedRoleArn} may not rds-db:connect to ${resource}: ${decision.reason}`);
}

export async function checkDatabaseUser(admin: Sql, user: string): Promise<void> {
  const [role] = await admin<{ iam: boolean }[]>`
    select pg_has_role(oid, ${RDS_IAM_ROLE}::name, 'member') as iam from pg_roles where rolname = ${user}`;
  if (!role) throw new IamAuthError(`role "${user}" does not exist`);
  if (!role.iam) throw new IamAuthError(`role "${user}" is not a member of ${RDS_IAM_ROLE} (GRANT ${RDS_IAM_ROLE} TO "${user}")`);
}

