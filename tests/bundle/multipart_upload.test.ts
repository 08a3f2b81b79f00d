// The streaming uploader behind the export and s3_put_object, against the S3 stand-in
// (SigV4 and CRC32 checked on every request): row-sized writes come back byte-exact,
// small bodies take one PutObject, and a part that keeps failing aborts the upload.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { assumeRoleAndSave } from "../../f/aws_oidc/lib/assumeRoleAndSave.ts";
import { S3UploadStream, UPLOAD_PART_SIZE } from "../../f/aws_oidc/lib/multipartUpload.ts";
import { s3Client } from "../../f/aws_oidc/lib/s3.ts";
import { auditLeaksThenClose } from "../helpers/leaks.ts";
import { DEMO_ROLE_ARN, REGION, startStack, type Stack } from "../helpers/testStack.ts";

const CREDS = "f/aws_oidc/upload_test_creds";
const BUCKET = "upload-bucket";
/** The SDK's standard retry mode tries a request this many times. */
const SDK_ATTEMPTS = 3;
let stack: Stack;
let s3: S3Client;

beforeAll(async () => {
  stack = await startStack({ s3: true });
  stack.actAsJob("f/aws_oidc/upload_test");
  await assumeRoleAndSave({ roleArn: DEMO_ROLE_ARN, region: REGION, saveTo: CREDS }, () => {});
  s3 = (await s3Client(CREDS)).s3;
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
});
afterAll(async () => {
  await auditLeaksThenClose(stack);
});

const target = (key: string) => ({ bucket: BUCKET, key, contentType: "text/csv", encryption: {} });

/** Rows of 1 to 3000 bytes, as COPY TO STDOUT hands them over, `total` bytes in all. */
function rows(total: number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let size = 0, n = 0; size < total; n++) {
    const row = Buffer.from(`${n},${"x".repeat((n * 7919) % 3000)}\n`.slice(0, total - size));
    chunks.push(row);
    size += row.length;
  }
  return chunks;
}

async function objectSha256(key: string): Promise<string> {
  const object = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  return createHash("sha256").update(await object.Body!.transformToByteArray()).digest("hex");
}

function callsSince(before: Record<string, number>): Record<string, number> {
  const now = stack.s3!.stats().calls;
  return Object.fromEntries(Object.entries(now).map(([op, n]) => [op, n - (before[op] ?? 0)]).filter(([, n]) => n !== 0));
}

/** An upload fed by hand, waited on until its first part is in S3. */
async function uploadWithFirstPartSent(key: string, firstChunk: Buffer) {
  const progress: number[] = [];
  const source = new Readable({ read() {} });
  const done = pipeline(source, new S3UploadStream(s3, target(key), (bytes) => progress.push(bytes))).then(() => undefined, (e: Error) => e);
  source.push(firstChunk);
  while (progress.length === 0) await Bun.sleep(10);
  return { source, done };
}

const headOf = (key: string) => s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key })).then(() => "exists", (e: Error) => e.name);

