// Who is asking, and may they: the gate authenticates every request with local/aws (SigV4
// from the Authorization header or a presigned URL, checked against the STS session the
// access key belongs to), answering each failure with the error S3 gives, and asks the
// STS stand-in whether the session's policies allow each permission check.
import type { IncomingMessage } from "node:http";
import type { SignatureV4 } from "@smithy/signature-v4";
import { AuthFailure, type AuthProblem } from "../aws/authFailure.ts";
import { headerValue } from "../aws/headers.ts";
import { checkScope, checkTime, EMPTY_SHA256, parseHeaderSignature, parseQuerySignature, sessionSigner, UNSIGNED_PAYLOAD, verifySignature, type SignedRequest } from "../aws/sigv4.ts";
import { sourceIpContext, sourceIpOf } from "../aws/sourceIp.ts";
import { checkSession, fetchSession, type StsSession } from "../aws/stsSession.ts";
import { MESSAGES, S3ErrorReply } from "./errors.ts";
import type { PermissionCheck } from "./operations.ts";
import { param, type Target } from "./request.ts";

/** An authenticated request: its signature, the STS session it belongs to, and that session's signer. */
export interface Caller {
  signed: SignedRequest;
  session: StsSession;
  signer: SignatureV4;
  /** The client's address (aws:SourceIp), when the socket still knows it. */
  sourceIp?: string;
}

const UNSUPPORTED_MECHANISM = "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.";

/** Wraps a problem with the signature in the error family of where it came from (header or query). */
function malformed(presigned: boolean, problem: string, details: Record<string, string> = {}): S3ErrorReply {
  return presigned
    ? new S3ErrorReply("AuthorizationQueryParametersError", `Error parsing the X-Amz-Credential parameter; ${problem}`, details)
    : new S3ErrorReply("AuthorizationHeaderMalformed", `The authorization header is malformed; ${problem}`, details);
}

