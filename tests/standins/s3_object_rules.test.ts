// What S3 does with ranges, presigned headers, encryption, copy sizes and key names, through the
// real AWS SDK against the S3 stand-in (issue 21: each rule names the AWS page or the moto test
// that records S3's answer, in local/s3/).
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
} from "@aws-sdk/client-s3";
import { randomBytes } from "node:crypto";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { startS3TestBed, type S3TestBed } from "../helpers/s3TestBed.ts";
import { REGION } from "../helpers/testStack.ts";

const BUCKET = "object-rules";
const MIB = 1024 * 1024;
/** The stand-in's single-copy limit for this file: S3's 5 GiB, scaled down so a test can cross it. */
const COPY_LIMIT = 6 * MIB;
setDefaultTimeout(30_000);
let bed: S3TestBed;
let client: S3Client;

beforeAll(async () => {
  bed = await startS3TestBed(BUCKET, { maxCopySourceBytes: COPY_LIMIT });
  client = bed.client;
});
afterAll(() => bed?.close());

const put = (Key: string, Body: string | Buffer, extra: Record<string, string> = {}) => client.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body, ...extra }));

describe("ranges (RFC 9110 as S3 applies it)", () => {
  const FIFTY = Buffer.from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWX");
  const get = async (Key: string, Range: string) => {
    const got = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key, Range }));
    return { asked: Range, status: got.$metadata.httpStatusCode, contentRange: got.ContentRange, length: got.ContentLength, body: Buffer.from(await got.Body!.transformToByteArray()).toString() };
  };
  const part = (asked: string, first: number, last: number) =>
    ({ asked, status: 206, contentRange: `bytes ${first}-${last}/50`, length: last - first + 1, body: FIFTY.subarray(first, last + 1).toString() });
  const whole = (asked: string, body = FIFTY.toString()) => ({ asked, status: 200, contentRange: undefined, length: body.length, body });
  const invalidRange = (asked: string, size: number) =>
    ({ name: "InvalidRange", message: "The requested range is not satisfiable", $metadata: { httpStatusCode: 416 }, RangeRequested: asked, ActualObjectSize: String(size) });

  beforeAll(async () => {
    await put("ranges/fifty.txt", FIFTY);
    await put("ranges/empty.txt", "");
  });

  test("suffix ranges, single bytes and clamped last bytes are 206 with exactly those bytes", async () => {
    for (const [asked, first, last] of [["bytes=-10", 40, 49], ["bytes=0-0", 0, 0], ["bytes=49-49", 49, 49], ["bytes=45-1000", 45, 49], ["bytes=10-", 10, 49], ["bytes=-100", 0, 49], ["bytes=3-7", 3, 7]] as const) {
      expect(await get("ranges/fifty.txt", asked)).toEqual(part(asked, first, last));
    }
  });

  test("an invalid or multi-range header is ignored: the whole object, 200", async () => {
    for (const asked of ["bytes=10-0", "bytes=0-1,5-6", "bytes=-", "bytes=0--1", "items=0-5", "garbage"]) {
      expect(await get("ranges/fifty.txt", asked)).toEqual(whole(asked));
    }
  });

  test("a range starting at or past the end, bytes=-0, or any start on an empty object is 416 InvalidRange", async () => {
    for (const asked of ["bytes=50-", "bytes=50-60", "bytes=-0"]) {
      await expect(get("ranges/fifty.txt", asked)).rejects.toMatchObject(invalidRange(asked, 50));
    }
    await expect(get("ranges/empty.txt", "bytes=0-")).rejects.toMatchObject(invalidRange("bytes=0-", 0));
    await expect(client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "ranges/fifty.txt", Range: "bytes=60-" }))).rejects.toMatchObject({ $metadata: { httpStatusCode: 416 } });
  });

  test("HeadObject with a range answers its length and Content-Range", async () => {
    const head = await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "ranges/fifty.txt", Range: "bytes=-10" }));
    expect({ status: head.$metadata.httpStatusCode, range: head.ContentRange, length: head.ContentLength }).toEqual({ status: 206, range: "bytes 40-49/50", length: 10 });
  });
});

