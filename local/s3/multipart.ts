// Multipart uploads as S3 enforces them, which s3rver does not: the gate keeps each upload it
// saw created (its checksum algorithm, its KMS key, its parts' sizes, ETags and checksums)
// and checks UploadPart and CompleteMultipartUpload against it before s3rver gets them
// (S3 API reference, CreateMultipartUpload, UploadPart and CompleteMultipartUpload).
// Uploads live in memory: one created before the gate restarted is NoSuchUpload to it.
import type { IncomingMessage } from "node:http";
import { readBody } from "../shared/http.ts";
import type { Caller } from "./auth.ts";
import { readLimited, verifiedBody } from "./body.ts";
import { CHECKSUM_ALGORITHMS } from "./checksums.ts";
import { MESSAGES, notImplemented, S3ErrorReply, xmlUnescape } from "./errors.ts";
import { forward, type RelayOptions, type Upstream } from "./forward.ts";
import { authorizeKms, keyScopeOf, requestedKmsKey, storedEncryption } from "./kms.ts";
import type { KmsKeys } from "./kmsKeys.ts";
import { MAX_COMPLETE_BODY_BYTES, MAX_PART_NUMBER, MIN_PART_BYTES } from "./limits.ts";
import { param, type Target } from "./request.ts";
import { restoreKeys } from "./storedKeys.ts";

interface TrackedPart {
  size: number;
  /** Without quotes: S3 compares ETags with their quotes removed. */
  etag: string;
  checksum: string | undefined;
}

export interface TrackedUpload {
  bucket: string;
  key: string;
  /** Lowercase (crc32, sha256, ...); undefined when CreateMultipartUpload asked for none. */
  checksumAlgorithm: string | undefined;
  kmsKeyArn: string | undefined;
  /** The upload's encryption headers, which UploadPart and CompleteMultipartUpload answer with. */
  encryption: Record<string, string>;
  parts: Map<number, TrackedPart>;
}

/** What the gate knows of the uploads in progress, by upload id. */
export type MultipartUploads = Map<string, TrackedUpload>;

export interface MultipartGate {
  stsUrl: string;
  region: string;
  upstream: Upstream;
  uploads: MultipartUploads;
  kmsKeys: KmsKeys;
}

/** s3rver's answer and what the gate adds to it, for the gate to relay. */
export interface Reply {
  upstream: IncomingMessage;
  options?: RelayOptions;
}

