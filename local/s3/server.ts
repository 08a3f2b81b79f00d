// The Amazon S3 stand-in: s3rver (an independent S3 implementation, run by Node in
// local/s3rver_child.mjs) behind a gate that is as strict as S3 about who may do what.
// The gate verifies every request's SigV4 signature (header-signed or presigned) with
// the secret the STS stand-in issued, checks the session token and its expiry, asks STS
// whether the session's policies allow the S3 action on the resource, decodes aws-chunked
// bodies and checks payload hashes and checksums, then streams the request to s3rver.
// It talks to STS only over HTTP (GET /_local/sessions/<id>, POST /_local/authorize).
//
// Tests and tools reach it through /_local/: POST|DELETE /_local/faults, GET /_local/stats,
// POST /_local/stats/reset (no bucket can be named `_local`, so these never shadow S3).
//
// Run alone: bun local/s3.ts --sts-url http://127.0.0.1:PORT [--port N] [--region R] [--data-dir DIR]
import { spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes, timingSafeEqual, type Hash as NodeHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { Readable, Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Hash } from "@smithy/hash-node";
import { SignatureV4 } from "@smithy/signature-v4";
import type { HttpRequest, QueryParameterBag } from "@smithy/types";
import { closeServer, HttpError, listen, readBody, readJson, sendJson } from "../shared/http.ts";

// ---------------------------------------------------------------------------------------
// Limits and fixed values (S3 API reference and SigV4 documentation)

const DEFAULT_REGION = "us-east-1";
/** SigV4: a header-signed request dated more than 15 minutes from the server's clock is refused. */
const MAX_SKEW_MS = 15 * 60 * 1000;
/** SigV4: a presigned URL lives at most 7 days. */
const MAX_PRESIGN_SECONDS = 604_800;
/** DeleteObjects takes at most 1000 keys; 1000 keys of 1024 bytes plus XML stay under 2 MiB. */
const MAX_DELETE_KEYS = 1000;
const MAX_DELETE_BODY_BYTES = 2 * 1024 * 1024;
/** aws-chunked chunk headers and trailer lines are short; a longer line is a broken body, not data. */
const MAX_CHUNK_LINE_BYTES = 4096;
/** Parallel STS checks and s3rver deletes for one DeleteObjects: enough to keep 1000 keys quick. */
const DELETE_CONCURRENCY = 16;
/** s3rver knows only this account; it never checks V4 signatures, but it wants a well-formed one. */
const S3RVER_CREDENTIALS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" };
const S3_XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/";
const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/** How long s3rver (a Node child) gets to print its port before start fails. */
const CHILD_START_TIMEOUT_MS = 15_000;
const CHILD_SCRIPT = fileURLToPath(new URL("./s3rver_child.mjs", import.meta.url));
/** The hash constructor the SDK itself hands its SigV4 signer in Node. */
const Sha256 = Hash.bind(null, "sha256");

const UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD";
const STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
const STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
/** Streaming variants S3 accepts that this gate cannot verify yet; refused rather than trusted. */
const STREAMING_UNVERIFIED = ["STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD", "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER"];

/** Query parameters that carry a presigned URL's signature; never forwarded to s3rver. */
const PRESIGN_PARAMS = ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Security-Token", "X-Amz-Content-Sha256"];
/** Request headers that are about this hop (auth, framing, checksums the gate verified): s3rver gets none of them. */
const HOP_HEADERS = new Set([
  "authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256", "x-amz-decoded-content-length",
  "x-amz-trailer", "x-amz-sdk-checksum-algorithm", "x-amz-checksum-algorithm", "expect", "connection", "keep-alive",
  "transfer-encoding", "content-length", "content-md5", "host", "te", "upgrade",
]);
const RESPONSE_HOP_HEADERS = new Set(["connection", "keep-alive", "transfer-encoding", "x-amz-request-id", "x-amz-id-2"]);
/** Query names that select a sub-API (S3's "subresources"); any not handled below is refused. */
const SUBRESOURCES = [
  "accelerate", "acl", "analytics", "attributes", "cors", "delete", "encryption", "intelligent-tiering", "inventory",
  "legal-hold", "lifecycle", "location", "logging", "metrics", "notification", "object-lock", "ownershipControls",
  "partNumber", "policy", "policyStatus", "publicAccessBlock", "replication", "requestPayment", "restore", "retention",
  "select", "tagging", "torrent", "uploadId", "uploads", "versionId", "versioning", "versions", "website",
];
/** S3's bucket naming rules; also keeps `..` out of s3rver's file paths. */
const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

const MESSAGES = {
  accessDenied: "Access Denied",
  unknownKey: "The AWS Access Key Id you provided does not exist in our records.",
  invalidToken: "The provided token is malformed or otherwise invalid.",
  expiredToken: "The provided token has expired.",
  signatureMismatch: "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
  skewed: "The difference between the request time and the current time is too large.",
  incompleteBody: "You did not provide the number of bytes specified by the Content-Length HTTP header",
  missingLength: "You must provide the Content-Length HTTP header.",
  malformedXml: "The XML you provided was not well-formed or did not validate against our published schema",
  notImplemented: "A header or parameter you provided implies functionality that is not implemented",
  internal: "We encountered an internal error. Please try again.",
  slowDown: "Please reduce your request rate.",
};

// ---------------------------------------------------------------------------------------
// Public API

export interface S3Faults {
  /** The error the next `count` S3 requests get instead of reaching s3rver: 500 InternalError or 503 SlowDown. */
  status: 500 | 503;
  count: number;
  /** How many of the next requests that reach s3rver have their connection cut mid-response. */
  dropConnections: number;
}

export interface S3Stats {
  /** Requests by S3 operation (PutObject, ListObjectsV2, ...), refused ones included. */
  calls: Record<string, number>;
  /** Error responses by S3 error code. */
  errors: Record<string, number>;
}

export interface S3Options {
  /** The STS stand-in that issued the credentials: sessions and policy decisions come from it. */
  stsUrl: string;
  /** The one region this endpoint serves; requests signed for another are refused. */
  region?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
  host?: string;
  /** Where s3rver keeps buckets; a temp dir (removed on close) when not given. */
  dataDir?: string;
}

export interface S3StandIn {
  url: string;
  region: string;
  /** Flip these to inject failures; POST /_local/faults does the same over HTTP. */
  faults: S3Faults;
  stats(): S3Stats;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------
// Errors in S3's XML shape, so the SDK surfaces err.name = Code

const ERROR_STATUS: Record<string, number> = {
  AccessDenied: 403, InvalidAccessKeyId: 403, SignatureDoesNotMatch: 403, RequestTimeTooSkewed: 403,
  InvalidToken: 400, ExpiredToken: 400, AuthorizationHeaderMalformed: 400, AuthorizationQueryParametersError: 400,
  InvalidRequest: 400, InvalidArgument: 400, InvalidURI: 400, InvalidBucketName: 400, MalformedXML: 400,
  XAmzContentSHA256Mismatch: 400, IncompleteBody: 400, BadDigest: 400, MissingContentLength: 411,
  NoSuchBucket: 404, NotImplemented: 501, InternalError: 500, SlowDown: 503,
};

class S3Error extends Error {
  readonly status: number;
  constructor(
    readonly code: string,
    message: string,
    /** Extra elements S3 puts in the error document (Region, AWSAccessKeyId, ...). */
    readonly details: Record<string, string> = {},
  ) {
    super(message);
    this.status = ERROR_STATUS[code] ?? 500;
  }
}

function xmlEscape(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&${{ "&": "amp", "<": "lt", ">": "gt", '"': "quot", "'": "apos" }[c]};`);
}

function xmlUnescape(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#\d+|amp|lt|gt|quot|apos);/g, (_, entity: string) => {
    if (entity.startsWith("#x")) return String.fromCodePoint(parseInt(entity.slice(2), 16));
    if (entity.startsWith("#")) return String.fromCodePoint(parseInt(entity.slice(1), 10));
    return { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" }[entity] ?? "";
  });
}

interface RequestIds {
  requestId: string;
  hostId: string;
}

function newRequestIds(): RequestIds {
  return { requestId: randomBytes(8).toString("hex").toUpperCase(), hostId: randomBytes(32).toString("base64") };
}

function idHeaders(ids: RequestIds): OutgoingHttpHeaders {
  return { "x-amz-request-id": ids.requestId, "x-amz-id-2": ids.hostId };
}

function errorXml(err: S3Error, ids: RequestIds): string {
  const details = Object.entries(err.details).map(([name, value]) => `<${name}>${xmlEscape(value)}</${name}>`).join("");
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${err.code}</Code><Message>${xmlEscape(err.message)}</Message>${details}` +
    `<RequestId>${ids.requestId}</RequestId><HostId>${ids.hostId}</HostId></Error>`;
}

function sendS3Error(req: IncomingMessage, res: ServerResponse, err: S3Error, ids: RequestIds): void {
  // Whatever body the client is still sending is read and dropped, so the connection stays usable.
  req.resume();
  const body = errorXml(err, ids);
  res.writeHead(err.status, { ...idHeaders(ids), "content-type": "application/xml", "content-length": Buffer.byteLength(body) });
  // A HEAD error has no body; the SDK names it from the status alone, as with real S3.
  res.end(req.method === "HEAD" ? undefined : body);
}

// ---------------------------------------------------------------------------------------
// The request target: bucket, key and query as S3 reads them (path-style only)

interface QueryParam {
  name: string;
  value: string;
  /** As received, for forwarding unchanged. */
  raw: string;
}

interface Target {
  method: string;
  /** The path as received, still percent-encoded. */
  rawPath: string;
  /** The path as SigV4 canonicalises it for S3: each segment decoded once and encoded once. */
  canonicalPath: string;
  bucket?: string;
  key?: string;
  params: QueryParam[];
}

/** RFC 3986 encoding, as SigV4 canonical requests use it. */
function uriEscape(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function decodeComponent(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new S3Error("InvalidURI", "Couldn't parse the specified URI.");
  }
}

function parseQuery(rawQuery: string): QueryParam[] {
  return rawQuery.split("&").filter(Boolean).map((raw) => {
    const eq = raw.indexOf("=");
    // S3 (like SigV4) reads `+` in a query as a plus sign, not a space.
    return eq < 0 ? { name: decodeComponent(raw), value: "", raw } : { name: decodeComponent(raw.slice(0, eq)), value: decodeComponent(raw.slice(eq + 1)), raw };
  });
}

function parseTarget(req: IncomingMessage): Target {
  const url = req.url ?? "/";
  const q = url.indexOf("?");
  const rawPath = q < 0 ? url : url.slice(0, q);
  const segments = rawPath.split("/").slice(1).map(decodeComponent);
  const [bucket = "", ...keySegments] = segments;
  const key = keySegments.join("/");
  return {
    method: req.method ?? "GET",
    rawPath,
    canonicalPath: `/${segments.map(uriEscape).join("/")}`,
    bucket: bucket || undefined,
    key: key || undefined,
    params: parseQuery(q < 0 ? "" : url.slice(q + 1)),
  };
}

function param(target: Target, name: string): string | undefined {
  return target.params.find((p) => p.name === name)?.value;
}

function queryBag(params: QueryParam[]): QueryParameterBag {
  const bag: QueryParameterBag = {};
  for (const { name, value } of params) {
    const existing = bag[name];
    bag[name] = existing === undefined || existing === null ? value : [...(Array.isArray(existing) ? existing : [existing]), value];
  }
  return bag;
}

/** A header's values as SigV4 reads them: every occurrence, trimmed, joined by commas. */
function headerValue(req: IncomingMessage, name: string): string | undefined {
  const values: string[] = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i]!.toLowerCase() === name) values.push(req.rawHeaders[i + 1]!.trim());
  }
  return values.length ? values.join(",") : undefined;
}