function isoSeconds(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

function skewed(problem: { amzDate: string; now: Date; maxSkewMs: number }): S3ErrorReply {
  return new S3ErrorReply("RequestTimeTooSkewed", MESSAGES.skewed,
    { RequestTime: problem.amzDate, ServerTime: isoSeconds(problem.now), MaxAllowedSkewMilliseconds: String(problem.maxSkewMs) });
}

/** The error S3 answers for each way authentication fails; `presigned` says whether the signature came from the query. */
function s3ErrorOf(problem: AuthProblem, presigned: boolean): S3ErrorReply {
  switch (problem.reason) {
    case "unsupported-algorithm":
      return presigned
        ? new S3ErrorReply("AuthorizationQueryParametersError", 'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"')
        : new S3ErrorReply("InvalidRequest", UNSUPPORTED_MECHANISM);
    case "malformed-authorization":
      return malformed(false, "the authorization header requires three components: Credential, SignedHeaders, and Signature.");
    case "missing-query-parameter":
      return new S3ErrorReply("AuthorizationQueryParametersError",
        "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.");
    case "malformed-expires":
      return new S3ErrorReply("AuthorizationQueryParametersError", "X-Amz-Expires should be a number");
    case "expires-too-long":
      return new S3ErrorReply("AuthorizationQueryParametersError", `X-Amz-Expires must be less than a week (in seconds) that is ${problem.maxSeconds} seconds`);
    case "malformed-credential":
      return malformed(presigned, 'the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".');
    case "wrong-terminal":
      return malformed(presigned, `incorrect terminal '${problem.terminal}'. This endpoint uses 'aws4_request'.`);
    case "malformed-amz-date":
      return presigned
        ? new S3ErrorReply("AuthorizationQueryParametersError", "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
        : new S3ErrorReply("AccessDenied", "AWS authentication requires a valid Date or x-amz-date header");
    case "wrong-region":
      return malformed(presigned, `the region '${problem.region}' is wrong; expecting '${problem.expected}'`, { Region: problem.expected });
    case "wrong-service":
      return malformed(presigned, `incorrect service '${problem.service}'. This endpoint belongs to '${problem.expected}'.`);
    case "scope-date-mismatch":
      return malformed(presigned, "Invalid credential date. Date is not the same as X-Amz-Date.");
    case "request-in-future":
      return presigned ? new S3ErrorReply("AccessDenied", "Request is not valid yet") : skewed(problem);
    case "request-too-old":
      return skewed(problem);
    case "presign-expired":
      return new S3ErrorReply("AccessDenied", "Request has expired",
        { "X-Amz-Expires": String(problem.expiresSeconds), Expires: isoSeconds(problem.expiresAt), ServerTime: isoSeconds(problem.now) });
    case "unknown-access-key":
      return new S3ErrorReply("InvalidAccessKeyId", MESSAGES.unknownKey, { AWSAccessKeyId: problem.accessKeyId });
    case "invalid-session-token":
      return new S3ErrorReply("InvalidToken", MESSAGES.invalidToken);
    case "session-expired":
      return new S3ErrorReply("ExpiredToken", MESSAGES.expiredToken);
    case "signature-mismatch":
      return new S3ErrorReply("SignatureDoesNotMatch", MESSAGES.signatureMismatch, { AWSAccessKeyId: problem.accessKeyId });
  }
}

/** Where the request's signature is; an anonymous request, SigV2, or a signature in both places is refused here. */
function signatureSource(req: IncomingMessage, target: Target): "header" | "query" {
  const header = headerValue(req, "authorization") !== undefined;
  const query = param(target, "X-Amz-Algorithm") !== undefined;
  if (header && query) {
    throw new S3ErrorReply("InvalidArgument", "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified",
      { ArgumentName: "Authorization" });
  }
  if (header) return "header";
  if (query) return "query";
  if (param(target, "Signature") !== undefined || param(target, "AWSAccessKeyId") !== undefined) throw new S3ErrorReply("InvalidRequest", UNSUPPORTED_MECHANISM);
  throw new S3ErrorReply("AccessDenied", MESSAGES.accessDenied);
}

export async function authenticate(gate: { stsUrl: string; region: string }, req: IncomingMessage, target: Target): Promise<Caller> {
  const presigned = signatureSource(req, target) === "query";
  const header = (name: string) => headerValue(req, name);
  const query = target.params.map((p) => [p.name, p.value] as const);
  try {
    const signed = presigned ? parseQuerySignature(query) : parseHeaderSignature(header("authorization")!, header);
    checkScope(signed, { service: "s3", region: gate.region });
    const session = await fetchSession(gate.stsUrl, signed.scope.accessKeyId);
    const now = new Date();
    checkSession(session, signed.sessionToken, now);
    checkTime(signed, now);
    // S3's canonical path is already each segment decoded once and encoded once.
    const signer = sessionSigner(session, signed, { service: "s3", region: gate.region, escapePath: false });
    // The payload hash line comes from x-amz-content-sha256 even when it is not a signed header,
    // and presigned URLs always hash the payload as UNSIGNED-PAYLOAD.
    const payloadHash = presigned ? UNSIGNED_PAYLOAD : (header("x-amz-content-sha256") ?? EMPTY_SHA256);
    await verifySignature({ method: target.method, path: target.canonicalPath, query, header, payloadHash }, signed, signer);
    if (presigned) refuseUnsignedAmzHeaders(req, signed);
    return { signed, session, signer, sourceIp: sourceIpOf(req.socket) };
  } catch (err) {
    throw err instanceof AuthFailure ? s3ErrorOf(err.problem, presigned) : err;
  }
}

/**
 * A presigned URL fixes what the request may carry: an x-amz-* header it did not sign (SSE,
 * metadata, ...) is refused, not stored (S3 API reference, "Authenticating Requests: Using Query
 * Parameters": every x-amz-* header sent must be in X-Amz-SignedHeaders; S3 answers AccessDenied
 * "There were headers present in the request which were not signed" with a HeadersNotSigned
 * element). AWS documents no status; 403, as for its other AccessDenied answers.
 */
function refuseUnsignedAmzHeaders(req: IncomingMessage, signed: SignedRequest): void {
  const signedNames = new Set(signed.signedHeaders.map((name) => name.toLowerCase()));
  const unsigned = Object.keys(req.headers).filter((name) => name.startsWith("x-amz-") && !signedNames.has(name));
  if (unsigned.length) {
    throw new S3ErrorReply("AccessDenied", "There were headers present in the request which were not signed", { HeadersNotSigned: unsigned.sort().join(", ") });
  }
}

// ---------------------------------------------------------------------------------------
// Authorization: STS evaluates the session's policies

export async function isAllowed(stsUrl: string, caller: Pick<Caller, "session" | "sourceIp">, check: PermissionCheck): Promise<{ allowed: boolean; reason: string }> {
  const { session } = caller;
  const context = { ...check.context, ...sourceIpContext(caller.sourceIp) };
  const res = await fetch(`${stsUrl}/_local/authorize`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ accessKeyId: session.accessKeyId, ...check, context }),
  });
  if (res.status === 404) throw new S3ErrorReply("InvalidAccessKeyId", MESSAGES.unknownKey, { AWSAccessKeyId: session.accessKeyId });
  if (!res.ok) throw new Error(`STS stand-in answered ${res.status} to an authorization check`);
  return (await res.json()) as { allowed: boolean; reason: string };
}

export async function authorize(stsUrl: string, caller: Caller, checks: PermissionCheck[]): Promise<void> {
  for (const check of checks) {
    const decision = await isAllowed(stsUrl, caller, check);
    if (!decision.allowed) {
      throw new S3ErrorReply("AccessDenied",
        `User: ${caller.session.assumedRoleArn} is not authorized to perform: ${check.action} on resource: "${check.resource}" because ${decision.reason}`);
    }
  }
}
