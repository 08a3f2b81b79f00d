// Bucket/key checks and S3 errors turned into messages that say what to fix.
import { AwsCallError } from "./awsError.ts";
import { InputError } from "./validate.ts";

/** Bucket naming rules: 3–63 chars, lowercase letters, digits, dots and hyphens, not an IP. */
const BUCKET_PATTERN = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
/** S3 keys are at most 1024 bytes of UTF-8. */
const MAX_KEY_BYTES = 1024;

export function checkBucket(input: string, value: unknown): string {
  const bucket = typeof value === "string" ? value.trim() : "";
  if (bucket.startsWith("s3://")) {
    throw new InputError(input, `${JSON.stringify(bucket)} is a URL`, `Give the bucket name alone: ${bucket.slice(5).split("/")[0]}`);
  }
  if (!BUCKET_PATTERN.test(bucket) || bucket.includes("..") || /^\d+\.\d+\.\d+\.\d+$/.test(bucket)) {
    throw new InputError(input, `${JSON.stringify(bucket)} is not a valid bucket name`,
      "Bucket names are 3-63 characters of lowercase letters, digits, dots and hyphens");
  }
  return bucket;
}

export function checkKey(input: string, value: unknown): string {
  if (typeof value !== "string" || value === "") {
    throw new InputError(input, "the object key is empty", "Give the key of the object, e.g. exports/2026/data.csv");
  }
  if (Buffer.byteLength(value, "utf8") > MAX_KEY_BYTES) {
    throw new InputError(input, `the key is ${Buffer.byteLength(value, "utf8")} bytes`, `S3 keys are at most ${MAX_KEY_BYTES} bytes of UTF-8`);
  }
  return value;
}

interface S3ErrorShape {
  name?: string;
  Code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

export interface S3CallContext {
  operation: string;
  bucket: string;
  key?: string;
  source?: string;
}

export class S3Error extends AwsCallError {
  override name = "S3Error";
  constructor(operation: string, code: string, problem: string, fix: string) {
    super("S3", operation, code, problem, fix);
  }
}

export function explainS3Error(err: unknown, ctx: S3CallContext): Error {
  if (err instanceof InputError) return err;
  const e = (err ?? {}) as S3ErrorShape;
  const status = e.$metadata?.httpStatusCode;
  const code = bodylessCode(e.Code ?? e.name ?? "Error", status);
  const where = ctx.key ? `s3://${ctx.bucket}/${ctx.key}` : `s3://${ctx.bucket}`;
  const message = (e.message ?? String(err)).trim();
  const head = `S3 ${ctx.operation} on ${where} failed with ${code}${status ? ` (HTTP ${status})` : ""}: ${message}`;
  return new S3Error(ctx.operation, code, head, s3Fix(code, ctx, message));
}

/**
 * A HEAD response has no body to carry the error code: the SDK names the error after the
 * status where the operation models it (HeadObject's NotFound), and "Unknown" otherwise
 * (HeadBucket's 403), so the status decides.
 */
function bodylessCode(code: string, status: number | undefined): string {
  if (code !== "Unknown") return code;
  if (status === 403) return "Forbidden";
  if (status === 404) return "NotFound";
  return code;
}

/** The IAM action an S3 operation needs, where its name is not one (S3 User Guide, actions for object operations). */
const IAM_ACTION: Record<string, string> = {
  HeadObject: "GetObject",
  ListObjectsV2: "ListBucket",
  HeadBucket: "ListBucket",
  CopyObject: "PutObject",
  CreateMultipartUpload: "PutObject",
  UploadPart: "PutObject",
  UploadPartCopy: "PutObject",
  CompleteMultipartUpload: "PutObject",
  DeleteObjects: "DeleteObject",
};

function accessDeniedFix(ctx: S3CallContext): string {
  const action = IAM_ACTION[ctx.operation] ?? ctx.operation;
  const resource = action === "ListBucket" ? `arn:aws:s3:::${ctx.bucket}` : `arn:aws:s3:::${ctx.bucket}/${ctx.key ?? "*"}`;
  const source = ctx.source ? ` and s3:GetObject on arn:aws:s3:::${ctx.source}` : "";
  return `the role's permission policy (and the session policy, if assume_role set one) must allow s3:${action} on ${resource}${source}; an explicit Deny anywhere wins.`;
}

/**
 * With SSE-KMS, S3 calls KMS as the caller and passes KMS's refusal on: "User: … is not
 * authorized to perform: kms:GenerateDataKey on resource: <key ARN> because …" (S3 User
 * Guide, "Troubleshoot access denied (403 Forbidden) errors"). The action and key to allow
 * are in the message, not in the S3 operation.
 */
const KMS_DENIAL = /is not authorized to perform: (kms:\w+) on resource: "?(arn:[^"\s]+)"?/;