// ---------------------------------------------------------------------------------------
// Operations and the IAM checks each needs

interface PermissionCheck {
  action: string;
  resource: string;
  context?: Record<string, string>;
}

interface Operation {
  name: string;
  checks: PermissionCheck[];
  /** CopyObject's source, re-encoded for s3rver. */
  copySource?: { bucket: string; key: string };
}

function notImplemented(what: string): S3Error {
  return new S3Error("NotImplemented", `${MESSAGES.notImplemented} (this S3 stand-in does not support ${what})`);
}

function objectArn(bucket: string, key: string): string {
  return `arn:aws:s3:::${bucket}/${key}`;
}

/** x-amz-copy-source is `bucket/key` (optionally with a leading slash), URL-encoded. */
function parseCopySource(header: string): { bucket: string; key: string } {
  const [path = "", version] = header.replace(/^\//, "").split("?");
  if (version !== undefined) throw notImplemented("object versions (x-amz-copy-source with ?versionId)");
  const slash = path.indexOf("/");
  if (slash <= 0 || slash === path.length - 1) {
    throw new S3Error("InvalidArgument", "Copy Source must mention the source bucket and key: sourcebucket/sourcekey", { ArgumentName: "x-amz-copy-source", ArgumentValue: header });
  }
  return { bucket: decodeComponent(path.slice(0, slash)), key: decodeComponent(path.slice(slash + 1)) };
}

function listContext(target: Target): Record<string, string> {
  const context: Record<string, string> = {};
  for (const name of ["prefix", "delimiter", "max-keys"]) {
    const value = param(target, name);
    if (value !== undefined) context[`s3:${name}`] = value;
  }
  return context;
}

function classifyBucket(target: Target, bucket: string, sub: string | undefined): Operation {
  const resource = `arn:aws:s3:::${bucket}`;
  switch (`${target.method}${sub ? ` ?${sub}` : ""}`) {
    case "GET":
      return {
        name: param(target, "list-type") === "2" ? "ListObjectsV2" : "ListObjects",
        checks: [{ action: "s3:ListBucket", resource, context: listContext(target) }],
      };
    case "HEAD":
      return { name: "HeadBucket", checks: [{ action: "s3:ListBucket", resource }] };
    case "PUT":
      return { name: "CreateBucket", checks: [{ action: "s3:CreateBucket", resource }] };
    case "DELETE":
      return { name: "DeleteBucket", checks: [{ action: "s3:DeleteBucket", resource }] };
    case "GET ?location":
      return { name: "GetBucketLocation", checks: [{ action: "s3:GetBucketLocation", resource }] };
    case "POST ?delete":
      // Checked key by key once the body is read (see deleteObjects).
      return { name: "DeleteObjects", checks: [] };
    default:
      throw notImplemented(`${target.method} on a bucket${sub ? ` with ?${sub}` : ""}`);
  }
}

function classifyObject(target: Target, headers: IncomingHttpHeaders, bucket: string, key: string, sub: string | undefined): Operation {
  if (key.split("/").some((segment) => segment === "." || segment === "..")) {
    // s3rver keeps objects as files; these segments would resolve outside the bucket.
    throw notImplemented("keys with '.' or '..' path segments");
  }
  const resource = objectArn(bucket, key);
  const copySourceHeader = headers["x-amz-copy-source"];
  const copying = typeof copySourceHeader === "string";
  switch (`${target.method}${sub ? ` ?${sub}` : ""}${copying ? " +copy" : ""}`) {
    case "GET":
      return { name: "GetObject", checks: [{ action: "s3:GetObject", resource }] };
    case "HEAD":
      return { name: "HeadObject", checks: [{ action: "s3:GetObject", resource }] };
    case "PUT":
      return { name: "PutObject", checks: [{ action: "s3:PutObject", resource }] };
    case "PUT +copy": {
      const source = parseCopySource(copySourceHeader as string);
      return {
        name: "CopyObject",
        checks: [{ action: "s3:PutObject", resource }, { action: "s3:GetObject", resource: objectArn(source.bucket, source.key) }],
        copySource: source,
      };
    }
    case "DELETE":
      return { name: "DeleteObject", checks: [{ action: "s3:DeleteObject", resource }] };
    case "POST ?uploads":
      return { name: "CreateMultipartUpload", checks: [{ action: "s3:PutObject", resource }] };
    case "PUT ?uploadId":
      return { name: "UploadPart", checks: [{ action: "s3:PutObject", resource }] };
    case "POST ?uploadId":
      return { name: "CompleteMultipartUpload", checks: [{ action: "s3:PutObject", resource }] };
    case "DELETE ?uploadId":
      return { name: "AbortMultipartUpload", checks: [{ action: "s3:AbortMultipartUpload", resource }] };
    default:
      throw notImplemented(`${target.method} on an object${sub ? ` with ?${sub}` : ""}${copying ? " and x-amz-copy-source" : ""}`);
  }
}

function classify(target: Target, headers: IncomingHttpHeaders): Operation {
  const { bucket, key } = target;
  // UploadPart carries both partNumber and uploadId; uploadId names the sub-API.
  const sub = param(target, "uploadId") !== undefined ? "uploadId" : SUBRESOURCES.find((name) => param(target, name) !== undefined);
  if (!bucket) {
    if (target.method === "GET" && !sub) return { name: "ListBuckets", checks: [{ action: "s3:ListAllMyBuckets", resource: "*" }] };
    throw notImplemented(`${target.method} on the service endpoint`);
  }
  if (!BUCKET_NAME.test(bucket) || bucket.includes("..")) throw new S3Error("InvalidBucketName", "The specified bucket is not valid.", { BucketName: bucket });
  return key === undefined ? classifyBucket(target, bucket, sub) : classifyObject(target, headers, bucket, key, sub);
}

// ---------------------------------------------------------------------------------------
// Authentication: parse the signature, look the key up in STS, recompute the signature

interface CredentialScope {
  accessKeyId: string;
  date: string;
  region: string;
  service: string;
}

interface SignedRequest {
  presigned: boolean;
  scope: CredentialScope;
  signedHeaders: string[];
  signature: string;
  amzDate: string;
  signingDate: Date;
  sessionToken?: string;
  /** Presigned URLs only: seconds of validity from amzDate. */
  expiresSeconds?: number;
}

interface StsSession {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  expiration: string;
  roleArn: string;
  assumedRoleArn: string;
  accountId: string;
}

interface Caller {
  signed: SignedRequest;
  session: StsSession;
  signer: SignatureV4;
}

/** Wraps a problem with the signature in the error family of where it came from (header or query). */
function malformed(presigned: boolean, problem: string, details: Record<string, string> = {}): S3Error {
  return presigned
    ? new S3Error("AuthorizationQueryParametersError", `Error parsing the X-Amz-Credential parameter; ${problem}`, details)
    : new S3Error("AuthorizationHeaderMalformed", `The authorization header is malformed; ${problem}`, details);
}

function parseScope(credential: string, presigned: boolean): CredentialScope {
  const parts = credential.split("/");
  if (parts.length !== 5 || parts.some((p) => !p)) {
    throw malformed(presigned, 'the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".');
  }
  const [accessKeyId, date, region, service, terminal] = parts as [string, string, string, string, string];
  if (terminal !== "aws4_request") throw malformed(presigned, `incorrect terminal '${terminal}'. This endpoint uses 'aws4_request'.`);
  return { accessKeyId, date, region, service };
}

function parseAmzDate(amzDate: string | undefined, presigned: boolean): Date {
  const match = amzDate ? /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(amzDate) : null;
  if (!match) {
    throw presigned
      ? new S3Error("AuthorizationQueryParametersError", "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
      : new S3Error("AccessDenied", "AWS authentication requires a valid Date or x-amz-date header");
  }
  const [, y, mo, d, h, mi, s] = match;
  return new Date(`${y}-${mo}-${d}T${h}:${mi}:${s}Z`);
}

const AUTH_HEADER = /^AWS4-HMAC-SHA256\s+Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([^,\s]+)$/;

function parseHeaderSignature(req: IncomingMessage, header: string): SignedRequest {
  if (/^AWS\s/.test(header)) throw new S3Error("InvalidRequest", "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.");
  const match = AUTH_HEADER.exec(header.trim());
  if (!match) throw malformed(false, "the authorization header requires three components: Credential, SignedHeaders, and Signature.");
  const amzDate = headerValue(req, "x-amz-date");
  return {
    presigned: false,
    scope: parseScope(match[1]!, false),
    signedHeaders: match[2]!.split(";"),
    signature: match[3]!,
    amzDate: amzDate ?? "",
    signingDate: parseAmzDate(amzDate, false),
    sessionToken: headerValue(req, "x-amz-security-token"),
  };
}

function parseQuerySignature(target: Target): SignedRequest {
  if (param(target, "X-Amz-Algorithm") !== "AWS4-HMAC-SHA256") {
    throw new S3Error("AuthorizationQueryParametersError", 'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"');
  }
  const [credential, amzDate, expires, signedHeaders, signature] = ["X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature"].map((n) => param(target, n));
  if (!credential || !amzDate || !expires || !signedHeaders || !signature) {
    throw new S3Error("AuthorizationQueryParametersError",
      "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.");
  }
  const expiresSeconds = Number(expires);
  if (!/^\d+$/.test(expires)) throw new S3Error("AuthorizationQueryParametersError", "X-Amz-Expires should be a number");
  if (expiresSeconds > MAX_PRESIGN_SECONDS) {
    throw new S3Error("AuthorizationQueryParametersError", `X-Amz-Expires must be less than a week (in seconds) that is ${MAX_PRESIGN_SECONDS} seconds`);
  }
  return {
    presigned: true,
    scope: parseScope(credential, true),
    signedHeaders: signedHeaders.split(";"),
    signature,
    amzDate,
    signingDate: parseAmzDate(amzDate, true),
    sessionToken: param(target, "X-Amz-Security-Token"),
    expiresSeconds,
  };
}

/** undefined for an anonymous request. */
function parseSignature(req: IncomingMessage, target: Target): SignedRequest | undefined {
  const header = headerValue(req, "authorization");
  const query = param(target, "X-Amz-Algorithm") !== undefined;
  if (header !== undefined && query) {
    throw new S3Error("InvalidArgument", "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified",
      { ArgumentName: "Authorization" });
  }
  if (header !== undefined) return parseHeaderSignature(req, header);
  if (query) return parseQuerySignature(target);
  if (param(target, "Signature") !== undefined || param(target, "AWSAccessKeyId") !== undefined) {
    throw new S3Error("InvalidRequest", "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.");
  }
  return undefined;
}

function checkScope(signed: SignedRequest, region: string): void {
  const { scope, presigned } = signed;
  if (scope.region !== region) throw malformed(presigned, `the region '${scope.region}' is wrong; expecting '${region}'`, { Region: region });
  if (scope.service !== "s3") throw malformed(presigned, `incorrect service '${scope.service}'. This endpoint belongs to 's3'.`);
  if (scope.date !== signed.amzDate.slice(0, 8)) throw malformed(presigned, "Invalid credential date. Date is not the same as X-Amz-Date.");
}

function isoSeconds(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

function checkTime(signed: SignedRequest, now: Date): void {
  const skew = signed.signingDate.getTime() - now.getTime();
  if (!signed.presigned) {
    if (Math.abs(skew) > MAX_SKEW_MS) {
      throw new S3Error("RequestTimeTooSkewed", MESSAGES.skewed, { RequestTime: signed.amzDate, ServerTime: isoSeconds(now), MaxAllowedSkewMilliseconds: String(MAX_SKEW_MS) });
    }
    return;
  }
  if (skew > MAX_SKEW_MS) throw new S3Error("AccessDenied", "Request is not valid yet");
  const expires = new Date(signed.signingDate.getTime() + (signed.expiresSeconds ?? 0) * 1000);
  if (now.getTime() > expires.getTime()) {
    throw new S3Error("AccessDenied", "Request has expired", { "X-Amz-Expires": String(signed.expiresSeconds), Expires: isoSeconds(expires), ServerTime: isoSeconds(now) });
  }
}

function constantTimeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a, "utf8");
  const right = Buffer.from(b, "utf8");
  return left.length === right.length && timingSafeEqual(left, right);
}

async function fetchSession(stsUrl: string, accessKeyId: string): Promise<StsSession | undefined> {
  const res = await fetch(`${stsUrl}/_local/sessions/${encodeURIComponent(accessKeyId)}`);
  if (res.status === 404) return undefined;
  if (!res.ok) throw new Error(`STS stand-in answered ${res.status} to a session lookup`);
  return (await res.json()) as StsSession;
}

function checkSession(signed: SignedRequest, session: StsSession, now: Date): void {
  if (!signed.sessionToken || !constantTimeEqual(signed.sessionToken, session.sessionToken)) throw new S3Error("InvalidToken", MESSAGES.invalidToken);
  if (new Date(session.expiration).getTime() <= now.getTime()) throw new S3Error("ExpiredToken", MESSAGES.expiredToken);
}

/** The signed headers' values as received; a listed header that is absent signs as empty, as in S3. */
function signedHeaderValues(req: IncomingMessage, signed: SignedRequest): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const name of signed.signedHeaders) headers[name] = headerValue(req, name) ?? "";
  return headers;
}

