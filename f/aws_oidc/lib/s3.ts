// S3 operations on a saved credentials resource, shaped for Windmill: typed inputs,
// results a person reads as a table, errors that say which bucket/key and what to fix.
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  paginateListObjectsV2,
  PutObjectCommand,
  S3Client,
  type ServerSideEncryption,
} from "@aws-sdk/client-s3";
import { FetchHttpHandler } from "@smithy/fetch-http-handler";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { awsClientConfig, type AwsClientConfig } from "./credentialsProvider.ts";
import type { AwsStsCredentials } from "./credentialsResource.ts";
import { formatSeconds, InputError, parseDuration } from "./validate.ts";
import { S3UploadStream } from "./multipartUpload.ts";
import { checkBucket, checkKey, explainS3Error } from "./s3Errors.ts";

/** S3 returns at most 1000 keys per page and deletes at most 1000 keys per request. */
const S3_PAGE_SIZE = 1000;
/** A presigned URL lives at most 7 days (SigV4 limit). */
const PRESIGN_MAX_SECONDS = 7 * 24 * 3600;

export async function s3Client(credentials: AwsStsCredentials | string): Promise<{ s3: S3Client; config: AwsClientConfig }> {
  const config = await awsClientConfig(credentials);
  return { s3: new S3Client({ region: config.region, credentials: config.credentials }), config };
}

/**
 * The client a long multipart upload sends its parts with: the SDK's fetch handler instead
 * of its node:http one. Under Bun, node:http's parts left garbage the collector freed late, so
 * the export job's peak RSS grew with the number of parts; through fetch it stays lower and
 * uses less CPU (bench/RESULTS.md). Only request bodies go up here, so the handler's
 * web-stream response bodies (which GetObject callers would have to read differently) never matter.
 */
export async function s3UploadClient(credentials: AwsStsCredentials | string): Promise<S3Client> {
  const config = await awsClientConfig(credentials);
  return new S3Client({ region: config.region, credentials: config.credentials, requestHandler: new FetchHttpHandler() });
}

export interface ObjectRow {
  key: string;
  size: number | null;
  last_modified: string | null;
  etag: string | null;
  storage_class: string | null;
  /** "object", or "prefix" for a common prefix when listing with a delimiter. */
  kind: "object" | "prefix";
}

export async function listObjects(
  s3: S3Client,
  options: { bucket: string; prefix: string; delimiter: string; limit: number },
): Promise<ObjectRow[]> {
  const bucket = checkBucket("bucket", options.bucket);
  if (!Number.isInteger(options.limit) || options.limit < 0) {
    throw new InputError("limit", `${options.limit} is not a count`, "Use 0 for every object, or a positive number");
  }
  const rows: ObjectRow[] = [];
  const pages = paginateListObjectsV2({ client: s3, pageSize: S3_PAGE_SIZE }, {
    Bucket: bucket,
    Prefix: options.prefix || undefined,
    Delimiter: options.delimiter || undefined,
  });
  try {
    for await (const page of pages) {
      for (const p of page.CommonPrefixes ?? []) {
        rows.push({ key: p.Prefix ?? "", size: null, last_modified: null, etag: null, storage_class: null, kind: "prefix" });
      }
      for (const o of page.Contents ?? []) {
        rows.push({
          key: o.Key ?? "",
          size: o.Size ?? null,
          last_modified: o.LastModified?.toISOString() ?? null,
          etag: o.ETag ?? null,
          storage_class: o.StorageClass ?? "STANDARD",
          kind: "object",
        });
      }
      if (options.limit && rows.length >= options.limit) return rows.slice(0, options.limit);
    }
  } catch (err) {
    throw explainS3Error(err, { operation: "ListObjectsV2", bucket, key: options.prefix });
  }
  return rows;
}

export type BodyEncoding = "text" | "json" | "base64";
const BODY_ENCODINGS: BodyEncoding[] = ["text", "json", "base64"];

function checkEncoding(input: string, value: string): BodyEncoding {
  if (!BODY_ENCODINGS.includes(value as BodyEncoding)) {
    throw new InputError(input, `${JSON.stringify(value)} is not an encoding`, 'Use "text", "json" or "base64"');
  }
  return value as BodyEncoding;
}

export interface GotObject {
  bucket: string;
  key: string;
  size: number;
  content_type: string | null;
  etag: string | null;
  last_modified: string | null;
  range: string | null;
  body: unknown;
}

