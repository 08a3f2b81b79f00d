// The RDS IAM auth token check, as RDS does it: a SigV4 presigned `connect` URL for this instance and user.
import type { Sql } from "postgres";
import { SignatureV4 } from "@smithy/signature-v4";
import { Hash } from "@smithy/hash-node";
import { timingSafeEqual } from "node:crypto";
import { MAX_CLOCK_SKEW_SECONDS, MAX_TOKEN_LIFETIME_SECONDS, RDS_DB_SERVICE, RDS_IAM_ROLE, SIGV4_ALGORITHM, STS_TIMEOUT_MS } from "./limits.ts";


/** A refusal with its real reason; the client only ever sees the PAM message. */
export class IamAuthError extends Error {}

export interface TokenCheckContext {
  /** host:port the client connected to, which the token must have been signed for. */
  authority: string;
  user: string;
  region: string;
  dbiResourceId: string;
  stsUrl: string;
  admin: Sql;
}

export interface IamToken {
  authority: string;
  /** Every query parameter, decoded. */
  params: Map<string, string>;
  accessKeyId: string;
  scope: { date: string; region: string; service: string };
  signedAt: Date;
  expiresSeconds: number;
  securityToken: string;
  signature: string;
}

/** What the STS stand-in returns from GET /_local/sessions/<accessKeyId>. */
export interface StsSession {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  expiration: string;
  roleArn: string;
  assumedRoleArn: string;
  accountId: string;
}

export async function verifyIamToken(tokenText: string, ctx: TokenCheckContext): Promise<void> {
  const token = parseIamToken(tokenText);
  checkTokenClaims(token, ctx, new Date());
  const session = await fetchSession(ctx.stsUrl, token.accessKeyId);
  checkSession(token, session);
  await checkSignature(token, session, ctx.region);
  await checkConnectPermission(ctx, session);
  await checkDatabaseUser(ctx.admin, ctx.user);
}

