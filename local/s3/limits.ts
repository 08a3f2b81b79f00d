// The S3 stand-in's limits and fixed values (S3 API reference), each with why it is what it is.
// SigV4's own limits (clock skew, presign lifetime) are in local/aws/sigv4.ts.

export const DEFAULT_REGION = "us-east-1";
/** DeleteObjects takes at most 1000 keys; 1000 keys of 1024 bytes plus XML stay under 2 MiB. */
export const MAX_DELETE_KEYS = 1000;
export const MAX_DELETE_BODY_BYTES = 2 * 1024 * 1024;
/** Multipart limits (S3 User Guide, "Amazon S3 multipart upload limits"): parts 1 to 10,000, each but the last at least 5 MiB. */
export const MAX_PART_NUMBER = 10_000;
export const MIN_PART_BYTES = 5 * 1024 * 1024;
/** S3 keys are at most 1024 bytes of UTF-8 (S3 User Guide, "Naming Amazon S3 objects"). */
export const MAX_KEY_BYTES = 1024;
/** One CopyObject copies a source of at most 5 GiB (S3 User Guide, "Copying objects"); bigger ones need UploadPartCopy. */
export const MAX_COPY_SOURCE_BYTES = 5 * 1024 ** 3;
/** A CompleteMultipartUpload document: 10,000 parts of a few hundred bytes each (number, ETag, checksum) fit in 4 MiB. */
export const MAX_COMPLETE_BODY_BYTES = 4 * 1024 * 1024;
/** aws-chunked chunk headers and trailer lines are short; a longer line is a broken body, not data. */
export const MAX_CHUNK_LINE_BYTES = 4096;
/** Parallel STS checks and s3rver deletes for one DeleteObjects: enough to keep 1000 keys quick. */
export const DELETE_CONCURRENCY = 16;
/** s3rver knows only this account; it never checks V4 signatures, but it wants a well-formed one. */
export const S3RVER_CREDENTIALS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" };
export const S3_XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/";
/** How long s3rver (a Node child) gets to print its port before start fails. */
export const CHILD_START_TIMEOUT_MS = 15_000;

export const STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
export const STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
/** Streaming variants S3 accepts that this gate cannot verify yet; refused rather than trusted. */
export const STREAMING_UNVERIFIED = ["STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD", "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER"];

/** Query parameters that carry a presigned URL's signature; never forwarded to s3rver. */
export const PRESIGN_PARAMS = ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Security-Token", "X-Amz-Content-Sha256"];
/** Request headers that are about this hop (auth, framing, checksums the gate verified): s3rver gets none of them. */
export const HOP_HEADERS = new Set([
  "authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256", "x-amz-decoded-content-length",
  "x-amz-trailer", "x-amz-sdk-checksum-algorithm", "x-amz-checksum-algorithm", "expect", "connection", "keep-alive",
  "transfer-encoding", "content-length", "content-md5", "host", "te", "upgrade",
]);
export const RESPONSE_HOP_HEADERS = new Set(["connection", "keep-alive", "transfer-encoding", "x-amz-request-id", "x-amz-id-2"]);
/** Query names that select a sub-API (S3's "subresources"); any operations.ts does not handle is refused. */
export const SUBRESOURCES = [
  "accelerate", "acl", "analytics", "attributes", "cors", "delete", "encryption", "intelligent-tiering", "inventory",
  "legal-hold", "lifecycle", "location", "logging", "metrics", "notification", "object-lock", "ownershipControls",
  "partNumber", "policy", "policyStatus", "publicAccessBlock", "replication", "requestPayment", "restore", "retention",
  "select", "tagging", "torrent", "uploadId", "uploads", "versionId", "versioning", "versions", "website",
];
/** S3's bucket naming rules; also keeps `..` out of s3rver's file paths. */
export const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