function kmsDeniedFix(action: string, keyArn: string): string {
  return `S3 uses the KMS key ${keyArn} for this object (SSE-KMS), so the role's permission policy (and the session policy, if assume_role set one) must allow ${action} on ${keyArn}, ` +
    "and the key's policy must let the role use it. Writing needs kms:GenerateDataKey; reading, and each part of a multipart upload, kms:Decrypt: " +
    "give both (f/aws_oidc/trust_policy with kms_key_arn, or npm run aws:policy -- --kms-key-arn, adds them). An explicit Deny anywhere wins.";
}

/**
 * S3 resolves the KMS key of SSE-KMS (a key id, alias/<name>, key ARN or alias ARN) in the
 * bucket's region, and a key id or alias name in the caller's account; a key it cannot find is
 * KMS.NotFoundException ("Key '<key ARN>' does not exist", "Alias <alias ARN> is not found.").
 */
function kmsNotFoundFix(): string {
  return "the KMS key named in kms_key_id does not exist where S3 looks for it (the message names the ARN it tried). Check the key id or alias " +
    "(aws kms describe-key --key-id <key> --region <bucket region>); the key must be in the bucket's region; a key id or alias/<name> is looked up " +
    "in the credentials' account, so give a key of another account by its full key ARN. Clear kms_key_id to use the AWS managed key aws/s3.";
}

/** Reads for which S3 hides a missing key behind a 403 unless the caller may list the bucket. */
const KEY_READS = new Set(["GetObject", "HeadObject"]);

function s3Fix(code: string, ctx: S3CallContext, message: string): string {
  // A HEAD response has no body: the SDK names the error after the status.
  if (code === "Forbidden") code = "AccessDenied";
  const kms = code === "AccessDenied" ? KMS_DENIAL.exec(message) : null;
  if (kms) return kmsDeniedFix(kms[1]!, kms[2]!);
  // HeadBucket's 404 is a missing bucket, not a missing key.
  if (code === "NotFound" && ctx.operation === "HeadBucket") code = "NoSuchBucket";
  const mayNotExist = KEY_READS.has(ctx.operation)
    ? ` The key may also not exist: S3 answers 403 instead of 404 for a missing key when the role lacks s3:ListBucket on arn:aws:s3:::${ctx.bucket} (allow it, or list the prefix, to tell the two apart).`
    : "";
  switch (code) {
    case "AccessDenied":
      return `${accessDeniedFix(ctx)}${mayNotExist}`;
    case "NoSuchBucket":
      return `bucket ${ctx.bucket} does not exist in this account/region: check the name and the region of the credentials resource.`;
    case "NoSuchKey":
    case "NotFound":
      return `no object at ${ctx.key ?? ""} in ${ctx.bucket}: list the prefix with s3_list_objects to find the key (keys are case-sensitive).`;
    case "ExpiredToken":
    case "ExpiredTokenException":
      return "the session expired: run f/aws_oidc/assume_role again (or let the step refresh it: pass the resource as $res:<path>).";
    case "InvalidAccessKeyId":
    case "InvalidToken":
    case "SignatureDoesNotMatch":
      return "the credentials are not a live STS session: run f/aws_oidc/assume_role with force = true to mint a fresh one.";
    case "InvalidRange":
      return "the range starts at or past the end of the object (or is bytes=-0; an empty object has no byte range): check its size with s3_head_object.";
    case "KMS.NotFoundException":
      return kmsNotFoundFix();
    case "PermanentRedirect":
    case "AuthorizationHeaderMalformed":
      return "the bucket is in another region than the credentials resource: save credentials for the bucket's region.";
    default:
      return `see the S3 documentation for ${code}.`;
  }
}