export const unquote = (etag: string) => etag.replace(/"/g, "");

export function trackedUpload(gate: MultipartGate, target: Target): { uploadId: string; upload: TrackedUpload } {
  const uploadId = param(target, "uploadId") ?? "";
  const upload = gate.uploads.get(uploadId);
  if (!upload || upload.bucket !== target.bucket || upload.key !== target.key) throw new S3ErrorReply("NoSuchUpload", MESSAGES.noSuchUpload, { UploadId: uploadId });
  return { uploadId, upload };
}

/** x-amz-checksum-algorithm, lowercase; S3 refuses a value that names no algorithm. */
function requestedChecksumAlgorithm(req: IncomingMessage): string | undefined {
  const header = req.headers["x-amz-checksum-algorithm"];
  if (header === undefined) return undefined;
  const algorithm = String(header).toLowerCase();
  if (!CHECKSUM_ALGORITHMS.includes(algorithm)) {
    throw new S3ErrorReply("InvalidArgument", "Value for x-amz-checksum-algorithm header is invalid.", { ArgumentName: "x-amz-checksum-algorithm", ArgumentValue: String(header) });
  }
  // FULL_OBJECT checksums follow other part rules (CRC only, parts need none): not modelled here.
  const type = req.headers["x-amz-checksum-type"];
  if (type !== undefined && String(type).toUpperCase() !== "COMPOSITE") throw notImplemented(`x-amz-checksum-type: ${String(type)}`);
  return algorithm;
}

export async function createMultipartUpload(gate: MultipartGate, req: IncomingMessage, target: Target, caller: Caller): Promise<Reply> {
  const checksumAlgorithm = requestedChecksumAlgorithm(req);
  const scope = keyScopeOf(caller, gate.region);
  const kmsKeyArn = requestedKmsKey(req.headers, scope, gate.kmsKeys);
  if (kmsKeyArn) await authorizeKms(gate.stsUrl, caller, scope, "kms:GenerateDataKey", kmsKeyArn);
  const { body, length } = verifiedBody(req, caller);
  const encryption = storedEncryption(req.headers, kmsKeyArn);
  const upstream = await forward(gate.upstream, target, req, body, length, { set: encryption });
  if (upstream.statusCode !== 200) return { upstream };
  const xml = Buffer.from(restoreKeys((await readBody(upstream)).toString("utf8")));
  const uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(xml.toString("utf8"))?.[1];
  if (!uploadId) throw new Error("s3rver answered CreateMultipartUpload without an UploadId");
  gate.uploads.set(uploadId, { bucket: target.bucket!, key: target.key!, checksumAlgorithm, kmsKeyArn, encryption, parts: new Map() });
  // S3 echoes the algorithm the parts must carry.
  return { upstream, options: { body: xml, headers: { ...encryption, "content-length": String(xml.length), ...(checksumAlgorithm && { "x-amz-checksum-algorithm": checksumAlgorithm.toUpperCase() }) } } };
}

export function partNumberOf(target: Target): number {
  const raw = param(target, "partNumber") ?? "";
  const number = /^\d{1,5}$/.test(raw) ? Number(raw) : NaN;
  if (!(number >= 1 && number <= MAX_PART_NUMBER)) {
    throw new S3ErrorReply("InvalidArgument", `Part number must be an integer between 1 and ${MAX_PART_NUMBER}, inclusive`, { ArgumentName: "partNumber", ArgumentValue: raw });
  }
  return number;
}

export async function uploadPart(gate: MultipartGate, req: IncomingMessage, target: Target, caller: Caller): Promise<Reply> {
  const partNumber = partNumberOf(target);
  const { upload } = trackedUpload(gate, target);
  const scope = keyScopeOf(caller, gate.region);
  if (upload.kmsKeyArn) await authorizeKms(gate.stsUrl, caller, scope, "kms:Decrypt", upload.kmsKeyArn);
  const { body, length, checksum } = verifiedBody(req, caller);
  // An upload created with a checksum algorithm takes parts with that checksum only (S3 answers
  // e.g. "Checksum Type mismatch occurred, expected checksum Type: crc32, actual checksum Type: null").
  if (upload.checksumAlgorithm && checksum?.algorithm !== upload.checksumAlgorithm) {
    // Nothing of the body goes on: unhooked, it drains when the error is answered.
    req.unpipe();
    body.destroy();
    throw new S3ErrorReply("InvalidRequest", `Checksum Type mismatch occurred, expected checksum Type: ${upload.checksumAlgorithm}, actual checksum Type: ${checksum?.algorithm ?? "null"}`);
  }
  const upstream = await forward(gate.upstream, target, req, body, length);
  if (upstream.statusCode !== 200) return { upstream };
  const value = checksum?.value();
  upload.parts.set(partNumber, { size: length, etag: unquote(String(upstream.headers.etag ?? "")), checksum: value });
  // UploadPart answers the part's checksum (x-amz-checksum-crc32: ...) when the request carried one.
  return { upstream, options: { headers: { ...upload.encryption, ...(checksum && value && { [`x-amz-checksum-${checksum.algorithm}`]: value }) } } };
}

interface ListedPart {
  number: number;
  etag: string;
  /** By lowercase algorithm: the ChecksumCRC32 etc. elements of the part. */
  checksums: Map<string, string>;
}

function parseCompleteRequest(xml: string): ListedPart[] {
  if (!/<CompleteMultipartUpload[\s>]/.test(xml)) throw new S3ErrorReply("MalformedXML", MESSAGES.malformedXml);
  const parts = [...xml.matchAll(/<Part>([\s\S]*?)<\/Part>/g)].map(([, body]) => {
    const number = /<PartNumber>\s*(\d+)\s*<\/PartNumber>/.exec(body!)?.[1];
    const etag = /<ETag>([\s\S]*?)<\/ETag>/.exec(body!)?.[1];
    if (number === undefined || etag === undefined) throw new S3ErrorReply("MalformedXML", MESSAGES.malformedXml);
    const checksums = new Map([...body!.matchAll(/<Checksum([A-Z0-9]+)>([^<]*)<\/Checksum\1>/g)].map(([, name, value]) => [name!.toLowerCase(), xmlUnescape(value!).trim()]));
    return { number: Number(number), etag: unquote(xmlUnescape(etag)).trim(), checksums };
  });
  if (!parts.length) throw new S3ErrorReply("MalformedXML", MESSAGES.malformedXml);
  return parts;
}

const INVALID_PART = "One or more of the specified parts could not be found.  The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.";

/** S3's CompleteMultipartUpload errors, in the order it reports them. */
function checkParts(upload: TrackedUpload, listed: ListedPart[]): void {
  for (let i = 1; i < listed.length; i++) {
    if (listed[i]!.number <= listed[i - 1]!.number) {
      throw new S3ErrorReply("InvalidPartOrder", "The list of parts was not in ascending order. The parts list must be specified in order by part number.");
    }
  }
  for (const part of listed) {
    const stored = upload.parts.get(part.number);
    if (!stored || stored.etag !== part.etag) throw new S3ErrorReply("InvalidPart", INVALID_PART, { PartNumber: String(part.number), ETag: part.etag });
    const algorithm = upload.checksumAlgorithm;
    if (!algorithm) continue;
    const checksum = part.checksums.get(algorithm);
    if (checksum === undefined) {
      throw new S3ErrorReply("InvalidRequest",
        `The upload was created using a ${algorithm} checksum. The complete request must include the checksum for each part. It was missing for part ${part.number} in the request.`);
    }
    if (checksum !== stored.checksum) throw new S3ErrorReply("InvalidPart", INVALID_PART, { PartNumber: String(part.number), ETag: part.etag });
  }
  for (const part of listed.slice(0, -1)) {
    const size = upload.parts.get(part.number)!.size;
    if (size < MIN_PART_BYTES) {
      throw new S3ErrorReply("EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size",
        { ProposedSize: String(size), MinSizeAllowed: String(MIN_PART_BYTES), PartNumber: String(part.number), ETag: part.etag });
    }
  }
}

export async function completeMultipartUpload(gate: MultipartGate, req: IncomingMessage, target: Target, caller: Caller): Promise<Reply> {
  const { uploadId, upload } = trackedUpload(gate, target);
  const scope = keyScopeOf(caller, gate.region);
  if (upload.kmsKeyArn) await authorizeKms(gate.stsUrl, caller, scope, "kms:Decrypt", upload.kmsKeyArn);
  const document = await readLimited(verifiedBody(req, caller).body, MAX_COMPLETE_BODY_BYTES);
  checkParts(upload, parseCompleteRequest(document.toString("utf8")));
  const upstream = await forward(gate.upstream, target, req, document, document.length);
  if (upstream.statusCode !== 200) return { upstream };
  gate.uploads.delete(uploadId);
  return { upstream, options: { headers: upload.encryption } };
}

/** An aborted upload is gone: its parts are NoSuchUpload from now on. */
export function forgetAborted(gate: MultipartGate, target: Target, upstream: IncomingMessage): void {
  if (upstream.statusCode === 204) gate.uploads.delete(param(target, "uploadId") ?? "");
}