describe("S3UploadStream", () => {
  test("row-sized writes go up as 8 MiB parts and come back byte-exact", async () => {
    const data = rows(2 * UPLOAD_PART_SIZE + 123_457);
    const before = stack.s3!.stats().calls;
    const upload = new S3UploadStream(s3, target("rows/big.csv"));
    await pipeline(Readable.from(data), upload);
    const bytes = Buffer.concat(data);
    expect(upload.outcome).toMatchObject({ size: bytes.length, parts: 3 });
    expect(callsSince(before)).toEqual({ CreateMultipartUpload: 1, UploadPart: 3, CompleteMultipartUpload: 1 });
    expect(await objectSha256("rows/big.csv")).toBe(createHash("sha256").update(bytes).digest("hex"));
  });

  test("less than a part is a single PutObject", async () => {
    const before = stack.s3!.stats().calls;
    const upload = new S3UploadStream(s3, target("rows/small.csv"));
    await pipeline(Readable.from(rows(10_000)), upload);
    expect(upload.outcome).toMatchObject({ size: 10_000, parts: 1 });
    expect(callsSince(before)).toEqual({ PutObject: 1 });
  });

  test("an empty stream makes an empty object", async () => {
    const upload = new S3UploadStream(s3, target("rows/empty.csv"));
    await pipeline(Readable.from([]), upload);
    const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "rows/empty.csv" }));
    expect(head.ContentLength).toBe(0);
  });

  test("a part that keeps failing aborts the upload, with the object and the fix in the error", async () => {
    const before = stack.s3!.stats().calls;
    const { source, done } = await uploadWithFirstPartSent("rows/failed.csv", Buffer.alloc(UPLOAD_PART_SIZE, "a"));
    // The first part is in S3; from now on every attempt of the second part fails.
    Object.assign(stack.s3!.faults, { status: 500, count: SDK_ATTEMPTS });
    source.push(Buffer.alloc(UPLOAD_PART_SIZE, "b"));
    source.push(null);
    const err = await done;
    expect(err?.message).toContain("S3 PutObject on s3://upload-bucket/rows/failed.csv failed with InternalError");
    expect(err?.message).toContain("Fix:");
    expect(callsSince(before)).toMatchObject({ CreateMultipartUpload: 1, UploadPart: 1 + SDK_ATTEMPTS, AbortMultipartUpload: 1 });
    expect(callsSince(before).CompleteMultipartUpload).toBeUndefined();
    expect(await headOf("rows/failed.csv")).toBe("NotFound");
  });

  test("a source that dies mid-stream (the database went away) aborts the upload: no object, its own error", async () => {
    const before = stack.s3!.stats().calls;
    const { source, done } = await uploadWithFirstPartSent("rows/source-died.csv", Buffer.alloc(UPLOAD_PART_SIZE + 10, "c"));
    source.destroy(new Error("the COPY connection was terminated"));
    const err = await done;
    expect(err?.message).toBe("the COPY connection was terminated");
    // The abort runs as the stream is torn down: wait for it rather than for a fixed time.
    while (!callsSince(before).AbortMultipartUpload) await Bun.sleep(20);
    expect(callsSince(before)).toEqual({ CreateMultipartUpload: 1, UploadPart: 1, AbortMultipartUpload: 1 });
    expect(await headOf("rows/source-died.csv")).toBe("NotFound");
  });

  test("SSE-KMS: a role allowed the key uploads; one without kms:Decrypt fails at its first part, told to allow it on the key", async () => {
    const kms = { ServerSideEncryption: "aws:kms" as const, SSEKMSKeyId: `arn:aws:kms:${REGION}:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab` };
    const data = rows(UPLOAD_PART_SIZE + 5000);
    await pipeline(Readable.from(data), new S3UploadStream(s3, { ...target("rows/kms.csv"), encryption: kms }));
    expect((await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "rows/kms.csv" }))).SSEKMSKeyId).toBe(kms.SSEKMSKeyId);
    const noDecrypt = "f/aws_oidc/upload_no_decrypt_creds";
    const sessionPolicy = JSON.stringify({ Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: ["s3:*", "kms:GenerateDataKey"], Resource: "*" }] });
    await assumeRoleAndSave({ roleArn: DEMO_ROLE_ARN, region: REGION, saveTo: noDecrypt, sessionPolicy }, () => {});
    const limited = (await s3Client(noDecrypt)).s3;
    const err = await pipeline(Readable.from(data), new S3UploadStream(limited, { ...target("rows/kms-denied.csv"), encryption: kms })).then(() => undefined, (e: Error) => e);
    expect(err?.message).toContain(`Fix: S3 uses the KMS key ${kms.SSEKMSKeyId}`);
    expect(err?.message).toContain(`must allow kms:Decrypt on ${kms.SSEKMSKeyId}`);
    expect(await headOf("rows/kms-denied.csv")).toBe("NotFound");
  });

  test("s3_put_object, run as a job, sends a body over one part as multipart", async () => {
    const content = "é".repeat(UPLOAD_PART_SIZE / 2 + 1000);
    const { status, result } = await stack.runScript("f/aws_oidc/s3_put_object", { credentials: `$res:${CREDS}`, bucket: BUCKET, key: "rows/job.txt", content });
    expect(status).toBe(200);
    expect(result).toMatchObject({ key: "rows/job.txt", size: Buffer.byteLength(content), multipart: true });
    expect(await objectSha256("rows/job.txt")).toBe(createHash("sha256").update(content).digest("hex"));
  });
});