/** Re-signs the request as received with the session's secret, using the SDK's own signer. */
async function expectedSignature(req: IncomingMessage, target: Target, caller: Caller): Promise<string> {
  const { signed, signer } = caller;
  const headers = signedHeaderValues(req, signed);
  const signableHeaders = new Set(signed.signedHeaders);
  // The payload hash line comes from x-amz-content-sha256 even when it is not a signed header,
  // and presigned URLs always hash the payload as UNSIGNED-PAYLOAD.
  const payloadHash = signed.presigned ? UNSIGNED_PAYLOAD : headerValue(req, "x-amz-content-sha256");
  const unsignableHeaders = new Set<string>();
  if (!signableHeaders.has("x-amz-content-sha256") && payloadHash !== undefined) {
    headers["x-amz-content-sha256"] = payloadHash;
    unsignableHeaders.add("x-amz-content-sha256");
  }
  const request: HttpRequest = {
    method: target.method,
    protocol: "http:",
    hostname: "",
    path: target.canonicalPath,
    query: queryBag(target.params.filter((p) => p.name !== "X-Amz-Signature")),
    headers,
  };
  if (signed.presigned) {
    const presigned = await signer.presign(request, {
      signingDate: signed.signingDate,
      expiresIn: signed.expiresSeconds,
      signableHeaders,
      unsignableHeaders,
      // Every header passed here was sent as a header; none may move into the query.
      unhoistableHeaders: new Set(Object.keys(headers)),
    });
    return String(presigned.query?.["X-Amz-Signature"] ?? "");
  }
  const signedRequest = await signer.sign(request, { signingDate: signed.signingDate, signableHeaders, unsignableHeaders });
  return /Signature=([0-9a-f]{64})/.exec(String(signedRequest.headers.authorization))?.[1] ?? "";
}