describe("presigned URLs sign their x-amz-* headers", () => {
  test("a presigned PUT carrying an x-amz-* header it did not sign is 403 AccessDenied, and nothing is stored", async () => {
    const url = await getSignedUrl(client, new PutObjectCommand({ Bucket: BUCKET, Key: "presigned/extra.txt" }), { expiresIn: 60 });
    for (const header of [{ "x-amz-meta-extra": "1" }, { "x-amz-server-side-encryption": "AES256" }] as Record<string, string>[]) {
      const res = await fetch(url, { method: "PUT", body: "smuggled", headers: header });
      const xml = await res.text();
      expect({ status: res.status, code: /<Code>(.*?)<\/Code>/.exec(xml)?.[1], message: /<Message>(.*?)<\/Message>/.exec(xml)?.[1], headers: /<HeadersNotSigned>(.*?)<\/HeadersNotSigned>/.exec(xml)?.[1] })
        .toEqual({ status: 403, code: "AccessDenied", message: "There were headers present in the request which were not signed", headers: Object.keys(header)[0] });
    }
    await expect(client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "presigned/extra.txt" }))).rejects.toMatchObject({ name: "NotFound" });
    // The same header, signed, is fine.
    const signed = await getSignedUrl(client, new PutObjectCommand({ Bucket: BUCKET, Key: "presigned/extra.txt", Metadata: { extra: "1" } }), { expiresIn: 60, unhoistableHeaders: new Set(["x-amz-meta-extra"]) });
    expect((await fetch(signed, { method: "PUT", body: "declared", headers: { "x-amz-meta-extra": "1" } })).status).toBe(200);
  });
});

describe("default encryption (SSE-S3 since 2023-01-05)", () => {
  test("every write and read of an object stored without SSE headers reports AES256", async () => {
    expect((await put("sse/plain.txt", "x")).ServerSideEncryption).toBe("AES256");
    expect((await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "sse/plain.txt" }))).ServerSideEncryption).toBe("AES256");
    const got = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: "sse/plain.txt" }));
    await got.Body!.transformToString();
    expect(got.ServerSideEncryption).toBe("AES256");
    const copy = await client.send(new CopyObjectCommand({ Bucket: BUCKET, Key: "sse/copy.txt", CopySource: `${BUCKET}/sse/plain.txt` }));
    expect(copy.ServerSideEncryption).toBe("AES256");
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: "sse/multipart.txt" }));
    const part = await client.send(new UploadPartCommand({ Bucket: BUCKET, Key: "sse/multipart.txt", UploadId, PartNumber: 1, Body: "x" }));
    expect(part.ServerSideEncryption).toBe("AES256");
    const done = await client.send(new CompleteMultipartUploadCommand({ Bucket: BUCKET, Key: "sse/multipart.txt", UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] } }));
    expect(done.ServerSideEncryption).toBe("AES256");
    expect((await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "sse/multipart.txt" }))).ServerSideEncryption).toBe("AES256");
  });

  test("an in-place copy is refused unless it changes something; an encryption header counts, metadata is kept", async () => {
    await put("sse/in-place.txt", "kept", { ContentType: "text/csv" });
    await expect(client.send(new CopyObjectCommand({ Bucket: BUCKET, Key: "sse/in-place.txt", CopySource: `${BUCKET}/sse/in-place.txt` }))).rejects.toMatchObject({
      name: "InvalidRequest",
      message: "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
    });
    const copied = await client.send(new CopyObjectCommand({ Bucket: BUCKET, Key: "sse/in-place.txt", CopySource: `${BUCKET}/sse/in-place.txt`, ServerSideEncryption: "AES256" }));
    expect(copied.ServerSideEncryption).toBe("AES256");
    const head = await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "sse/in-place.txt" }));
    expect({ type: head.ContentType, sse: head.ServerSideEncryption }).toEqual({ type: "text/csv", sse: "AES256" });
    expect(await (await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: "sse/in-place.txt" }))).Body!.transformToString()).toBe("kept");
    // An SSE-KMS object copied onto itself without SSE headers changes: it becomes SSE-S3 (moto test_copy_object_in_place_with_encryption).
    await put("sse/kms-in-place.txt", "k", { ServerSideEncryption: "aws:kms" });
    const reencrypted = await client.send(new CopyObjectCommand({ Bucket: BUCKET, Key: "sse/kms-in-place.txt", CopySource: `${BUCKET}/sse/kms-in-place.txt` }));
    expect({ sse: reencrypted.ServerSideEncryption, key: reencrypted.SSEKMSKeyId }).toEqual({ sse: "AES256", key: undefined });
  });
});

