// Which S3 operation a request is, and the IAM checks (action, resource, condition
// context) it needs; anything this stand-in does not implement is refused, not guessed.
import type { IncomingHttpHeaders } from "node:http";
import { notImplemented, S3ErrorReply } from "./errors.ts";
import { BUCKET_NAME, SUBRESOURCES } from "./limits.ts";
import { decodeComponent, param, type Target } from "./request.ts";
import { checkKeyLength } from "./storedKeys.ts";

export interface PermissionCheck {
  action: string;
  resource: string;
  context?: Record<string, string>;
}

export interface Operation {
  name: string;
  checks: PermissionCheck[];
  /** CopyObject's source, re-encoded for s3rver. */
  copySource?: { bucket: string; key: string };
}

export function objectArn(bucket: string, key: string): string {
  return `arn:aws:s3:::${bucket}/${key}`;
}

/** x-amz-copy-source is `bucket/key` (optionally with a leading slash), URL-encoded. */
function parseCopySource(header: string): { bucket: string; key: string } {
  const [path = "", version] = header.replace(/^\//, "").split("?");
  if (version !== undefined) throw notImplemented("object versions (x-amz-copy-source with ?versionId)");
  const slash = path.indexOf("/");
  if (slash <= 0 || slash === path.length - 1) {
    throw new S3ErrorReply("InvalidArgument", "Copy Source must mention the source bucket and key: sourcebucket/sourcekey", { ArgumentName: "x-amz-copy-source", ArgumentValue: header });
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
  // Any key up to 1024 bytes is valid, "." and ".." segments and empty ones included (storedKeys.ts).
  checkKeyLength(key);
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
    case "PUT ?uploadId +copy": {
      const source = parseCopySource(copySourceHeader as string);
      return {
        name: "UploadPartCopy",
        checks: [{ action: "s3:PutObject", resource }, { action: "s3:GetObject", resource: objectArn(source.bucket, source.key) }],
        copySource: source,
      };
    }
    case "POST ?uploadId":
      return { name: "CompleteMultipartUpload", checks: [{ action: "s3:PutObject", resource }] };
    case "DELETE ?uploadId":
      return { name: "AbortMultipartUpload", checks: [{ action: "s3:AbortMultipartUpload", resource }] };
    default:
      throw notImplemented(`${target.method} on an object${sub ? ` with ?${sub}` : ""}${copying ? " and x-amz-copy-source" : ""}`);
  }
}

/** The operation a request is; NotImplemented for what this stand-in does not do, InvalidBucketName for a bad bucket. */
export function classify(target: Target, headers: IncomingHttpHeaders): Operation {
  const { bucket, key } = target;
  // UploadPart carries both partNumber and uploadId; uploadId names the sub-API.
  const sub = param(target, "uploadId") !== undefined ? "uploadId" : SUBRESOURCES.find((name) => param(target, name) !== undefined);
  if (!bucket) {
    if (target.method === "GET" && !sub) return { name: "ListBuckets", checks: [{ action: "s3:ListAllMyBuckets", resource: "*" }] };
    throw notImplemented(`${target.method} on the service endpoint`);
  }
  if (!BUCKET_NAME.test(bucket) || bucket.includes("..")) throw new S3ErrorReply("InvalidBucketName", "The specified bucket is not valid.", { BucketName: bucket });
  return key === undefined ? classifyBucket(target, bucket, sub) : classifyObject(target, headers, bucket, key, sub);
}

