// Copying an object inside S3 without downloading it: one CopyObject up to S3's 5 GiB limit
// for a single copy, a multipart copy (UploadPartCopy of byte ranges) above it (S3 User Guide,
// "Copying objects": "you can create a copy of your object up to 5 GB in a single atomic
// action … to copy an object greater than 5 GB, you must use the multipart upload API").
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  UploadPartCopyCommand,
  type CompletedPart,
  type HeadObjectCommandOutput,
  type S3Client,
} from "@aws-sdk/client-s3";
import { checkBucket, checkKey, explainS3Error } from "./s3Errors.ts";
import { encryptionParams, type Encryption } from "./s3.ts";

/** The largest source one CopyObject copies, and the largest part of a multipart copy. */
export const MAX_SINGLE_COPY_BYTES = 5 * 1024 ** 3;
/** Part copies in flight at once: S3 copies each server-side, so this only bounds open requests. */
const PART_COPIES_IN_FLIGHT = 4;

export interface CopyOptions {
  sourceBucket: string;
  sourceKey: string;
  bucket: string;
  key: string;
  encryption: Encryption;
  /** Sources above this are copied in parts of this size; S3's limit unless a test sets less. */
  maxSingleCopyBytes?: number;
}

export interface CopyResult {
  source: string;
  destination: string;
  etag: string | null;
  size: number;
  /** Parts of a multipart copy; 1 for a single CopyObject. */
  parts: number;
}

interface CopyTarget {
  sourceBucket: string;
  sourceKey: string;
  bucket: string;
  key: string;
  encryption: Encryption;
}

/** CopySource as S3 reads it: bucket/key, the key URL-encoded but for its slashes. */
function copySourceOf(t: CopyTarget): string {
  return `${t.sourceBucket}/${encodeURIComponent(t.sourceKey).replace(/%2F/g, "/")}`;
}

export async function copyObject(s3: S3Client, options: CopyOptions): Promise<CopyResult> {
  const t: CopyTarget = {
    sourceBucket: checkBucket("source_bucket", options.sourceBucket),
    sourceKey: checkKey("source_key", options.sourceKey),
    bucket: checkBucket("bucket", options.bucket),
    key: checkKey("key", options.key),
    encryption: options.encryption,
  };
  encryptionParams(t.encryption);
  const head = await s3.send(new HeadObjectCommand({ Bucket: t.sourceBucket, Key: t.sourceKey })).catch((err: unknown) => {
    throw explainS3Error(err, { operation: "HeadObject", bucket: t.sourceBucket, key: t.sourceKey });
  });
  const size = head.ContentLength ?? 0;
  const limit = options.maxSingleCopyBytes ?? MAX_SINGLE_COPY_BYTES;
  const copied = size > limit ? await multipartCopy(s3, t, head, limit) : { etag: await singleCopy(s3, t), parts: 1 };
  return { source: `s3://${t.sourceBucket}/${t.sourceKey}`, destination: `s3://${t.bucket}/${t.key}`, size, ...copied };
}

async function singleCopy(s3: S3Client, t: CopyTarget): Promise<string | null> {
  const response = await s3.send(new CopyObjectCommand({ Bucket: t.bucket, Key: t.key, CopySource: copySourceOf(t), ...encryptionParams(t.encryption) }))
    .catch((err: unknown) => {
      throw explainS3Error(err, { operation: "CopyObject", bucket: t.bucket, key: t.key, source: `${t.sourceBucket}/${t.sourceKey}` });
    });
  return response.CopyObjectResult?.ETag ?? null;
}

/**
 * A multipart copy keeps what CopyObject keeps (its default COPY directive): the source's
 * content headers and user metadata; its encryption is the one asked for, else the bucket's default.
 */
async function multipartCopy(s3: S3Client, t: CopyTarget, head: HeadObjectCommandOutput, partBytes: number): Promise<{ etag: string | null; parts: number }> {
  const ctx = { bucket: t.bucket, key: t.key, source: `${t.sourceBucket}/${t.sourceKey}` };
  const created = await s3.send(new CreateMultipartUploadCommand({
    Bucket: t.bucket, Key: t.key, ...encryptionParams(t.encryption),
    ContentType: head.ContentType, ContentEncoding: head.ContentEncoding, ContentDisposition: head.ContentDisposition,
    ContentLanguage: head.ContentLanguage, CacheControl: head.CacheControl, Metadata: head.Metadata,
  })).catch((err: unknown) => {
    throw explainS3Error(err, { operation: "CreateMultipartUpload", ...ctx });
  });
  const uploadId = created.UploadId!;
  try {
    const parts = await copyParts(s3, t, uploadId, head.ContentLength ?? 0, partBytes);
    const done = await s3.send(new CompleteMultipartUploadCommand({ Bucket: t.bucket, Key: t.key, UploadId: uploadId, MultipartUpload: { Parts: parts } }))
      .catch((err: unknown) => {
        throw explainS3Error(err, { operation: "CompleteMultipartUpload", ...ctx });
      });
    return { etag: done.ETag ?? null, parts: parts.length };
  } catch (err) {
    // Parts of an abandoned upload are billed until aborted.
    await s3.send(new AbortMultipartUploadCommand({ Bucket: t.bucket, Key: t.key, UploadId: uploadId })).catch(() => {});
    throw err;
  }
}

/** Copies the source in ranges of `partBytes`, a few at a time; the parts in order, for Complete. */
async function copyParts(s3: S3Client, t: CopyTarget, uploadId: string, size: number, partBytes: number): Promise<CompletedPart[]> {
  const count = Math.ceil(size / partBytes);
  const parts: CompletedPart[] = new Array(count);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < count; i = next++) {
      const first = i * partBytes;
      const last = Math.min(size, first + partBytes) - 1;
      const part = await s3.send(new UploadPartCopyCommand({
        Bucket: t.bucket, Key: t.key, UploadId: uploadId, PartNumber: i + 1, CopySource: copySourceOf(t), CopySourceRange: `bytes=${first}-${last}`,
      })).catch((err: unknown) => {
        throw explainS3Error(err, { operation: "UploadPartCopy", bucket: t.bucket, key: t.key, source: `${t.sourceBucket}/${t.sourceKey}` });
      });
      parts[i] = { PartNumber: i + 1, ETag: part.CopyPartResult?.ETag };
    }
  };
  await Promise.all(Array.from({ length: Math.min(PART_COPIES_IN_FLIGHT, count) }, worker));
  return parts;
}