describe("copies over the single-copy limit (5 GiB on S3, 6 MiB here)", () => {
  const SOURCE = randomBytes(13 * MIB);
  const tooLarge = { name: "InvalidRequest", message: `The specified copy source is larger than the maximum allowable size for a copy source: ${COPY_LIMIT}`, $metadata: { httpStatusCode: 400 } };
  beforeAll(async () => {
    await put("big/source.bin", SOURCE);
  });

  test("one CopyObject of a source over the limit is InvalidRequest; one at the limit copies", async () => {
    await expect(client.send(new CopyObjectCommand({ Bucket: BUCKET, Key: "big/copy.bin", CopySource: `${BUCKET}/big/source.bin` }))).rejects.toMatchObject(tooLarge);
    await put("big/at-limit.bin", SOURCE.subarray(0, COPY_LIMIT));
    await client.send(new CopyObjectCommand({ Bucket: BUCKET, Key: "big/at-limit-copy.bin", CopySource: `${BUCKET}/big/at-limit.bin` }));
  });

  test("UploadPartCopy copies byte ranges into parts; the object comes out byte-exact", async () => {
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: "big/parts.bin" }));
    const ranges = [[0, 6 * MIB - 1], [6 * MIB, 12 * MIB - 1], [12 * MIB, 13 * MIB - 1]];
    const parts = [];
    for (const [i, [first, last]] of ranges.entries()) {
      const copied = await client.send(new UploadPartCopyCommand({ Bucket: BUCKET, Key: "big/parts.bin", UploadId, PartNumber: i + 1, CopySource: `${BUCKET}/big/source.bin`, CopySourceRange: `bytes=${first}-${last}` }));
      expect(copied.CopyPartResult?.ETag).toMatch(/^"[0-9a-f]{32}"$/);
      parts.push({ PartNumber: i + 1, ETag: copied.CopyPartResult!.ETag });
    }
    await client.send(new CompleteMultipartUploadCommand({ Bucket: BUCKET, Key: "big/parts.bin", UploadId, MultipartUpload: { Parts: parts } }));
    const got = Buffer.from(await (await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: "big/parts.bin" }))).Body!.transformToByteArray());
    expect(got.equals(SOURCE)).toBe(true);
  });

  test("a part copy over the limit, a malformed or out-of-range source range, a missing source, or no s3:GetObject on it are refused", async () => {
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: "big/refused.bin" }));
    const partCopy = (CopySourceRange: string | undefined, c = client, CopySource = `${BUCKET}/big/source.bin`) =>
      c.send(new UploadPartCopyCommand({ Bucket: BUCKET, Key: "big/refused.bin", UploadId, PartNumber: 1, CopySource, CopySourceRange }));
    await expect(partCopy(undefined)).rejects.toMatchObject(tooLarge);
    await expect(partCopy("bytes=0-")).rejects.toMatchObject({ name: "InvalidArgument" });
    await expect(partCopy(`bytes=0-${13 * MIB}`)).rejects.toMatchObject({ name: "InvalidRequest", message: `Range specified is not valid for source object of size: ${13 * MIB}` });
    await expect(partCopy("bytes=0-9", client, `${BUCKET}/big/nope.bin`)).rejects.toMatchObject({ name: "NoSuchKey" });
    const putOnly = await bed.clientFor(JSON.stringify({ Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "s3:PutObject", Resource: "*" }] }));
    await expect(partCopy("bytes=0-9", putOnly)).rejects.toMatchObject({ name: "AccessDenied", message: expect.stringContaining(`s3:GetObject on resource: "arn:aws:s3:::${BUCKET}/big/source.bin"`) });
    await partCopy("bytes=0-9");
  });
});

