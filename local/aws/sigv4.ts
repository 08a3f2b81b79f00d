// SigV4 request authentication shared by the gates: reads a signature from an
// Authorization header or from a presigned request's X-Amz-* query into one SignedRequest,
// checks its credential scope and its time, and recomputes the signature with the SDK's own
// signer (@smithy/signature-v4) from the secret the STS stand-in issued. Failures are
// AuthFailure (local/aws/authFailure.ts); each gate turns them into its own errors.
import { Hash } from "@smithy/hash-node";
import { SignatureV4 } from "@smithy/signature-v4";
import type { HttpRequest, QueryParameterBag } from "@smithy/types";
import { parseAmzDate } from "./amzDate.ts";
import { AuthFailure } from "./authFailure.ts";
import { constantTimeEqual } from "./constantTime.ts";
import type { StsSession } from "./stsSession.ts";

export const SIGV4_ALGORITHM = "AWS4-HMAC-SHA256";
/** SigV4: a header-signed request dated more than 15 minutes from the server's clock is refused. */
export const MAX_SKEW_MS = 15 * 60 * 1000;
/** SigV4: a presigned URL lives at most 7 days. */
export const MAX_PRESIGN_SECONDS = 604_800;
/** The payload hash of S3 presigned URLs and of bodies the client chose not to hash. */
export const UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD";
/** The SHA-256 of an empty body: the payload hash of a request without one (an RDS token). */
export const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/** The hash constructor the SDK itself hands its SigV4 signer in Node. */
const Sha256 = Hash.bind(null, "sha256");

/** A request header's value as SigV4 reads it (every occurrence, trimmed, joined by commas); names are lower case. */
export type HeaderLookup = (name: string) => string | undefined;
/** Query parameters as received, decoded, in order; a name may repeat. */
export type QueryPairs = ReadonlyArray<readonly [name: string, value: string]>;

export interface CredentialScope {
  accessKeyId: string;
  /** YYYYMMDD */
  date: string;
  region: string;
  service: string;
}

/** A signature as the client presented it, from either place a SigV4 signature can be. */
export interface SignedRequest {
  presigned: boolean;
  scope: CredentialScope;
  signedHeaders: string[];
  signature: string;
  amzDate: string;
  signingDate: Date;
  /** x-amz-security-token (header-signed) or X-Amz-Security-Token (presigned), if sent. */
  sessionToken?: string;
  /** Presigned requests only: seconds of validity from amzDate. */
  expiresSeconds?: number;
}

function parseScope(credential: string): CredentialScope {
  const parts = credential.split("/");
  if (parts.length !== 5 || parts.some((p) => !p)) {
    throw new AuthFailure({ reason: "malformed-credential" }, "the Credential is not <access key id>/YYYYMMDD/<region>/<service>/aws4_request");
  }
  const [accessKeyId, date, region, service, terminal] = parts as [string, string, string, string, string];
  if (terminal !== "aws4_request") throw new AuthFailure({ reason: "wrong-terminal", terminal }, `the Credential ends in '${terminal}', not 'aws4_request'`);
  return { accessKeyId, date, region, service };
}

function signingDateOf(amzDate: string | undefined): Date {
  const date = parseAmzDate(amzDate);
  if (!date) throw new AuthFailure({ reason: "malformed-amz-date", amzDate }, `the amz-date ${JSON.stringify(amzDate)} is not YYYYMMDDTHHMMSSZ`);
  return date;
}

const AUTH_HEADER = /^AWS4-HMAC-SHA256\s+Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([^,\s]+)$/;

/** The signature of a header-signed request: `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`. */
export function parseHeaderSignature(authorization: string, header: HeaderLookup): SignedRequest {
  if (/^AWS\s/.test(authorization)) throw new AuthFailure({ reason: "unsupported-algorithm" }, `the Authorization header is not ${SIGV4_ALGORITHM}`);
  const match = AUTH_HEADER.exec(authorization.trim());
  if (!match) throw new AuthFailure({ reason: "malformed-authorization" }, "the Authorization header lacks Credential, SignedHeaders or Signature");
  const amzDate = header("x-amz-date");
  return {
    presigned: false,
    scope: parseScope(match[1]!),
    signedHeaders: match[2]!.split(";"),
    signature: match[3]!,
    amzDate: amzDate ?? "",
    signingDate: signingDateOf(amzDate),
    sessionToken: header("x-amz-security-token"),
  };
}