export async function getObject(
  s3: S3Client,
  options: { bucket: string; key: string; as: BodyEncoding; range: string; maxBytes: number },
): Promise<GotObject> {
  const bucket = checkBucket("bucket", options.bucket);
  const key = checkKey("key", options.key);
  const as = checkEncoding("as", options.as);
  const range = options.range.trim();
  if (range && !/^bytes=\d*-\d*$/.test(range)) {
    throw new InputError("range", `${JSON.stringify(range)} is not a byte range`, 'Use "bytes=0-1023" (first KiB) or "bytes=-100" (last 100 bytes)');
  }
  const ctx = { operation: "GetObject", bucket, key };
  const response = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: range || undefined })).catch((err: unknown) => {
    throw explainS3Error(err, ctx);
  });
  const size = response.ContentLength ?? 0;
  if (size > options.maxBytes) {
    // Never leave the connection hanging on an unread body.
    response.Body?.transformToWebStream().cancel();
    throw new InputError("max_bytes", `s3://${bucket}/${key} is ${size} bytes, over the ${options.maxBytes}-byte limit for loading into a job's memory`,
      "Read a part with range (e.g. bytes=0-1048575), raise max_bytes if the worker has the memory, or stream it with a step that does not load it whole (rds_load_csv_from_s3)");
  }
  const bytes = await response.Body!.transformToByteArray();
  return {
    bucket, key, size,
    content_type: response.ContentType ?? null,
    etag: response.ETag ?? null,
    last_modified: response.LastModified?.toISOString() ?? null,
    range: response.ContentRange ?? null,
    body: decodeBody(bytes, as, `s3://${bucket}/${key}`),
  };
}

function decodeBody(bytes: Uint8Array, as: BodyEncoding, where: string): unknown {
  if (as === "base64") return Buffer.from(bytes).toString("base64");
  const text = new TextDecoder("utf-8").decode(bytes);
  if (as === "text") return text;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new InputError("as", `${where} is not JSON (${(err as Error).message})`, 'Read it with as = "text" or "base64"');
  }
}

export function encodeBody(content: string, encoding: BodyEncoding): { body: Buffer; contentType: string } {
  if (typeof content !== "string") throw new InputError("content", "it is not text", "Give the content as a string");
  checkEncoding("encoding", encoding);
  if (encoding === "base64") {
    if (!/^[A-Za-z0-9+/\r\n]*={0,2}$/.test(content)) {
      throw new InputError("content", "it is not base64", 'Give base64 text, or set encoding to "text"');
    }
    return { body: Buffer.from(content, "base64"), contentType: "application/octet-stream" };
  }
  if (encoding === "json") {
    try {
      JSON.parse(content);
    } catch (err) {
      throw new InputError("content", `it is not valid JSON (${(err as Error).message})`, 'Fix the JSON, or set encoding to "text"');
    }
    return { body: Buffer.from(content, "utf8"), contentType: "application/json" };
  }
  return { body: Buffer.from(content, "utf8"), contentType: "text/plain; charset=utf-8" };
}

export interface Encryption {
  sse: "" | "AES256" | "aws:kms";
  kmsKeyId: string;
}

export function encryptionParams(e: Encryption): { ServerSideEncryption?: ServerSideEncryption; SSEKMSKeyId?: string } {
  if (!e.sse) {
    if (e.kmsKeyId) throw new InputError("kms_key_id", "it is set but sse is empty", 'Set sse to "aws:kms" to use a KMS key');
    return {};
  }
  if (e.sse === "AES256") {
    if (e.kmsKeyId) throw new InputError("kms_key_id", "a KMS key does not apply to AES256 (SSE-S3)", 'Set sse to "aws:kms", or clear kms_key_id');
    return { ServerSideEncryption: "AES256" };
  }
  if (e.sse === "aws:kms") return { ServerSideEncryption: "aws:kms", SSEKMSKeyId: e.kmsKeyId || undefined };
  throw new InputError("sse", `${JSON.stringify(e.sse)} is not a server-side encryption mode`, 'Use "", "AES256" or "aws:kms"');
}

export interface PutResult {
  bucket: string;
  key: string;
  size: number;
  etag: string | null;
  version_id: string | null;
  multipart: boolean;
}

/** Uploads a body of any size: one PUT when small, a streamed multipart upload when large. */
export async function uploadObject(
  s3: S3Client,
  options: { bucket: string; key: string; body: Buffer | NodeJS.ReadableStream; contentType: string; encryption: Encryption; onProgress?(bytes: number): void },
): Promise<PutResult> {
  const bucket = checkBucket("bucket", options.bucket);
  const key = checkKey("key", options.key);
  const upload = new S3UploadStream(s3, { bucket, key, contentType: options.contentType, encryption: encryptionParams(options.encryption) }, options.onProgress);
  await pipeline(Buffer.isBuffer(options.body) ? Readable.from([options.body]) : options.body, upload);
  const done = upload.outcome!;
  return { bucket, key, size: done.size, etag: done.etag, version_id: done.versionId, multipart: done.parts > 1 };
}

export interface DeleteReport {
  bucket: string;
  dry_run: boolean;
  matched: number;
  deleted: number;
  failed: { key: string; code: string; message: string }[];
  /** The first keys affected, to check a prefix delete before running it for real. */
  sample: string[];
}