describe("keys: any UTF-8 up to 1024 bytes", () => {
  const LONG_SEGMENT = `${"s".repeat(300)}/end`;
  const AT_LIMIT = `k/${"é".repeat(511)}`;
  const odd = [LONG_SEGMENT, "a//b", "dir/./x", "dir/../x", "folder/", "//lead"];

  test("a segment over 255 bytes, empty, '.' and '..' segments and a 1024-byte key put, get, head, list and delete", async () => {
    expect(Buffer.byteLength(AT_LIMIT)).toBe(1024);
    for (const Key of odd) await put(`keys/${Key}`, `body of ${Key}`);
    await put(AT_LIMIT, "x");
    for (const Key of odd) {
      expect(await (await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: `keys/${Key}` }))).Body!.transformToString()).toBe(`body of ${Key}`);
      expect((await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `keys/${Key}` }))).ContentLength).toBe(Buffer.byteLength(`body of ${Key}`));
    }
    expect((await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: AT_LIMIT }))).ContentLength).toBe(1);
    const listed = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: "keys/" }));
    const expected = odd.map((k) => `keys/${k}`).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    expect(listed.Contents?.map((c) => c.Key)).toEqual(expected);
    await client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: "keys/a//b" }));
    await client.send(new DeleteObjectsCommand({ Bucket: BUCKET, Delete: { Objects: [{ Key: `keys/${LONG_SEGMENT}` }, { Key: "keys/dir/../x" }] } }));
    const after = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: "keys/" }));
    expect(after.Contents?.map((c) => c.Key)).toEqual(expected.filter((k) => !["keys/a//b", `keys/${LONG_SEGMENT}`, "keys/dir/../x"].includes(k)));
    await expect(client.send(new GetObjectCommand({ Bucket: BUCKET, Key: "keys/a//b" }))).rejects.toMatchObject({ name: "NoSuchKey", Key: "keys/a//b" });
  });

  test("a key over 1024 bytes is 400 KeyTooLongError", async () => {
    const tooLong = `${AT_LIMIT}x`;
    await expect(put(tooLong, "x")).rejects.toMatchObject({ name: "KeyTooLongError", message: "Your key is too long", $metadata: { httpStatusCode: 400 }, Size: "1025", MaxSizeAllowed: "1024" });
    await expect(client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: tooLong }))).rejects.toMatchObject({ name: "KeyTooLongError" });
  });

  test("listings are in UTF-8 byte order, with prefixes, delimiters and continuations as S3 pages them", async () => {
    // U+FF5E sorts before U+1F600 in UTF-8 (EF.. < F0..), after it in UTF-16 (FF5E > D83D).
    const keys = ["order/a", "order/a/b", "order/a//c", "order/ab", "order/b/x", "order/b/y", "order/c", "order/\u{FF5E}", "order/\u{1F600}", "order/\u00e9/z"];
    for (const Key of keys) await put(Key, "o");
    const byBytes = [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    expect((await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: "order/" }))).Contents?.map((c) => c.Key)).toEqual(byBytes);
    const pages: string[][] = [];
    let ContinuationToken: string | undefined;
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: "order/", Delimiter: "/", MaxKeys: 2, ContinuationToken }));
      expect(page.KeyCount).toBe((page.Contents?.length ?? 0) + (page.CommonPrefixes?.length ?? 0));
      pages.push([...(page.Contents ?? []).map((c) => c.Key!), ...(page.CommonPrefixes ?? []).map((p) => `prefix ${p.Prefix}`)]);
      ContinuationToken = page.NextContinuationToken;
    } while (ContinuationToken);
    expect(pages).toEqual([
      ["order/a", "prefix order/a/"], ["order/ab", "prefix order/b/"], ["order/c", "prefix order/\u00e9/"], ["order/\u{FF5E}", "order/\u{1F600}"],
    ]);
    const nested = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: "order/a/", Delimiter: "/" }));
    expect({ keys: nested.Contents?.map((c) => c.Key), prefixes: nested.CommonPrefixes?.map((p) => p.Prefix) }).toEqual({ keys: ["order/a/b"], prefixes: ["order/a//"] });
    const v1 = await client.send(new ListObjectsCommand({ Bucket: BUCKET, Prefix: "order/", Delimiter: "/", MaxKeys: 3, Marker: "order/a" }));
    expect({ keys: v1.Contents?.map((c) => c.Key), prefixes: v1.CommonPrefixes?.map((p) => p.Prefix), truncated: v1.IsTruncated, next: v1.NextMarker })
      .toEqual({ keys: ["order/ab"], prefixes: ["order/a/", "order/b/"], truncated: true, next: "order/b/" });
    const startAfter = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: "order/", StartAfter: "order/c" }));
    expect(startAfter.Contents?.map((c) => c.Key)).toEqual(byBytes.slice(byBytes.indexOf("order/c") + 1));
  });
});
