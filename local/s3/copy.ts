// CopyObject's rules that s3rver does not keep, checked against the source as s3rver has it:
// kms:Decrypt on the source's key, S3's size limit for a single copy, and when an object may be
// copied onto itself.
import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import type { Caller } from "./auth.ts";
import { S3ErrorReply } from "./errors.ts";
import { headStored, type Upstream } from "./forward.ts";
import { authorizeRead, SSE_HEADER, type KeyScope } from "./kms.ts";
import type { Target } from "./request.ts";

export interface CopyGate {
  stsUrl: string;
  upstream: Upstream;
  /** The largest source one CopyObject copies (S3: 5 GiB; a test may set less). */
  maxCopySourceBytes: number;
}

/** Request headers that change what an in-place copy stores (moto models.py `copy_object`, and CopyObject in the S3 API reference). */
const CHANGING_HEADERS = [
  "x-amz-storage-class", "x-amz-website-redirect-location", SSE_HEADER, "x-amz-server-side-encryption-aws-kms-key-id",
  "x-amz-server-side-encryption-context", "x-amz-server-side-encryption-bucket-key-enabled", "x-amz-server-side-encryption-customer-algorithm",
];
/** The stored metadata a COPY directive keeps (s3rver's S3Object.ALLOWED_METADATA, user metadata). */
const KEPT_METADATA = ["cache-control", "content-disposition", "content-encoding", "content-language", "content-type", "expires"];

const SAME_OBJECT = "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.";

/**
 * Whether an in-place copy changes something S3 counts (moto models.py `copy_object`, and
 * tests/test_s3/test_s3_copyobject.py `test_copy_object_in_place_with_encryption`, AWS-verified
 * `test_copy_key_without_changes_should_error`): a REPLACE directive, a storage class, a
 * redirect, any encryption header; or none of these on a source that is not SSE-S3, which the
 * copy would re-encrypt with the bucket's default (SSE-S3).
 */
function changesObject(headers: IncomingHttpHeaders, source: IncomingMessage): boolean {
  if (String(headers["x-amz-metadata-directive"] ?? "").toUpperCase() === "REPLACE") return true;
  if (CHANGING_HEADERS.some((name) => headers[name] !== undefined)) return true;
  return source.headers[SSE_HEADER] !== "AES256";
}

/** The source's metadata as REPLACE headers: s3rver refuses any in-place copy without REPLACE, so an allowed one is sent as one that keeps the metadata. */
function keptMetadata(source: IncomingMessage): Record<string, string> {
  const kept: Record<string, string> = { "x-amz-metadata-directive": "REPLACE" };
  for (const [name, value] of Object.entries(source.headers)) {
    if (typeof value === "string" && (KEPT_METADATA.includes(name) || name.startsWith("x-amz-meta-"))) kept[name] = value;
  }
  return kept;
}

/**
 * Checks a CopyObject against its source; the headers to add to the forwarded copy. A missing
 * source is for s3rver to report (NoSuchKey), as the copy itself.
 */
export async function checkCopy(gate: CopyGate, req: IncomingMessage, target: Target, caller: Caller, scope: KeyScope, source: { bucket: string; key: string }): Promise<Record<string, string>> {
  const head = await headStored(gate.upstream, source.bucket, source.key);
  if (head.statusCode !== 200) return {};
  // kms:Decrypt when the source is SSE-KMS: S3 reads it to copy it.
  await authorizeRead(gate.stsUrl, caller, scope, head);
  const size = Number(head.headers["content-length"]);
  if (size > gate.maxCopySourceBytes) {
    // S3 User Guide, "Copying objects": one CopyObject copies up to 5 GiB; S3's answer to a bigger source.
    throw new S3ErrorReply("InvalidRequest", `The specified copy source is larger than the maximum allowable size for a copy source: ${gate.maxCopySourceBytes}`);
  }
  if (source.bucket !== target.bucket || source.key !== target.key) return {};
  if (!changesObject(req.headers, head)) throw new S3ErrorReply("InvalidRequest", SAME_OBJECT);
  return String(req.headers["x-amz-metadata-directive"] ?? "").toUpperCase() === "REPLACE" ? {} : keptMetadata(head);
}