const PRESIGN_REQUIRED = ["X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature"] as const;

/** The signature of a presigned request (an S3 presigned URL, an RDS IAM token): its X-Amz-* query parameters. */
export function parseQuerySignature(query: QueryPairs): SignedRequest {
  const param = (name: string) => query.find(([n]) => n === name)?.[1];
  if (param("X-Amz-Algorithm") !== SIGV4_ALGORITHM) throw new AuthFailure({ reason: "unsupported-algorithm" }, `X-Amz-Algorithm is not ${SIGV4_ALGORITHM}`);
  const [credential, amzDate, expires, signedHeaders, signature] = PRESIGN_REQUIRED.map(param);
  if (!credential || !amzDate || !expires || !signedHeaders || !signature) {
    const parameter = PRESIGN_REQUIRED.find((name) => !param(name))!;
    throw new AuthFailure({ reason: "missing-query-parameter", parameter }, `the presigned request has no ${parameter}`);
  }
  if (!/^\d+$/.test(expires)) throw new AuthFailure({ reason: "malformed-expires", expires }, `X-Amz-Expires "${expires}" is not a number of seconds`);
  const expiresSeconds = Number(expires);
  if (expiresSeconds > MAX_PRESIGN_SECONDS) {
    throw new AuthFailure({ reason: "expires-too-long", expiresSeconds, maxSeconds: MAX_PRESIGN_SECONDS }, `X-Amz-Expires is over ${MAX_PRESIGN_SECONDS} seconds`);
  }
  return {
    presigned: true,
    scope: parseScope(credential),
    signedHeaders: signedHeaders.split(";"),
    signature,
    amzDate,
    signingDate: signingDateOf(amzDate),
    sessionToken: param("X-Amz-Security-Token"),
    expiresSeconds,
  };
}

/** The scope must name this endpoint's service (and region, when given) and the day of the amz-date. */
export function checkScope(signed: SignedRequest, expected: { service: string; region?: string }): void {
  const { scope, amzDate } = signed;
  if (expected.region !== undefined && scope.region !== expected.region) {
    throw new AuthFailure({ reason: "wrong-region", region: scope.region, expected: expected.region }, `signed for region '${scope.region}', not '${expected.region}'`);
  }
  if (scope.service !== expected.service) {
    throw new AuthFailure({ reason: "wrong-service", service: scope.service, expected: expected.service }, `signed for service '${scope.service}', not '${expected.service}'`);
  }
  if (scope.date !== amzDate.slice(0, 8)) {
    throw new AuthFailure({ reason: "scope-date-mismatch", scopeDate: scope.date, amzDate }, `the Credential's date ${scope.date} is not the day of ${amzDate}`);
  }
}

/** The last instant a presigned request is valid. */
function presignExpiresAt(signed: SignedRequest): Date {
  return new Date(signed.signingDate.getTime() + (signed.expiresSeconds ?? 0) * 1000);
}

/** Header-signed: dated within maxSkewMs of now. Presigned: not dated beyond now + maxSkewMs, and not expired. */
export function checkTime(signed: SignedRequest, now: Date, maxSkewMs = MAX_SKEW_MS): void {
  const { amzDate } = signed;
  const skew = signed.signingDate.getTime() - now.getTime();
  if (skew > maxSkewMs) throw new AuthFailure({ reason: "request-in-future", amzDate, now, maxSkewMs }, `the request is dated ${amzDate}, in the future`);
  if (!signed.presigned) {
    if (-skew > maxSkewMs) throw new AuthFailure({ reason: "request-too-old", amzDate, now, maxSkewMs }, `the request is dated ${amzDate}, too long ago`);
    return;
  }
  const expiresAt = presignExpiresAt(signed);
  if (now.getTime() > expiresAt.getTime()) {
    throw new AuthFailure({ reason: "presign-expired", expiresSeconds: signed.expiresSeconds ?? 0, expiresAt, now }, `the presigned request expired at ${expiresAt.toISOString()}`);
  }
}

