// UploadPartCopy, which s3rver lacks (it answers NotImplemented): the gate reads the source's
// bytes from s3rver and sends them to s3rver as an ordinary part of the upload, then answers
// as S3 does (S3 API reference, UploadPartCopy): a CopyPartResult with the part's ETag.
// Permissions as S3 checks them: s3:PutObject on the upload's object and s3:GetObject on the
// source (operations.ts), kms:Decrypt on the source's key and on the upload's key (kms.ts).
import type { IncomingMessage } from "node:http";
import { Readable } from "node:stream";
import { headerValue } from "../aws/headers.ts";
import type { Caller } from "./auth.ts";
import { notImplemented, S3ErrorReply, xmlEscape } from "./errors.ts";
import { exchange, forwardedQuery, headStored, s3rverHeaders, upstreamPath, type Upstream } from "./forward.ts";
import { storedPath } from "./storedKeys.ts";
import { authorizeKms, authorizeRead, keyScopeOf } from "./kms.ts";
import { S3_XMLNS } from "./limits.ts";
import { partNumberOf, trackedUpload, unquote, type MultipartGate, type Reply } from "./multipart.ts";
import { firstBytes, type ByteSpan } from "./ranges.ts";
import type { Target } from "./request.ts";

export interface PartCopyGate extends MultipartGate {
  /** The largest part one UploadPartCopy copies: S3's 5 GiB, as for CopyObject. */
  maxCopySourceBytes: number;
}

const RANGE_FORM = "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy";

/**
 * The source bytes a part copies: x-amz-copy-source-range (`bytes=first-last`, both given, the
 * form the API reference requires) or the whole source. AWS documents the form, not its errors'
 * wording: InvalidArgument for another form and InvalidRequest for a range outside the source
 * are this stand-in's reading (the safer side: refused, never clamped).
 */
function copiedSpan(req: IncomingMessage, size: number): ByteSpan {
  const header = headerValue(req, "x-amz-copy-source-range");
  if (header === undefined) return { first: 0, last: size - 1 };
  const match = /^bytes=(\d+)-(\d+)$/.exec(header.trim());
  if (!match || Number(match[1]) > Number(match[2])) {
    throw new S3ErrorReply("InvalidArgument", RANGE_FORM, { ArgumentName: "x-amz-copy-source-range", ArgumentValue: header });
  }
  const span = { first: Number(match[1]), last: Number(match[2]) };
  if (span.last >= size) throw new S3ErrorReply("InvalidRequest", `Range specified is not valid for source object of size: ${size}`);
  return span;
}

/** The source's bytes `span` from s3rver, as a stream of exactly that length. */
async function readSource(upstream: Upstream, source: { bucket: string; key: string }, span: ByteSpan): Promise<Readable> {
  const rawPath = storedPath(source.bucket, source.key);
  const headers = { ...(await s3rverHeaders(upstream, "GET", rawPath, undefined, 0)), range: `bytes=${span.first}-` };
  delete headers["content-length"];
  const answer = await exchange(upstream, "GET", rawPath, headers, undefined);
  if (answer.statusCode !== 206 && answer.statusCode !== 200) {
    answer.resume();
    throw new Error(`s3rver answered ${answer.statusCode} to reading a part copy's source`);
  }
  return Readable.from(firstBytes(answer, span.last - span.first + 1));
}

function copyPartResult(etag: string): Buffer {
  return Buffer.from(`<?xml version="1.0" encoding="UTF-8"?>\n<CopyPartResult xmlns="${S3_XMLNS}"><LastModified>${new Date().toISOString()}</LastModified>` +
    `<ETag>${xmlEscape(`"${etag}"`)}</ETag></CopyPartResult>`);
}

export async function uploadPartCopy(gate: PartCopyGate, req: IncomingMessage, target: Target, caller: Caller, source: { bucket: string; key: string }): Promise<Reply> {
  const partNumber = partNumberOf(target);
  const { upload } = trackedUpload(gate, target);
  // S3 computes a copied part's checksum itself; not modelled here.
  if (upload.checksumAlgorithm) throw notImplemented("UploadPartCopy into an upload created with x-amz-checksum-algorithm");
  const scope = keyScopeOf(caller, gate.region);
  const head = await headStored(gate.upstream, source.bucket, source.key);
  if (head.statusCode !== 200) throw new S3ErrorReply("NoSuchKey", "The specified key does not exist.", { Key: source.key });
  await authorizeRead(gate.stsUrl, caller, scope, head);
  if (upload.kmsKeyArn) await authorizeKms(gate.stsUrl, caller, scope, "kms:Decrypt", upload.kmsKeyArn);
  const span = copiedSpan(req, Number(head.headers["content-length"]));
  const length = span.last - span.first + 1;
  if (length > gate.maxCopySourceBytes) {
    throw new S3ErrorReply("InvalidRequest", `The specified copy source is larger than the maximum allowable size for a copy source: ${gate.maxCopySourceBytes}`);
  }
  const body = await readSource(gate.upstream, source, span);
  const path = upstreamPath(target);
  const upstream = await exchange(gate.upstream, "PUT", `${path}${forwardedQuery(target)}`, await s3rverHeaders(gate.upstream, "PUT", path, undefined, length), body);
  if (upstream.statusCode !== 200) return { upstream };
  upstream.resume();
  const etag = unquote(String(upstream.headers.etag ?? ""));
  upload.parts.set(partNumber, { size: length, etag, checksum: undefined });
  const xml = copyPartResult(etag);
  return { upstream, options: { body: xml, headers: { ...upload.encryption, "content-type": "application/xml", "content-length": String(xml.length) } } };
}
