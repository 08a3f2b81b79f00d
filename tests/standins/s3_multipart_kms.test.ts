// The S3 stand-in's multipart rules and SSE-KMS permissions, through the real AWS SDK: what
// S3 enforces and s3rver alone does not (S3 API reference, CreateMultipartUpload, UploadPart,
// CompleteMultipartUpload; S3 User Guide, "Permissions for SSE-KMS").
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
  type CompletedPart,
} from "@aws-sdk/client-s3";
import { managedKeyArn } from "../../local/s3/kmsKeys.ts";
import { startS3TestBed, type S3TestBed } from "../helpers/s3TestBed.ts";
import { ACCOUNT_ID, DEMO_KMS_KEYS, REGION } from "../helpers/testStack.ts";

const BUCKET = "rules-bucket";
const MIB = 1024 * 1024;
const KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab";
const KEY_ARN = `arn:aws:kms:${REGION}:${ACCOUNT_ID}:key/${KEY_ID}`;
const ALIAS = "alias/demo-data";
const ALIAS_ARN = `arn:aws:kms:${REGION}:${ACCOUNT_ID}:${ALIAS}`;
/** The AWS managed key aws/s3 is a key with a key ARN of its own, not its alias. */
const MANAGED_KEY_ARN = managedKeyArn({ region: REGION, accountId: ACCOUNT_ID });
setDefaultTimeout(30_000);
let bed: S3TestBed;
let client: S3Client;

function policy(...statements: Record<string, unknown>[]): string {
  return JSON.stringify({ Version: "2012-10-17", Statement: statements });
}
const S3_ONLY = policy({ Effect: "Allow", Action: "s3:*", Resource: "*" });
const clientFor: S3TestBed["clientFor"] = (...args) => bed.clientFor(...args);

beforeAll(async () => {
  bed = await startS3TestBed(BUCKET, { kmsKeys: DEMO_KMS_KEYS });
  client = bed.client;
});
afterAll(() => bed?.close());

/** Creates an upload and sends parts of the given sizes; the parts as Complete lists them. */
async function upload(key: string, sizes: number[], options: { checksum?: "CRC32" } = {}, c = client) {
  const { UploadId } = await c.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key, ChecksumAlgorithm: options.checksum }));
  const parts: CompletedPart[] = [];
  for (const [i, size] of sizes.entries()) {
    const part = await c.send(new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId, PartNumber: i + 1, Body: Buffer.alloc(size, i + 1), ChecksumAlgorithm: options.checksum }));
    parts.push({ PartNumber: i + 1, ETag: part.ETag, ...(part.ChecksumCRC32 && { ChecksumCRC32: part.ChecksumCRC32 }) });
  }
  const complete = (Parts: CompletedPart[]) => c.send(new CompleteMultipartUploadCommand({ Bucket: BUCKET, Key: key, UploadId, MultipartUpload: { Parts } }));
  return { UploadId: UploadId!, parts, complete };
}