/** The signer that recomputes a signature made with this session's credentials. */
export function sessionSigner(
  session: Pick<StsSession, "accessKeyId" | "secretAccessKey" | "sessionToken">,
  signed: SignedRequest,
  endpoint: {
    service: string;
    region: string;
    /** SigV4 escapes the path once more (the default); S3 signs its canonical path as given (false). */
    escapePath?: boolean;
  },
): SignatureV4 {
  return new SignatureV4({
    service: endpoint.service,
    region: endpoint.region,
    // Header-signed requests carry their token as a (signed) header already; presign re-adds it to the query.
    credentials: { accessKeyId: session.accessKeyId, secretAccessKey: session.secretAccessKey, sessionToken: signed.presigned ? session.sessionToken : undefined },
    sha256: Sha256,
    uriEscapePath: endpoint.escapePath ?? true,
    applyChecksum: false,
  });
}

/** The parts of a received request its signature covers. */
export interface ReceivedRequest {
  method: string;
  /** The path as the signer should see it (see sessionSigner's escapePath). */
  path: string;
  /** Every query parameter; X-Amz-Signature is left out of the canonical query. */
  query: QueryPairs;
  header: HeaderLookup;
  /**
   * The canonical request's payload hash line when x-amz-content-sha256 is not itself a
   * signed header: S3 presigned URLs use UNSIGNED_PAYLOAD, RDS tokens EMPTY_SHA256.
   */
  payloadHash: string;
}

function queryBag(query: QueryPairs): QueryParameterBag {
  const bag: QueryParameterBag = {};
  for (const [name, value] of query) {
    if (name === "X-Amz-Signature") continue;
    const existing = bag[name];
    bag[name] = existing === undefined || existing === null ? value : [...(Array.isArray(existing) ? existing : [existing]), value];
  }
  return bag;
}

/** Re-signs the request as received with the signer, and the result must equal the presented signature. */
export async function verifySignature(received: ReceivedRequest, signed: SignedRequest, signer: SignatureV4): Promise<void> {
  // A listed header that is absent signs as empty, as in S3.
  const headers: Record<string, string> = {};
  for (const name of signed.signedHeaders) headers[name] = received.header(name) ?? "";
  const signableHeaders = new Set(signed.signedHeaders);
  // The signer takes the payload hash line from x-amz-content-sha256; when that header is
  // not signed, it is added for the hash line alone.
  const unsignableHeaders = new Set<string>();
  if (!signableHeaders.has("x-amz-content-sha256")) {
    headers["x-amz-content-sha256"] = received.payloadHash;
    unsignableHeaders.add("x-amz-content-sha256");
  }
  const request: HttpRequest = { method: received.method, protocol: "http:", hostname: "", path: received.path, query: queryBag(received.query), headers };
  let expected: string;
  if (signed.presigned) {
    const presigned = await signer.presign(request, {
      signingDate: signed.signingDate,
      expiresIn: signed.expiresSeconds,
      signableHeaders,
      unsignableHeaders,
      // Every header passed here was sent as a header; none may move into the query.
      unhoistableHeaders: new Set(Object.keys(headers)),
    });
    expected = String(presigned.query?.["X-Amz-Signature"] ?? "");
  } else {
    const signedRequest = await signer.sign(request, { signingDate: signed.signingDate, signableHeaders, unsignableHeaders });
    expected = /Signature=([0-9a-f]{64})/.exec(String(signedRequest.headers.authorization))?.[1] ?? "";
  }
  if (!constantTimeEqual(expected, signed.signature)) {
    throw new AuthFailure({ reason: "signature-mismatch", accessKeyId: signed.scope.accessKeyId }, "the signature does not match the one recomputed with the session's secret");
  }
}
