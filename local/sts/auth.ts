// SigV4 authentication of the STS calls signed with a session's credentials (AssumeRole,
// GetCallerIdentity): the request is re-signed as received with the secret STS issued,
// using the SDK's own signer, and the signatures are compared in constant time.
import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { Hash } from "@smithy/hash-node";
import { SignatureV4 } from "@smithy/signature-v4";
import type { HttpRequest, QueryParameterBag } from "@smithy/types";
import { invalidClientToken, signatureMismatch, StsErrorReply } from "./errors.ts";
import { MAX_SIGNATURE_SKEW_MS } from "./limits.ts";
import type { Session } from "./sessions.ts";
import type { StsCall } from "./state.ts";
import { isoSeconds } from "./xml.ts";

/** The hash constructor the SDK itself hands its SigV4 signer in Node. */
const Sha256 = Hash.bind(null, "sha256");

interface Authorization {
  accessKeyId: string;
  scopeDate: string;
  region: string;
  service: string;
  signedHeaders: string[];
  signature: string;
}

export function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(",") : value;
}

/** Length is not secret (both sides are fixed-format); content is compared in constant time. */
function constantTimeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a, "utf8");
  const right = Buffer.from(b, "utf8");
  return left.length === right.length && timingSafeEqual(left, right);
}

function parseAuthorization(header: string): Authorization {
  const match = /^AWS4-HMAC-SHA256 Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})$/.exec(header);
  if (!match) {
    throw new StsErrorReply("IncompleteSignature", "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters (AWS4-HMAC-SHA256).");
  }
  const scope = match[1]!.split("/");
  if (scope.length !== 5 || scope[4] !== "aws4_request") {
    throw new StsErrorReply("IncompleteSignature", "Credential must have the form <access key id>/<YYYYMMDD>/<region>/<service>/aws4_request.");
  }
  const [accessKeyId, scopeDate, region, service] = scope as [string, string, string, string];
  return { accessKeyId, scopeDate, region, service, signedHeaders: match[2]!.split(";"), signature: match[3]! };
}

function amzDateOf(date: Date): string {
  return isoSeconds(date).replace(/[-:]/g, "");
}

function checkRequestDate(req: IncomingMessage, auth: Authorization, now: Date): Date {
  const amzDate = headerValue(req, "x-amz-date");
  const match = amzDate ? /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(amzDate) : null;
  if (!amzDate || !match || !auth.signedHeaders.includes("x-amz-date")) {
    throw new StsErrorReply("IncompleteSignature", "Authorization header requires existence of a signed 'X-Amz-Date' header.");
  }
  const [, y, mo, d, h, mi, s] = match;
  const signingDate = new Date(`${y}-${mo}-${d}T${h}:${mi}:${s}Z`);
  if (auth.scopeDate !== amzDate.slice(0, 8)) {
    throw signatureMismatch(`Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${auth.scopeDate}' != '${amzDate.slice(0, 8)}', from '${amzDate}'.`);
  }
  if (signingDate.getTime() < now.getTime() - MAX_SIGNATURE_SKEW_MS) {
    throw signatureMismatch(`Signature expired: ${amzDate} is now earlier than ${amzDateOf(new Date(now.getTime() - MAX_SIGNATURE_SKEW_MS))} (${amzDateOf(now)} - 15 min.)`);
  }
  if (signingDate.getTime() > now.getTime() + MAX_SIGNATURE_SKEW_MS) {
    throw signatureMismatch(`Signature not yet current: ${amzDate} is still later than ${amzDateOf(new Date(now.getTime() + MAX_SIGNATURE_SKEW_MS))} (${amzDateOf(now)} + 15 min.)`);
  }
  return signingDate;
}

/** The signer trusts x-amz-content-sha256 as the body's hash, so hold the header to the body actually received. */
function checkPayloadHash(req: IncomingMessage, body: Buffer): void {
  const declared = headerValue(req, "x-amz-content-sha256");
  if (declared !== undefined && declared !== createHash("sha256").update(body).digest("hex")) throw signatureMismatch();
}

function queryBag(url: URL): QueryParameterBag {
  const bag: QueryParameterBag = {};
  for (const key of new Set(url.searchParams.keys())) {
    const values = url.searchParams.getAll(key);
    bag[key] = values.length === 1 ? values[0]! : values;
  }
  return bag;
}

/** Re-signs the request as received, with the secret STS issued, using the SDK's own signer. */
async function expectedSignature(req: IncomingMessage, url: URL, body: Buffer, auth: Authorization, session: Session, signingDate: Date): Promise<string> {
  const headers: Record<string, string> = {};
  for (const name of auth.signedHeaders) {
    const value = headerValue(req, name);
    if (value === undefined) throw signatureMismatch();
    headers[name] = value;
  }
  const request: HttpRequest = { method: req.method ?? "POST", protocol: "http:", hostname: "", path: url.pathname, query: queryBag(url), headers, body };
  const signer = new SignatureV4({
    service: auth.service,
    region: auth.region,
    credentials: { accessKeyId: session.accessKeyId, secretAccessKey: session.secretAccessKey, sessionToken: session.sessionToken },
    sha256: Sha256,
    applyChecksum: false,
  });
  const signed = await signer.sign(request, { signingDate, signableHeaders: new Set(auth.signedHeaders) });
  return /Signature=([0-9a-f]{64})/.exec(String(signed.headers.authorization))?.[1] ?? "";
}

/** The session whose credentials signed this call; throws STS's error when the signature or token does not hold. */
export async function authenticate(call: StsCall): Promise<Session> {
  const { req, url, body, now, state } = call;
  const header = headerValue(req, "authorization");
  if (!header) throw new StsErrorReply("MissingAuthenticationToken", "Request is missing Authentication Token", 403);
  const auth = parseAuthorization(header);
  if (auth.service !== "sts") throw signatureMismatch("Credential should be scoped to correct service: 'sts'.");
  if (!auth.signedHeaders.includes("host")) throw new StsErrorReply("IncompleteSignature", "'Host' must be a 'SignedHeader' in the AWS Authorization.");
  const session = state.sessions.get(auth.accessKeyId);
  const token = headerValue(req, "x-amz-security-token");
  // Temporary credentials are valid only with their own session token, signed.
  if (!session || !token || !auth.signedHeaders.includes("x-amz-security-token") || !constantTimeEqual(token, session.sessionToken)) {
    throw invalidClientToken();
  }
  if (session.expiration.getTime() <= now.getTime()) throw new StsErrorReply("ExpiredToken", "The security token included in the request is expired", 403);
  const signingDate = checkRequestDate(req, auth, now);
  checkPayloadHash(req, body);
  if (!constantTimeEqual(await expectedSignature(req, url, body, auth, session, signingDate), auth.signature)) throw signatureMismatch();
  return session;
}