async function authenticate(gate: Gate, req: IncomingMessage, target: Target): Promise<Caller> {
  const signed = parseSignature(req, target);
  if (!signed) throw new S3Error("AccessDenied", MESSAGES.accessDenied);
  checkScope(signed, gate.region);
  const session = await fetchSession(gate.stsUrl, signed.scope.accessKeyId);
  if (!session) throw new S3Error("InvalidAccessKeyId", MESSAGES.unknownKey, { AWSAccessKeyId: signed.scope.accessKeyId });
  const now = new Date();
  checkSession(signed, session, now);
  checkTime(signed, now);
  const signer = new SignatureV4({
    service: "s3",
    region: gate.region,
    // Header-signed requests carry their token as a (signed) header already; presign re-adds it to the query.
    credentials: { accessKeyId: session.accessKeyId, secretAccessKey: session.secretAccessKey, sessionToken: signed.presigned ? session.sessionToken : undefined },
    sha256: Sha256,
    uriEscapePath: false,
    applyChecksum: false,
  });
  const caller = { signed, session, signer };
  if (!constantTimeEqual(await expectedSignature(req, target, caller), signed.signature)) {
    throw new S3Error("SignatureDoesNotMatch", MESSAGES.signatureMismatch, { AWSAccessKeyId: signed.scope.accessKeyId });
  }
  return caller;
}

// ---------------------------------------------------------------------------------------
// Authorization: STS evaluates the session's policies

