// S3's errors: the error the gate answers with, its HTTP status, S3's fixed messages, and
// the XML error document (so the SDK surfaces err.name = Code), with S3's request ids.
import { randomBytes } from "node:crypto";
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";

/** S3's own wording, reused wherever S3 would say the same. */
export const MESSAGES = {
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
  noSuchUpload: "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
};

const ERROR_STATUS: Record<string, number> = {
  AccessDenied: 403, InvalidAccessKeyId: 403, SignatureDoesNotMatch: 403, RequestTimeTooSkewed: 403,
  InvalidToken: 400, ExpiredToken: 400, AuthorizationHeaderMalformed: 400, AuthorizationQueryParametersError: 400,
  InvalidRequest: 400, InvalidArgument: 400, InvalidURI: 400, InvalidBucketName: 400, MalformedXML: 400,
  XAmzContentSHA256Mismatch: 400, IncompleteBody: 400, BadDigest: 400, MissingContentLength: 411,
  InvalidPart: 400, InvalidPartOrder: 400, EntityTooSmall: 400,
  InvalidRange: 416, KeyTooLongError: 400, "KMS.NotFoundException": 400,
  NoSuchBucket: 404, NoSuchUpload: 404, NotImplemented: 501, InternalError: 500, SlowDown: 503,
};

/** An error the gate answers with, in S3's XML shape (not the bundle's S3Error, which is what a client sees). */
export class S3ErrorReply extends Error {
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

export function xmlEscape(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&${{ "&": "amp", "<": "lt", ">": "gt", '"': "quot", "'": "apos" }[c]};`);
}

export function xmlUnescape(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#\d+|amp|lt|gt|quot|apos);/g, (_, entity: string) => {
    if (entity.startsWith("#x")) return String.fromCodePoint(parseInt(entity.slice(2), 16));
    if (entity.startsWith("#")) return String.fromCodePoint(parseInt(entity.slice(1), 10));
    return { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" }[entity] ?? "";
  });
}

export interface RequestIds {
  requestId: string;
  hostId: string;
}

export function newRequestIds(): RequestIds {
  return { requestId: randomBytes(8).toString("hex").toUpperCase(), hostId: randomBytes(32).toString("base64") };
}

export function idHeaders(ids: RequestIds): OutgoingHttpHeaders {
  return { "x-amz-request-id": ids.requestId, "x-amz-id-2": ids.hostId };
}

function errorXml(err: S3ErrorReply, ids: RequestIds): string {
  const details = Object.entries(err.details).map(([name, value]) => `<${name}>${xmlEscape(value)}</${name}>`).join("");
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${err.code}</Code><Message>${xmlEscape(err.message)}</Message>${details}` +
    `<RequestId>${ids.requestId}</RequestId><HostId>${ids.hostId}</HostId></Error>`;
}

export function sendS3Error(req: IncomingMessage, res: ServerResponse, err: S3ErrorReply, ids: RequestIds): void {
  // Whatever body the client is still sending is read and dropped, so the connection stays usable.
  req.resume();
  const body = errorXml(err, ids);
  res.writeHead(err.status, { ...idHeaders(ids), "content-type": "application/xml", "content-length": Buffer.byteLength(body) });
  // A HEAD error has no body; the SDK names it from the status alone, as with real S3.
  res.end(req.method === "HEAD" ? undefined : body);
}

/** NotImplemented, naming what this stand-in does not support. */
export function notImplemented(what: string): S3ErrorReply {
  return new S3ErrorReply("NotImplemented", `${MESSAGES.notImplemented} (this S3 stand-in does not support ${what})`);
}