/** How many affected keys to show in the result; the rest are counted. */
const DELETE_SAMPLE_SIZE = 20;

export async function deleteObjects(
  s3: S3Client,
  options: { bucket: string; keys: string[]; prefix: string; dryRun: boolean },
): Promise<DeleteReport> {
  const bucket = checkBucket("bucket", options.bucket);
  if (options.keys.length > 0 === Boolean(options.prefix)) {
    throw new InputError("keys", "give either a list of keys or a prefix, not both and not neither", "Fill keys, or clear it and fill prefix");
  }
  const keys = options.prefix
    ? (await listObjects(s3, { bucket, prefix: options.prefix, delimiter: "", limit: 0 })).map((r) => r.key)
    : options.keys.map((k) => checkKey("keys", k));
  const report: DeleteReport = { bucket, dry_run: options.dryRun, matched: keys.length, deleted: 0, failed: [], sample: keys.slice(0, DELETE_SAMPLE_SIZE) };
  if (options.dryRun) return report;
  for (let i = 0; i < keys.length; i += S3_PAGE_SIZE) {
    const batch = keys.slice(i, i + S3_PAGE_SIZE);
    const response = await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }))
      .catch((err: unknown) => {
        throw explainS3Error(err, { operation: "DeleteObjects", bucket, key: batch[0] });
      });
    // S3 answers 200 even when some keys fail: the failures are listed per key.
    const errors = response.Errors ?? [];
    report.failed.push(...errors.map((e) => ({ key: e.Key ?? "", code: e.Code ?? "", message: e.Message ?? "" })));
    report.deleted += batch.length - errors.length;
  }
  return report;
}

export async function headObject(s3: S3Client, bucket: string, key: string): Promise<Record<string, unknown>> {
  const b = checkBucket("bucket", bucket);
  const k = checkKey("key", key);
  const head = await s3.send(new HeadObjectCommand({ Bucket: b, Key: k })).catch((err: unknown) => {
    throw explainS3Error(err, { operation: "HeadObject", bucket: b, key: k });
  });
  return {
    bucket: b,
    key: k,
    size: head.ContentLength ?? null,
    content_type: head.ContentType ?? null,
    etag: head.ETag ?? null,
    last_modified: head.LastModified?.toISOString() ?? null,
    storage_class: head.StorageClass ?? "STANDARD",
    server_side_encryption: head.ServerSideEncryption ?? null,
    /** The KMS key by its key ARN (S3 reports it so, however the write named it), with SSE-KMS. */
    kms_key_id: head.SSEKMSKeyId ?? null,
    metadata: head.Metadata ?? {},
  };
}

export interface PresignedUrl {
  url: string;
  method: "GET" | "PUT";
  expires_at: string;
  expires_in: string;
  /** Why the URL lives less long than asked, if it does. */
  limited_by: string | null;
  /** Headers the uploader must send exactly as given: they are part of the signature. */
  required_headers: Record<string, string>;
}

/**
 * A presigned URL dies with the session that signed it, so its real lifetime is the
 * smallest of what was asked, 7 days, and what is left of the credentials.
 */
export async function presignUrl(
  s3: S3Client,
  config: AwsClientConfig,
  options: { bucket: string; key: string; method: "GET" | "PUT"; expiresIn: string; contentType: string },
): Promise<PresignedUrl> {
  const bucket = checkBucket("bucket", options.bucket);
  const key = checkKey("key", options.key);
  const asked = parseDuration("expires_in", options.expiresIn, 1, PRESIGN_MAX_SECONDS);
  const creds = await config.credentials();
  const sessionLeft = Math.floor((creds.expiration.getTime() - Date.now()) / 1000);
  const seconds = Math.min(asked, sessionLeft);
  const limitedBy = seconds < asked ? `the credentials expire at ${creds.expiration.toISOString()}; run assume_role with a longer duration for longer links` : null;
  const command = options.method === "PUT"
    ? new PutObjectCommand({ Bucket: bucket, Key: key, ContentType: options.contentType || undefined })
    : new GetObjectCommand({ Bucket: bucket, Key: key });
  // The presigner leaves Content-Type out of the signed headers, so on its own content_type
  // would only be a hint; signing it makes S3 refuse a PUT of any other type.
  const bindContentType = options.method === "PUT" && options.contentType !== "";
  const url = await getSignedUrl(s3, command, { expiresIn: seconds, ...(bindContentType ? { signableHeaders: new Set(["content-type"]) } : {}) });
  return {
    url,
    method: options.method,
    expires_at: new Date(Date.now() + seconds * 1000).toISOString(),
    expires_in: formatSeconds(seconds),
    limited_by: limitedBy,
    required_headers: bindContentType ? { "Content-Type": options.contentType } : {},
  };
}