describe("multipart rules", () => {
  test("a part under 5 MiB is EntityTooSmall unless it is the last; the last may be any size", async () => {
    const small = await upload("mp/small.bin", [1000, 10]);
    await expect(small.complete(small.parts)).rejects.toMatchObject({ name: "EntityTooSmall", $metadata: { httpStatusCode: 400 } });
    const fine = await upload("mp/fine.bin", [5 * MIB, 10]);
    await fine.complete(fine.parts);
    expect((await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "mp/fine.bin" }))).ContentLength).toBe(5 * MIB + 10);
  });

  test("parts out of order are InvalidPartOrder; an unknown part or a wrong ETag is InvalidPart", async () => {
    const { parts, complete } = await upload("mp/order.bin", [5 * MIB, 10]);
    await expect(complete([parts[1]!, parts[0]!])).rejects.toMatchObject({ name: "InvalidPartOrder" });
    await expect(complete([parts[0]!, { ...parts[1]!, PartNumber: 3 }])).rejects.toMatchObject({ name: "InvalidPart" });
    await expect(complete([parts[0]!, { ...parts[1]!, ETag: '"0123456789abcdef0123456789abcdef"' }])).rejects.toMatchObject({ name: "InvalidPart" });
    await complete(parts);
  });

  test("part numbers run from 1 to 10,000: others are InvalidArgument", async () => {
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: "mp/numbers.bin" }));
    for (const PartNumber of [0, 10_001]) {
      await expect(client.send(new UploadPartCommand({ Bucket: BUCKET, Key: "mp/numbers.bin", UploadId, PartNumber, Body: "x" })))
        .rejects.toMatchObject({ name: "InvalidArgument", message: "Part number must be an integer between 1 and 10000, inclusive" });
    }
    await client.send(new UploadPartCommand({ Bucket: BUCKET, Key: "mp/numbers.bin", UploadId, PartNumber: 10_000, Body: "x" }));
  });

  test("UploadPart answers the part's checksum; a Complete whose parts lack the upload's checksum is InvalidRequest", async () => {
    const { parts, complete } = await upload("mp/crc.bin", [5 * MIB, 10], { checksum: "CRC32" });
    expect(parts.map((p) => p.ChecksumCRC32)).toEqual([expect.stringMatching(/^[A-Za-z0-9+/]{6}==$/), expect.stringMatching(/^[A-Za-z0-9+/]{6}==$/)]);
    const withoutChecksums = parts.map(({ PartNumber, ETag }) => ({ PartNumber, ETag }));
    await expect(complete(withoutChecksums)).rejects.toMatchObject({
      name: "InvalidRequest",
      message: "The upload was created using a crc32 checksum. The complete request must include the checksum for each part. It was missing for part 1 in the request.",
    });
    await expect(complete([parts[0]!, { ...parts[1]!, ChecksumCRC32: "AAAAAA==" }])).rejects.toMatchObject({ name: "InvalidPart" });
    await complete(parts);
  });

  test("a part without the upload's checksum, or with another one, is InvalidRequest", async () => {
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: "mp/mismatch.bin", ChecksumAlgorithm: "CRC32" }));
    const plain = await clientFor(undefined, { requestChecksumCalculation: "WHEN_REQUIRED" });
    await expect(plain.send(new UploadPartCommand({ Bucket: BUCKET, Key: "mp/mismatch.bin", UploadId, PartNumber: 1, Body: "x" })))
      .rejects.toMatchObject({ name: "InvalidRequest", message: "Checksum Type mismatch occurred, expected checksum Type: crc32, actual checksum Type: null" });
    await expect(client.send(new UploadPartCommand({ Bucket: BUCKET, Key: "mp/mismatch.bin", UploadId, PartNumber: 1, Body: "x", ChecksumAlgorithm: "SHA256" })))
      .rejects.toMatchObject({ name: "InvalidRequest", message: "Checksum Type mismatch occurred, expected checksum Type: crc32, actual checksum Type: sha256" });
  });
});

