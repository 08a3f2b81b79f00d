// s3_copy_object's library against the S3 stand-in with its single-copy limit scaled down
// (S3's 5 GiB to 6 MiB, and the bundle's threshold with it): a source above the limit is
// copied as a multipart copy, byte-exact, with its metadata; below it, one CopyObject.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { CopyObjectCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import type { Encryption } from "../../f/aws_oidc/lib/s3.ts";
import { copyObject } from "../../f/aws_oidc/lib/s3Copy.ts";
import type { S3StandIn } from "../../local/s3/server.ts";
import { startS3TestBed, type S3TestBed } from "../helpers/s3TestBed.ts";
import { DEMO_KMS_KEY_ARN, DEMO_KMS_KEYS } from "../helpers/testStack.ts";

const BUCKET = "copy-bucket";
const MIB = 1024 * 1024;
const LIMIT = 6 * MIB;
setDefaultTimeout(30_000);
let bed: S3TestBed;
let s3: S3StandIn;
let client: S3Client;

beforeAll(async () => {
  bed = await startS3TestBed(BUCKET, { kmsKeys: DEMO_KMS_KEYS, maxCopySourceBytes: LIMIT });
  ({ s3, client } = bed);
});
afterAll(() => bed?.close());

const copy = (sourceKey: string, key: string, encryption: Encryption = { sse: "", kmsKeyId: "" }) =>
  copyObject(client, { sourceBucket: BUCKET, sourceKey, bucket: BUCKET, key, encryption, maxSingleCopyBytes: LIMIT });
const bytesOf = async (Key: string) => Buffer.from(await (await client.send(new GetObjectCommand({ Bucket: BUCKET, Key }))).Body!.transformToByteArray());

describe("s3_copy_object", () => {
  test("a source over the single-copy limit is copied in parts, byte-exact, keeping its content type and metadata", async () => {
    const data = randomBytes(13 * MIB + 5);
    await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "src/big.bin", Body: data, ContentType: "application/x-big", Metadata: { origin: "test" } }));
    // The stand-in refuses it as one copy, as S3 does above 5 GiB.
    await expect(client.send(new CopyObjectCommand({ Bucket: BUCKET, Key: "dst/direct.bin", CopySource: `${BUCKET}/src/big.bin` }))).rejects.toMatchObject({ name: "InvalidRequest" });
    const before = s3.stats().calls;
    const result = await copy("src/big.bin", "dst/big.bin");
    const calls = s3.stats().calls;
    expect(result).toMatchObject({ source: `s3://${BUCKET}/src/big.bin`, destination: `s3://${BUCKET}/dst/big.bin`, size: data.length, parts: 3 });
    expect({ copies: (calls.CopyObject ?? 0) - (before.CopyObject ?? 0), partCopies: (calls.UploadPartCopy ?? 0) - (before.UploadPartCopy ?? 0) }).toEqual({ copies: 0, partCopies: 3 });
    expect((await bytesOf("dst/big.bin")).equals(data)).toBe(true);
    const head = await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "dst/big.bin" }));
    expect({ type: head.ContentType, metadata: head.Metadata, sse: head.ServerSideEncryption }).toEqual({ type: "application/x-big", metadata: { origin: "test" }, sse: "AES256" });
  });

  test("a multipart copy is encrypted as asked", async () => {
    await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "src/big-kms.bin", Body: randomBytes(7 * MIB) }));
    const result = await copy("src/big-kms.bin", "dst/big-kms.bin", { sse: "aws:kms", kmsKeyId: "alias/demo-data" });
    expect(result.parts).toBe(2);
    const head = await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "dst/big-kms.bin" }));
    expect({ sse: head.ServerSideEncryption, key: head.SSEKMSKeyId }).toEqual({ sse: "aws:kms", key: DEMO_KMS_KEY_ARN });
  });

  test("a source at or under the limit is one CopyObject", async () => {
    await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "src/small.txt", Body: "small" }));
    expect(await copy("src/small.txt", "dst/small.txt")).toMatchObject({ parts: 1, size: 5 });
    expect((await bytesOf("dst/small.txt")).toString()).toBe("small");
  });

  test("a missing source names the source and how to find it", async () => {
    await expect(copy("src/missing.bin", "dst/missing.bin")).rejects.toMatchObject({ message: expect.stringContaining(`S3 HeadObject on s3://${BUCKET}/src/missing.bin failed`) });
  });
});