async function isAllowed(stsUrl: string, session: StsSession, check: PermissionCheck): Promise<{ allowed: boolean; reason: string }> {
  const res = await fetch(`${stsUrl}/_local/authorize`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ accessKeyId: session.accessKeyId, ...check }),
  });
  if (res.status === 404) throw new S3Error("InvalidAccessKeyId", MESSAGES.unknownKey, { AWSAccessKeyId: session.accessKeyId });
  if (!res.ok) throw new Error(`STS stand-in answered ${res.status} to an authorization check`);
  return (await res.json()) as { allowed: boolean; reason: string };
}

async function authorize(gate: Gate, caller: Caller, checks: PermissionCheck[]): Promise<void> {
  for (const check of checks) {
    const decision = await isAllowed(gate.stsUrl, caller.session, check);
    if (!decision.allowed) {
      throw new S3Error("AccessDenied",
        `User: ${caller.session.assumedRoleArn} is not authorized to perform: ${check.action} on resource: "${check.resource}" because ${decision.reason}`);
    }
  }
}

// ---------------------------------------------------------------------------------------
// Bodies: aws-chunked decoding, payload hash, checksums, declared length

type Payload =
  | { encoding: "plain"; sha256?: string }
  | { encoding: "aws-chunked"; signedChunks: boolean };

function payloadOf(req: IncomingMessage, signed: SignedRequest): Payload {
  if (signed.presigned) return { encoding: "plain" };
  const declared = headerValue(req, "x-amz-content-sha256");
  if (declared === undefined) throw new S3Error("InvalidRequest", "Missing required header for this request: x-amz-content-sha256");
  if (/^[0-9a-f]{64}$/i.test(declared)) return { encoding: "plain", sha256: declared.toLowerCase() };
  if (declared === UNSIGNED_PAYLOAD) return { encoding: "plain" };
  if (declared === STREAMING_UNSIGNED_TRAILER) return { encoding: "aws-chunked", signedChunks: false };
  if (declared === STREAMING_SIGNED) return { encoding: "aws-chunked", signedChunks: true };
  if (STREAMING_UNVERIFIED.includes(declared)) throw notImplemented(`x-amz-content-sha256: ${declared} (use ${STREAMING_UNSIGNED_TRAILER} or ${STREAMING_SIGNED})`);
  throw new S3Error("InvalidArgument", `x-amz-content-sha256 must be ${UNSIGNED_PAYLOAD}, ${STREAMING_UNSIGNED_TRAILER}, ${STREAMING_SIGNED}, or a valid sha256 value.`,
    { ArgumentName: "x-amz-content-sha256", ArgumentValue: declared });
}

/** The body's length once decoded: what s3rver receives. */
function decodedLength(req: IncomingMessage, payload: Payload): number {
  const declared = headerValue(req, payload.encoding === "aws-chunked" ? "x-amz-decoded-content-length" : "content-length");
  if (declared === undefined) {
    // No length and no framing means no body; a body framed by chunked encoding alone has no length S3 can trust.
    if (payload.encoding === "plain" && headerValue(req, "transfer-encoding") === undefined) return 0;
    throw new S3Error("MissingContentLength", MESSAGES.missingLength);
  }
  if (!/^\d+$/.test(declared)) throw new S3Error("InvalidArgument", "Invalid content length", { ArgumentName: "content-length", ArgumentValue: declared });
  return Number(declared);
}

const CRC32_TABLE = (() => {
  const table = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c;
  }
  return table;
})();

interface ChecksumHasher {
  update(data: Buffer): void;
  digestBase64(): string;
}

/** CRC32 (the SDK's default flexible checksum); Node 20 has no zlib.crc32. */
class Crc32 implements ChecksumHasher {
  private crc = -1;
  update(data: Buffer): void {
    let c = this.crc;
    for (let i = 0; i < data.length; i++) c = CRC32_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
    this.crc = c;
  }
  digestBase64(): string {
    const out = Buffer.alloc(4);
    out.writeUInt32BE((this.crc ^ -1) >>> 0);
    return out.toString("base64");
  }
}

interface Checksum {
  /** As S3 names it in messages: CRC32, SHA1, SHA256. */
  name: string;
  hasher: ChecksumHasher;
  /** The base64 value the client declared: a header, or a trailer known only at the end. */
  expected: () => string | undefined;
}

/** The checksums this gate can verify; CRC32C and CRC64NVME are passed on unverified. */
function checksumHasher(algorithm: string): ChecksumHasher | undefined {
  if (algorithm === "crc32") return new Crc32();
  if (algorithm !== "sha1" && algorithm !== "sha256") return undefined;
  const hash = createHash(algorithm);
  return { update: (data) => void hash.update(data), digestBase64: () => hash.digest("base64") };
}

function checksumOf(req: IncomingMessage, payload: Payload, trailers: Map<string, string>): Checksum | undefined {
  const trailerName = payload.encoding === "aws-chunked" ? headerValue(req, "x-amz-trailer")?.toLowerCase() : undefined;
  const headerName = trailerName ?? ["crc32", "sha1", "sha256"].map((a) => `x-amz-checksum-${a}`).find((name) => headerValue(req, name) !== undefined);
  const algorithm = headerName?.match(/^x-amz-checksum-([a-z0-9]+)$/)?.[1];
  const hasher = algorithm ? checksumHasher(algorithm) : undefined;
  if (!headerName || !algorithm || !hasher) return undefined;
  const headerValueNow = headerValue(req, headerName);
  return { name: algorithm.toUpperCase(), hasher, expected: () => (trailerName ? trailers.get(trailerName) : headerValueNow) };
}

/**
 * Decodes aws-chunked framing: `<hex size>[;chunk-signature=<sig>]\r\n<data>\r\n` ... `0...\r\n`,
 * then trailer lines and an empty line. With signed chunks, each chunk's signature chains from
 * the previous one (the first from the request's signature) and is checked before its data counts.
 */
class AwsChunkedDecoder extends Transform {
  readonly trailers = new Map<string, string>();
  private state: "size" | "data" | "data-end" | "trailer" | "done" = "size";
  private leftover = Buffer.alloc(0);
  private remaining = 0;
  private chunkHash: NodeHash | undefined;
  private chunkSignature = "";