describe("SSE-KMS", () => {
  /** keyId "" names no key. */
  const kmsPut = (key: string, c: S3Client, keyId = KEY_ARN) =>
    c.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: "secret", ServerSideEncryption: "aws:kms", SSEKMSKeyId: keyId || undefined }));
  const denied = (action: string, key = KEY_ARN) => ({ name: "AccessDenied", message: expect.stringContaining(`is not authorized to perform: ${action} on resource: ${key} because`) });

  test("a role allowed the key puts and gets; S3 reports the key by its key ARN, whichever way it was named", async () => {
    for (const named of [KEY_ID, KEY_ARN, ALIAS, ALIAS_ARN]) {
      expect((await kmsPut("kms/by-name.txt", client, named)).SSEKMSKeyId).toBe(KEY_ARN);
      const head = await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "kms/by-name.txt" }));
      expect({ named, sse: head.ServerSideEncryption, key: head.SSEKMSKeyId }).toEqual({ named, sse: "aws:kms", key: KEY_ARN });
      expect(await (await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: "kms/by-name.txt" }))).Body!.transformToString()).toBe("secret");
    }
  });

  test("a key named by its alias is authorised on its key ARN: a grant on the alias ARN is not enough", async () => {
    const onAlias = await clientFor(policy({ Effect: "Allow", Action: "s3:*", Resource: "*" }, { Effect: "Allow", Action: "kms:*", Resource: ALIAS_ARN }));
    await expect(kmsPut("kms/alias-grant.txt", onAlias, ALIAS)).rejects.toMatchObject(denied("kms:GenerateDataKey"));
    const onKey = await clientFor(policy({ Effect: "Allow", Action: "s3:*", Resource: "*" }, { Effect: "Allow", Action: "kms:*", Resource: KEY_ARN }));
    await kmsPut("kms/alias-grant.txt", onKey, ALIAS);
  });

  test("a key that does not exist is 400 KMS.NotFoundException naming it, and nothing is stored", async () => {
    const missing = `arn:aws:kms:${REGION}:${ACCOUNT_ID}:key/00000000-0000-0000-0000-000000000000`;
    await expect(kmsPut("kms/missing.txt", client, missing))
      .rejects.toMatchObject({ name: "KMS.NotFoundException", message: `Key '${missing}' does not exist`, $metadata: { httpStatusCode: 400 } });
    await expect(kmsPut("kms/missing.txt", client, "00000000-0000-0000-0000-000000000000")).rejects.toMatchObject({ message: `Key '${missing}' does not exist` });
    await expect(kmsPut("kms/missing.txt", client, "alias/nope")).rejects.toMatchObject({ name: "KMS.NotFoundException", message: `Alias arn:aws:kms:${REGION}:${ACCOUNT_ID}:alias/nope is not found.` });
    await expect(client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: "kms/missing.bin", ServerSideEncryption: "aws:kms", SSEKMSKeyId: missing })))
      .rejects.toMatchObject({ name: "KMS.NotFoundException" });
    await expect(client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "kms/missing.txt" }))).rejects.toMatchObject({ name: "NotFound" });
  });

  test("without kms:GenerateDataKey a put is AccessDenied naming the KMS action and key; without kms:Decrypt a get is", async () => {
    await kmsPut("kms/stored.txt", client);
    const s3Only = await clientFor(S3_ONLY);
    await expect(kmsPut("kms/denied.txt", s3Only)).rejects.toMatchObject(denied("kms:GenerateDataKey"));
    await expect(s3Only.send(new GetObjectCommand({ Bucket: BUCKET, Key: "kms/stored.txt" }))).rejects.toMatchObject(denied("kms:Decrypt"));
    // HEAD reads metadata only; an unencrypted object needs no key.
    await expect(s3Only.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "kms/stored.txt" }))).resolves.toMatchObject({ SSEKMSKeyId: KEY_ARN });
    await s3Only.send(new PutObjectCommand({ Bucket: BUCKET, Key: "kms/plain.txt", Body: "plain" }));
  });

  test("a copy needs kms:Decrypt on its source's key and kms:GenerateDataKey on its own; it is encrypted as the copy asks", async () => {
    await kmsPut("kms/source.txt", client);
    const s3Only = await clientFor(S3_ONLY);
    const copy = (c: S3Client, extra: Record<string, string> = {}) =>
      c.send(new CopyObjectCommand({ Bucket: BUCKET, Key: "kms/copy.txt", CopySource: `${BUCKET}/kms/source.txt`, ...extra }));
    await expect(copy(s3Only)).rejects.toMatchObject(denied("kms:Decrypt"));
    await copy(client);
    // Without SSE headers the copy takes the bucket's default, SSE-S3, not its source's key.
    expect((await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "kms/copy.txt" }))).ServerSideEncryption).toBe("AES256");
    await s3Only.send(new PutObjectCommand({ Bucket: BUCKET, Key: "kms/plain-source.txt", Body: "plain" }));
    await expect(s3Only.send(new CopyObjectCommand({ Bucket: BUCKET, Key: "kms/copy2.txt", CopySource: `${BUCKET}/kms/plain-source.txt`, ServerSideEncryption: "aws:kms", SSEKMSKeyId: KEY_ARN })))
      .rejects.toMatchObject(denied("kms:GenerateDataKey"));
  });

  test("no key named, or alias/aws/s3, is the AWS managed key with its own key ARN: its key policy lets the account use it through S3, so only a Deny refuses it", async () => {
    expect(MANAGED_KEY_ARN).toMatch(new RegExp(`^arn:aws:kms:${REGION}:${ACCOUNT_ID}:key/[0-9a-f-]{36}$`));
    await kmsPut("kms/managed.txt", await clientFor(S3_ONLY), "");
    expect((await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "kms/managed.txt" }))).SSEKMSKeyId).toBe(MANAGED_KEY_ARN);
    expect((await kmsPut("kms/managed-alias.txt", client, "alias/aws/s3")).SSEKMSKeyId).toBe(MANAGED_KEY_ARN);
    const denyKms = await clientFor(policy({ Effect: "Allow", Action: "s3:*", Resource: "*" }, { Effect: "Deny", Action: "kms:*", Resource: "*" }));
    await expect(kmsPut("kms/managed-denied.txt", denyKms, "")).rejects.toMatchObject(denied("kms:GenerateDataKey", MANAGED_KEY_ARN));
  });

  test("a multipart upload needs kms:GenerateDataKey to start and kms:Decrypt for each part", async () => {
    const create = (c: S3Client) => c.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: "kms/multipart.bin", ServerSideEncryption: "aws:kms", SSEKMSKeyId: KEY_ARN }));
    await expect(create(await clientFor(S3_ONLY))).rejects.toMatchObject(denied("kms:GenerateDataKey"));
    const noDecrypt = await clientFor(policy({ Effect: "Allow", Action: ["s3:*", "kms:GenerateDataKey"], Resource: "*" }));
    const { UploadId } = await create(noDecrypt);
    await expect(noDecrypt.send(new UploadPartCommand({ Bucket: BUCKET, Key: "kms/multipart.bin", UploadId, PartNumber: 1, Body: "x" }))).rejects.toMatchObject(denied("kms:Decrypt"));
    await client.send(new UploadPartCommand({ Bucket: BUCKET, Key: "kms/multipart.bin", UploadId, PartNumber: 1, Body: "x" }));
  });
});