/** `host:port/?Action=connect&DBUser=...&X-Amz-...`: a presigned URL without its scheme. */
export function parseIamToken(text: string): IamToken {
  if (text.length === 0) throw new IamAuthError("empty password: expected an RDS IAM auth token");
  if (/^[a-z]+:\/\//i.test(text)) throw new IamAuthError("the token starts with a URL scheme; RDS tokens start with host:port");
  const split = text.indexOf("/?");
  if (split <= 0) throw new IamAuthError("not an RDS IAM auth token (expected host:port/?Action=connect&...)");
  const params = new Map<string, string>();
  for (const [key, value] of new URLSearchParams(text.slice(split + 2))) {
    if (params.has(key)) throw new IamAuthError(`query parameter ${key} appears twice`);
    params.set(key, value);
  }
  const required = (name: string) => {
    const value = params.get(name);
    if (!value) throw new IamAuthError(`the token has no ${name}`);
    return value;
  };
  const [accessKeyId = "", date = "", region = "", service = "", terminator = "", ...extra] = required("X-Amz-Credential").split("/");
  if (terminator !== "aws4_request" || extra.length > 0) throw new IamAuthError("X-Amz-Credential is not AKID/date/region/service/aws4_request");
  const expires = required("X-Amz-Expires");
  if (!/^\d+$/.test(expires)) throw new IamAuthError(`X-Amz-Expires "${expires}" is not a number of seconds`);
  return {
    authority: text.slice(0, split),
    params,
    accessKeyId,
    scope: { date, region, service },
    signedAt: parseAmzDate(required("X-Amz-Date")),
    expiresSeconds: Number(expires),
    securityToken: required("X-Amz-Security-Token"),
    signature: required("X-Amz-Signature"),
  };
}

export function parseAmzDate(value: string): Date {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (!m) throw new IamAuthError(`X-Amz-Date "${value}" is not YYYYMMDDTHHMMSSZ`);
  const [, y, mo, d, h, mi, s] = m.map(Number) as number[];
  return new Date(Date.UTC(y!, mo! - 1, d!, h!, mi!, s!));
}

/** Everything that can be checked without asking STS or Postgres. */
export function checkTokenClaims(token: IamToken, ctx: TokenCheckContext, now: Date): void {
  const { params, scope } = token;
  if (params.get("Action") !== "connect") throw new IamAuthError(`Action is "${params.get("Action")}", not "connect"`);
  if (params.get("X-Amz-Algorithm") !== SIGV4_ALGORITHM) throw new IamAuthError(`X-Amz-Algorithm is not ${SIGV4_ALGORITHM}`);
  if (params.get("X-Amz-SignedHeaders") !== "host") throw new IamAuthError(`X-Amz-SignedHeaders is "${params.get("X-Amz-SignedHeaders")}", not "host"`);
  if (token.authority.toLowerCase() !== ctx.authority.toLowerCase()) {
    throw new IamAuthError(`the token was signed for ${token.authority}, but the client connected to ${ctx.authority} (Signer hostname/port)`);
  }
  if (params.get("DBUser") !== ctx.user) throw new IamAuthError(`the token's DBUser is "${params.get("DBUser")}", but the client logs in as "${ctx.user}"`);
  if (scope.service !== RDS_DB_SERVICE) throw new IamAuthError(`the token is signed for service "${scope.service}", not "${RDS_DB_SERVICE}"`);
  if (scope.region !== ctx.region) throw new IamAuthError(`the token is signed for region "${scope.region}", but this instance is in "${ctx.region}"`);
  if (params.get("X-Amz-Date")?.slice(0, 8) !== scope.date) throw new IamAuthError("the credential scope's date is not X-Amz-Date's date");
  if (token.expiresSeconds < 1 || token.expiresSeconds > MAX_TOKEN_LIFETIME_SECONDS) {
    throw new IamAuthError(`X-Amz-Expires is ${token.expiresSeconds} s; RDS tokens live 1 to ${MAX_TOKEN_LIFETIME_SECONDS} s`);
  }
  const expiresAt = token.signedAt.getTime() + token.expiresSeconds * 1000;
  if (now.getTime() >= expiresAt) throw new IamAuthError(`the token expired at ${new Date(expiresAt).toISOString()} (signed ${token.signedAt.toISOString()})`);
  if (token.signedAt.getTime() > now.getTime() + MAX_CLOCK_SKEW_SECONDS * 1000) {
    throw new IamAuthError(`the token is dated ${token.signedAt.toISOString()}, in the future: check the client's clock`);
  }
}

export async function fetchSession(stsUrl: string, accessKeyId: string): Promise<StsSession> {
  if (!/^[A-Z0-9]{16,128}$/.test(accessKeyId)) throw new IamAuthError(`"${accessKeyId}" is not an access key id`);
  const res = await fetch(`${stsUrl}/_local/sessions/${accessKeyId}`, { signal: AbortSignal.timeout(STS_TIMEOUT_MS) });
  if (res.status === 404) throw new IamAuthError(`access key ${accessKeyId} belongs to no STS session (unknown or wrong key)`);
  if (!res.ok) throw new Error(`STS stand-in answered ${res.status} for session ${accessKeyId}`);
  return (await res.json()) as StsSession;
}

export function checkSession(token: IamToken, session: StsSession): void {
  if (token.securityToken !== session.sessionToken) throw new IamAuthError(`X-Amz-Security-Token is not the session token of ${session.accessKeyId}`);
  if (new Date(session.expiration).getTime() <= Date.now()) throw new IamAuthError(`the session ${session.assumedRoleArn} expired at ${session.expiration}`);
}

/** Recomputes the presigned URL with the session's secret, as the SDK's Signer built it. */
export async function checkSignature(token: IamToken, session: StsSession, region: string): Promise<void> {
  const signer = new SignatureV4({
    service: RDS_DB_SERVICE,
    region,
    credentials: { accessKeyId: session.accessKeyId, secretAccessKey: session.secretAccessKey, sessionToken: session.sessionToken },
    sha256: Hash.bind(null, "sha256"),
  });
  const portAt = token.authority.lastIndexOf(":");
  // presign() adds the X-Amz-* parameters itself; everything else was signed as it stands.
  const query = Object.fromEntries([...token.params].filter(([name]) => !name.startsWith("X-Amz-")));
  const presigned = await signer.presign(
    {
      method: "GET",
      protocol: "https:",
      hostname: token.authority.slice(0, portAt),
      port: Number(token.authority.slice(portAt + 1)),
      path: "/",
      query,
      headers: { host: token.authority },
    },
    { signingDate: token.signedAt, expiresIn: token.expiresSeconds },
  );
  const expected = Buffer.from(String(presigned.query?.["X-Amz-Signature"]));
  const actual = Buffer.from(token.signature);
  if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) {
    throw new IamAuthError("the signature does not match (signed with another secret key, or the token was altered)");
  }
}

export async function checkConnectPermission(ctx: TokenCheckContext, session: StsSession): Promise<void> {
  const resource = `arn:aws:rds-db:${ctx.region}:${session.accountId}:dbuser:${ctx.dbiResourceId}/${ctx.user}`;
  const res = await fetch(`${ctx.stsUrl}/_local/authorize`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ accessKeyId: session.accessKeyId, action: "rds-db:connect", resource }),
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