  constructor(private readonly verifyChunk: ((dataSha256: string, signature: string) => Promise<void>) | undefined) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.consume(chunk).then(() => callback(), callback);
  }

  override _flush(callback: TransformCallback): void {
    callback(this.state === "done" ? null : new S3Error("IncompleteBody", MESSAGES.incompleteBody));
  }

  private async consume(chunk: Buffer): Promise<void> {
    let data = this.leftover.length ? Buffer.concat([this.leftover, chunk]) : chunk;
    this.leftover = Buffer.alloc(0);
    while (data.length) {
      if (this.state === "data") {
        const take = Math.min(this.remaining, data.length);
        const piece = data.subarray(0, take);
        this.chunkHash?.update(piece);
        this.push(piece);
        this.remaining -= take;
        data = data.subarray(take);
        if (this.remaining === 0) await this.endChunk();
        continue;
      }
      const eol = data.indexOf("\r\n");
      if (eol < 0) {
        if (data.length > MAX_CHUNK_LINE_BYTES) throw this.broken("a chunk header or trailer line is too long");
        this.leftover = Buffer.from(data);
        return;
      }
      await this.line(data.subarray(0, eol).toString("latin1"));
      data = data.subarray(eol + 2);
    }
  }

  private async line(text: string): Promise<void> {
    switch (this.state) {
      case "size":
        return this.startChunk(text);
      case "data-end":
        if (text !== "") throw this.broken("chunk data is longer than its declared size");
        this.state = "size";
        return;
      case "trailer": {
        if (text === "") {
          this.state = "done";
          return;
        }
        const colon = text.indexOf(":");
        if (colon <= 0) throw this.broken(`malformed trailer line`);
        this.trailers.set(text.slice(0, colon).trim().toLowerCase(), text.slice(colon + 1).trim());
        return;
      }
      default:
        throw this.broken("data after the end of the aws-chunked body");
    }
  }

  private async startChunk(text: string): Promise<void> {
    const match = /^([0-9a-fA-F]{1,16})(?:;chunk-signature=([0-9a-f]{64}))?$/.exec(text);
    if (!match) throw this.broken(`malformed chunk header`);
    if (this.verifyChunk && !match[2]) throw new S3Error("SignatureDoesNotMatch", `${MESSAGES.signatureMismatch} (a chunk has no chunk-signature)`);
    this.remaining = parseInt(match[1]!, 16);
    this.chunkSignature = match[2] ?? "";
    this.chunkHash = this.verifyChunk ? createHash("sha256") : undefined;
    if (this.remaining > 0) {
      this.state = "data";
      return;
    }
    await this.verifyChunk?.(EMPTY_SHA256, this.chunkSignature);
    this.state = "trailer";
  }

  private async endChunk(): Promise<void> {
    if (this.chunkHash) await this.verifyChunk?.(this.chunkHash.digest("hex"), this.chunkSignature);
    this.state = "data-end";
  }

  private broken(problem: string): S3Error {
    return new S3Error("IncompleteBody", `${MESSAGES.incompleteBody} (aws-chunked body: ${problem})`);
  }
}

/** Chunk signatures chain: each signs the previous signature and its own data's hash. */
function chunkVerifier(caller: Caller): (dataSha256: string, signature: string) => Promise<void> {
  const { signed, signer } = caller;
  const scope = `${signed.scope.date}/${signed.scope.region}/s3/aws4_request`;
  let previous = signed.signature;
  return async (dataSha256, signature) => {
    const stringToSign = ["AWS4-HMAC-SHA256-PAYLOAD", signed.amzDate, scope, previous, EMPTY_SHA256, dataSha256].join("\n");
    const expected = await signer.sign(stringToSign, { signingDate: signed.signingDate });
    if (!constantTimeEqual(expected, signature)) throw new S3Error("SignatureDoesNotMatch", MESSAGES.signatureMismatch, { AWSAccessKeyId: signed.scope.accessKeyId });
    previous = signature;
  };
}

/**
 * Counts, hashes and checksums the decoded body, and holds back its last piece until all of
 * them match: a body that fails a check never fully reaches s3rver, so s3rver (which writes
 * through a temp file) stores nothing.
 */
class BodyVerifier extends Transform {
  private held: Buffer | undefined;
  private received = 0;
  private readonly sha256: NodeHash | undefined;

  constructor(private readonly expected: { length: number; sha256?: string; checksum?: Checksum }) {
    super();
    this.sha256 = expected.sha256 ? createHash("sha256") : undefined;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.received += chunk.length;
    if (this.received > this.expected.length) return callback(new S3Error("IncompleteBody", MESSAGES.incompleteBody));
    this.sha256?.update(chunk);
    this.expected.checksum?.hasher.update(chunk);
    if (this.held) this.push(this.held);
    this.held = chunk;
    callback();
  }

  override _flush(callback: TransformCallback): void {
    // Bun's Transform pushes flush data even alongside an error: never hand it the held piece then.
    const problem = this.problem();
    if (problem) callback(problem);
    else callback(null, this.held);
  }

  private problem(): S3Error | undefined {
    if (this.received !== this.expected.length) return new S3Error("IncompleteBody", MESSAGES.incompleteBody);
    const computed = this.sha256?.digest("hex");
    if (computed !== undefined && computed !== this.expected.sha256) {
      return new S3Error("XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed.",
        { ClientComputedContentSHA256: this.expected.sha256 ?? "", S3ComputedContentSHA256: computed });
    }
    const checksum = this.expected.checksum;
    if (checksum) {
      const declared = checksum.expected();
      if (declared === undefined) return new S3Error("InvalidRequest", `The x-amz-checksum-${checksum.name.toLowerCase()} trailer announced in x-amz-trailer is missing`);
      if (declared !== checksum.hasher.digestBase64()) return new S3Error("BadDigest", `The ${checksum.name} you specified did not match the calculated checksum.`);
    }
    return undefined;
  }
}

/** The request body as s3rver should get it: decoded, and verified before its last byte passes. */
function verifiedBody(req: IncomingMessage, caller: Caller): { body: Readable; length: number } {
  const payload = payloadOf(req, caller.signed);
  const length = decodedLength(req, payload);
  const decoder = payload.encoding === "aws-chunked" ? new AwsChunkedDecoder(payload.signedChunks ? chunkVerifier(caller) : undefined) : undefined;
  const verifier = new BodyVerifier({
    length,
    sha256: payload.encoding === "plain" ? payload.sha256 : undefined,
    checksum: checksumOf(req, payload, decoder?.trailers ?? new Map()),
  });
  // Not stream.pipeline: on a bad body it would destroy `req`, and with it the socket the
  // error response must go out on. Errors are funnelled into `verifier`, which the caller reads.
  const fail = (err: Error) => verifier.destroy(err);
  req.on("error", fail);
  if (decoder) {
    decoder.on("error", fail);
    req.pipe(decoder).pipe(verifier);
  } else {
    req.pipe(verifier);
  }
  return { body: verifier, length };
}

// ---------------------------------------------------------------------------------------
// s3rver: forwarding

interface Upstream {
  host: string;
  port: number;
}

const s3rverSigner = (region: string) =>
  new SignatureV4({ service: "s3", region, credentials: S3RVER_CREDENTIALS, sha256: Sha256, uriEscapePath: false, applyChecksum: false });

/** The client's headers minus this hop's auth and framing, signed for s3rver's own account. */
async function s3rverHeaders(gate: Gate, method: string, rawPath: string, req: IncomingMessage | undefined, length: number, copySource?: { bucket: string; key: string }): Promise<OutgoingHttpHeaders> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req?.headers ?? {})) {
    if (value === undefined || HOP_HEADERS.has(name) || name.startsWith("x-amz-checksum-") || name.startsWith("proxy-")) continue;
    headers[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  const encodings = (headers["content-encoding"] ?? "").split(",").map((e) => e.trim()).filter((e) => e && e !== "aws-chunked");
  if (encodings.length) headers["content-encoding"] = encodings.join(", ");
  else delete headers["content-encoding"];
  // s3rver decodes x-amz-copy-source with decodeURI, which leaves %2B and friends encoded.
  if (copySource) headers["x-amz-copy-source"] = encodeURI(`/${copySource.bucket}/${copySource.key}`);
  headers.host = `${gate.upstream.host}:${gate.upstream.port}`;
  headers["x-amz-content-sha256"] = UNSIGNED_PAYLOAD;
  headers["content-length"] = String(length);
  const signed = await gate.s3rverSigner.sign(
    { method, protocol: "http:", hostname: gate.upstream.host, port: gate.upstream.port, path: rawPath, query: {}, headers },
    { signingDate: new Date() },
  );
  return signed.headers;
}

/** The query minus a presigned URL's auth parameters (s3rver would treat them as a second auth mechanism). */
function forwardedQuery(target: Target): string {
  const kept = target.params.filter((p) => !PRESIGN_PARAMS.includes(p.name)).map((p) => p.raw);
  return kept.length ? `?${kept.join("&")}` : "";
}

function exchange(gate: Gate, method: string, path: string, headers: OutgoingHttpHeaders, body: Readable | Buffer | undefined): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const upstream = httpRequest({ host: gate.upstream.host, port: gate.upstream.port, method, path, headers }, resolve);
    if (!(body instanceof Readable)) {
      upstream.on("error", reject);
      return void upstream.end(body);
    }
    // A body that fails verification is the error to report, not the hang-up it causes upstream.
    let bodyError: unknown;
    body.once("error", (err) => {
      bodyError = err;
    });
    upstream.on("error", (err) => reject(bodyError ?? err));
    pipeline(body, upstream).catch((err: unknown) => reject(bodyError ?? err));
  });
}

function relay(upstream: IncomingMessage, res: ServerResponse, ids: RequestIds, drop: boolean): void {
  const headers: OutgoingHttpHeaders = { ...idHeaders(ids) };
  for (const [name, value] of Object.entries(upstream.headers)) {
    if (value !== undefined && !RESPONSE_HOP_HEADERS.has(name)) headers[name] = value;
  }
  if (drop) return dropMidResponse(upstream, res, headers);
  res.writeHead(upstream.statusCode ?? 502, headers);
  pipeline(upstream, res).catch(() => res.destroy());
}

/** The fault: the response starts (status line, headers, part of the body) and the connection dies. */
function dropMidResponse(upstream: IncomingMessage, res: ServerResponse, headers: OutgoingHttpHeaders): void {
  const cut = () => {
    upstream.destroy();
    res.socket?.destroy();
  };
  if (Number(upstream.headers["content-length"] ?? 0) === 0 && upstream.headers["transfer-encoding"] === undefined) return cut();
  res.writeHead(upstream.statusCode ?? 502, headers);
  upstream.once("data", (chunk: Buffer) => {
    res.write(chunk.subarray(0, Math.floor(chunk.length / 2)), cut);
  });
}

// ---------------------------------------------------------------------------------------
// DeleteObjects: per-key permission checks, as S3 does, with errors inside a 200 DeleteResult

interface DeleteOutcome {
  key: string;
  error?: { code: string; message: string };
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

async function readLimited(body: Readable, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new S3Error("MalformedXML", `${MESSAGES.malformedXml} (the request body is over ${limit} bytes)`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function parseDeleteRequest(xml: string): { keys: string[]; quiet: boolean } {
  if (!/<Delete[\s>]/.test(xml)) throw new S3Error("MalformedXML", MESSAGES.malformedXml);
  const objects = [...xml.matchAll(/<Object>([\s\S]*?)<\/Object>/g)].map((m) => m[1]!);
  const keys = objects.map((o) => /<Key>([\s\S]*?)<\/Key>/.exec(o)?.[1]);
  if (!keys.length || keys.length > MAX_DELETE_KEYS || keys.some((k) => k === undefined)) throw new S3Error("MalformedXML", MESSAGES.malformedXml);
  if (objects.some((o) => o.includes("<VersionId>"))) throw notImplemented("object versions (VersionId in DeleteObjects)");
  return { keys: keys.map((k) => xmlUnescape(k!)), quiet: /<Quiet>\s*true\s*<\/Quiet>/i.test(xml) };
}

function s3rverErrorOf(xml: string): { code: string; message: string } {
  return { code: /<Code>([^<]*)<\/Code>/.exec(xml)?.[1] ?? "InternalError", message: xmlUnescape(/<Message>([^<]*)<\/Message>/.exec(xml)?.[1] ?? MESSAGES.internal) };
}

/** Deletes one key through s3rver; undefined on success. */
async function deleteInS3rver(gate: Gate, bucket: string, key: string): Promise<{ code: string; message: string } | undefined> {
  const rawPath = `/${bucket}/${key.split("/").map(uriEscape).join("/")}`;
  const response = await exchange(gate, "DELETE", rawPath, await s3rverHeaders(gate, "DELETE", rawPath, undefined, 0), undefined);
  const text = (await readBody(response)).toString("utf8");
  return response.statusCode === 204 || response.statusCode === 200 ? undefined : s3rverErrorOf(text);
}

function deleteResultXml(outcomes: DeleteOutcome[], quiet: boolean): string {
  const entries = outcomes.map(({ key, error }) => error
    ? `<Error><Key>${xmlEscape(key)}</Key><Code>${error.code}</Code><Message>${xmlEscape(error.message)}</Message></Error>`
    : quiet ? "" : `<Deleted><Key>${xmlEscape(key)}</Key></Deleted>`);
  return `<?xml version="1.0" encoding="UTF-8"?>\n<DeleteResult xmlns="${S3_XMLNS}">${entries.join("")}</DeleteResult>`;
}

/**
 * S3 checks s3:DeleteObject per key and reports refusals inside a 200 DeleteResult. s3rver's
 * own DeleteObjects cannot be reused for the allowed keys (its XML parser turns a key like
 * "2024" into a number and fails), so each allowed key is deleted on its own.
 */
async function deleteObjects(gate: Gate, req: IncomingMessage, res: ServerResponse, target: Target, caller: Caller, ids: RequestIds): Promise<void> {
  const bucket = target.bucket!;
  const { body } = verifiedBody(req, caller);
  const { keys, quiet } = parseDeleteRequest((await readLimited(body, MAX_DELETE_BODY_BYTES)).toString("utf8"));
  const outcomes = await mapLimit(keys, DELETE_CONCURRENCY, async (key): Promise<DeleteOutcome> => {
    const check = { action: "s3:DeleteObject", resource: objectArn(bucket, key) };
    if (!(await isAllowed(gate.stsUrl, caller.session, check)).allowed) return { key, error: { code: "AccessDenied", message: MESSAGES.accessDenied } };
    // s3rver prunes a key's emptied parent folders after a delete, which races with the
    // parallel deletes of its neighbours: one retry settles it (S3 itself has no such race).
    const error = (await deleteInS3rver(gate, bucket, key)) && (await deleteInS3rver(gate, bucket, key));
    return { key, error: error?.code === "NoSuchKey" ? undefined : error };
  });
  const missingBucket = outcomes.find((o) => o.error?.code === "NoSuchBucket");
  if (missingBucket) throw new S3Error("NoSuchBucket", "The specified bucket does not exist", { BucketName: bucket });
  const xml = deleteResultXml(outcomes, quiet);
  res.writeHead(200, { ...idHeaders(ids), "content-type": "application/xml", "content-length": Buffer.byteLength(xml) });
  res.end(xml);
}

// ---------------------------------------------------------------------------------------
// The gate

interface Gate {
  stsUrl: string;
  region: string;
  upstream: Upstream;
  s3rverSigner: SignatureV4;
  faults: S3Faults;
  stats: S3Stats;
}

function increment(record: Record<string, number>, name: string): void {
  record[name] = (record[name] ?? 0) + 1;
}

function takeErrorFault(faults: S3Faults): S3Error | undefined {
  if (faults.count <= 0) return undefined;
  faults.count -= 1;
  return faults.status === 503 ? new S3Error("SlowDown", MESSAGES.slowDown) : new S3Error("InternalError", MESSAGES.internal);
}

function takeDropFault(faults: S3Faults): boolean {
  if (faults.dropConnections <= 0) return false;
  faults.dropConnections -= 1;
  return true;
}

async function proxy(gate: Gate, req: IncomingMessage, res: ServerResponse, target: Target, operation: Operation, caller: Caller, ids: RequestIds): Promise<void> {
  const { body, length } = verifiedBody(req, caller);
  const headers = await s3rverHeaders(gate, target.method, target.rawPath, req, length, operation.copySource);
  const upstream = await exchange(gate, target.method, `${target.rawPath}${forwardedQuery(target)}`, headers, body);
  relay(upstream, res, ids, takeDropFault(gate.faults));
}

async function handleS3(gate: Gate, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const ids = newRequestIds();
  try {
    const target = parseTarget(req);
    const operation = classify(target, req.headers);
    increment(gate.stats.calls, operation.name);
    const fault = takeErrorFault(gate.faults);
    if (fault) throw fault;
    const caller = await authenticate(gate, req, target);
    await authorize(gate, caller, operation.checks);
    if (operation.name === "DeleteObjects") await deleteObjects(gate, req, res, target, caller, ids);
    else await proxy(gate, req, res, target, operation, caller, ids);
  } catch (err) {
    // A client that went away mid-request has nobody left to answer.
    if (res.headersSent || res.destroyed) return void res.socket?.destroy();
    const error = err instanceof S3Error ? err : unexpected(err);
    increment(gate.stats.errors, error.code);
    sendS3Error(req, res, error, ids);
  }
}

function unexpected(err: unknown): S3Error {
  // The message never carries request secrets: it is about STS or s3rver, not headers or bodies.
  console.error("S3 stand-in: unexpected error:", err instanceof Error ? err.message : String(err));
  return new S3Error("InternalError", MESSAGES.internal);
}

// ---------------------------------------------------------------------------------------
// /_local/: faults and stats

function applyFaults(faults: S3Faults, body: Record<string, unknown>): void {
  const { status, count, dropConnections, ...rest } = body;
  const isCount = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v >= 0;
  if (Object.keys(rest).length) throw new HttpError(400, `unknown fault fields: ${Object.keys(rest).join(", ")}`);
  if (count !== undefined || status !== undefined) {
    if (status !== 500 && status !== 503) throw new HttpError(400, "status must be 500 (InternalError) or 503 (SlowDown)");
    if (!isCount(count)) throw new HttpError(400, "count must be a non-negative integer");
    Object.assign(faults, { status, count });
  }
  if (dropConnections !== undefined) {
    if (!isCount(dropConnections)) throw new HttpError(400, "dropConnections must be a non-negative integer");
    faults.dropConnections = dropConnections;
  }
}

function clearFaults(faults: S3Faults): void {
  Object.assign(faults, { status: 500, count: 0, dropConnections: 0 });
}

async function handleLocal(gate: Gate, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  try {
    switch (`${req.method} ${path}`) {
      case "POST /_local/faults":
        applyFaults(gate.faults, await readJson<Record<string, unknown>>(req));
        return sendJson(res, 200, { faults: gate.faults });
      case "DELETE /_local/faults":
        clearFaults(gate.faults);
        return sendJson(res, 200, { faults: gate.faults });
      case "GET /_local/stats":
        return sendJson(res, 200, gate.stats);
      case "POST /_local/stats/reset":
        gate.stats = { calls: {}, errors: {} };
        return sendJson(res, 200, gate.stats);
      default:
        return sendJson(res, 404, { error: `no local endpoint ${req.method} ${path}` });
    }
  } catch (err) {
    if (!(err instanceof HttpError)) throw err;
    sendJson(res, err.status, { error: err.message });
  }
}

// ---------------------------------------------------------------------------------------
// Start and stop

/** Starts s3rver under Node and waits for the port it prints. */
async function startS3rver(dataDir: string): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn("node", ["--openssl-legacy-provider", CHILD_SCRIPT, "0", dataDir], { stdio: ["pipe", "pipe", "inherit"] });
  const lines = createInterface({ input: child.stdout! });
  const port = await new Promise<number>((resolvePort, reject) => {
    const timer = setTimeout(() => reject(new Error(`s3rver did not start within ${CHILD_START_TIMEOUT_MS} ms`)), CHILD_START_TIMEOUT_MS);
    child.once("error", (err) => reject(new Error(`could not start node for s3rver: ${err.message}`)));
    child.once("exit", (code) => reject(new Error(`s3rver exited with code ${code} before listening`)));
    lines.once("line", (line) => {
      clearTimeout(timer);
      resolvePort((JSON.parse(line) as { port: number }).port);
    });
  });
  return { child, port };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  child.kill("SIGTERM");
  await exited;
}

export async function startS3(options: S3Options): Promise<S3StandIn> {
  const region = options.region ?? DEFAULT_REGION;
  const ownDataDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), "s3-standin-")));
  const { child, port } = await startS3rver(dataDir);
  const gate: Gate = {
    stsUrl: options.stsUrl.replace(/\/+$/, ""),
    region,
    upstream: { host: "127.0.0.1", port },
    s3rverSigner: s3rverSigner(region),
    faults: { status: 500, count: 0, dropConnections: 0 },
    stats: { calls: {}, errors: {} },
  };
  const { server, url } = await listen((req, res) => {
    const path = (req.url ?? "/").split("?")[0]!;
    return path.startsWith("/_local/") ? handleLocal(gate, req, res, path) : handleS3(gate, req, res);
  }, options.port ?? 0, options.host ?? "127.0.0.1");
  return {
    url,
    region,
    faults: gate.faults,
    stats: () => structuredClone(gate.stats),
    async close() {
      await closeServer(server);
      await stopChild(child);
      if (ownDataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------------------
// CLI

function parseArgs(argv: string[]): S3Options {
  const value = (flag: string) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const stsUrl = value("--sts-url");
  if (!stsUrl) throw new Error("usage: bun local/s3.ts --sts-url <url> [--port N] [--region us-east-1] [--data-dir DIR] [--host 127.0.0.1]");
  const port = value("--port");
  return { stsUrl, port: port === undefined ? undefined : Number(port), region: value("--region"), dataDir: value("--data-dir"), host: value("--host") };
}

function isMainModule(): boolean {
  const script = process.argv[1];
  return script !== undefined && import.meta.url === pathToFileURL(resolve(script)).href;
}

async function main(): Promise<void> {
  const s3 = await startS3(parseArgs(process.argv.slice(2)));
  console.log(s3.url);
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => void s3.close().then(() => process.exit(0)));
  }
}

if (isMainModule()) await main();
