// The S3 stand-in (local/s3/ in front of s3rver) through the real AWS SDK, with real
// STS credentials minted from a Windmill ID token: what works, and every way a request is
// refused, with the error a user would see.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { request } from "node:http";
import { Readable } from "node:stream";
import {
  AbortMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetBucketLocationCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListObjectsV2Command,
  paginateListObjectsV2,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { Hash } from "@smithy/hash-node";
import { SignatureV4 } from "@smithy/signature-v4";
import { assumeRoleWithWindmillToken, type SessionCredentials } from "../../f/aws_oidc/lib/assumeRole.ts";
import { startS3, type S3StandIn } from "../../local/s3/server.ts";
import { ACCOUNT_ID, DEMO_ROLE_ARN, REGION, startStack, trustPolicy, type Stack } from "../helpers/testStack.ts";

const BUCKET = "standin-bucket";
// Bun kills every process a test file started when any test times out, s3rver included,
// and every later test would then fail on a refused connection: leave slow machines room.
setDefaultTimeout(30_000);
const quiet = () => {};
let stack: Stack;
let s3: S3StandIn;
let creds: SessionCredentials;
let client: S3Client;

async function mint(roleArn = DEMO_ROLE_ARN, sessionPolicy?: string): Promise<SessionCredentials> {
  const { credentials } = await assumeRoleWithWindmillToken(
    { roleArn, region: REGION, audience: "sts.amazonaws.com", sessionName: "s3-test", durationSeconds: 3600, sessionPolicy },
    quiet,
  );
  return credentials;
}

function clientFor(c: Pick<SessionCredentials, "accessKeyId" | "secretAccessKey"> & { sessionToken?: string }, extra: Partial<S3ClientConfig> = {}): S3Client {
  return new S3Client({
    region: REGION,
    endpoint: s3.url,
    forcePathStyle: true,
    credentials: { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey, sessionToken: c.sessionToken },
    ...extra,
  });
}

/** Refusals are not worth retrying; one attempt keeps these tests quick. */
const once = { maxAttempts: 1 };

const text = async (key: string, c = client) => (await c.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }))).Body!.transformToString();
const put = (key: string, body: string | Buffer, c = client) => c.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));
const codeOf = (xml: string) => /<Code>([^<]*)<\/Code>/.exec(xml)?.[1];
const messageOf = (xml: string) => /<Message>([^<]*)<\/Message>/.exec(xml)?.[1];
const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");

beforeAll(async () => {
  stack = await startStack();
  s3 = await startS3({ stsUrl: stack.sts.url });
  stack.actAsJob("f/aws_oidc/test");
  creds = await mint();
  client = clientFor(creds);
  await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
});
afterAll(async () => {
  await s3?.close();
  await stack?.close();
});

describe("objects through the SDK", () => {
  test("bucket-level calls: ListBuckets, HeadBucket, GetBucketLocation", async () => {
    const { Buckets } = await client.send(new ListBucketsCommand({}));
    expect(Buckets?.map((b) => b.Name)).toContain(BUCKET);
    expect((await client.send(new HeadBucketCommand({ Bucket: BUCKET }))).$metadata.httpStatusCode).toBe(200);
    await expect(client.send(new GetBucketLocationCommand({ Bucket: BUCKET }))).resolves.toMatchObject({ $metadata: { httpStatusCode: 200 } });
  });

  // "2024" is here because s3rver's XML parser reads it as a number (see DeleteObjects).
  const awkwardKeys = ["plain.txt", "with space/and+plus.txt", "ünïcødé/日本語/ключ.txt", "deep/a/b/c/d/e/f/g/h/i/j/k.txt", "odd !'()*~&=;$@,.txt", "2024"];
  for (const key of awkwardKeys) {
    test(`put, get, head, copy and delete ${JSON.stringify(key)}`, async () => {
      await put(key, `hello ${key}`);
      expect(await text(key)).toBe(`hello ${key}`);
      const head = await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
      expect(head.ContentLength).toBe(Buffer.byteLength(`hello ${key}`));

      const copy = `copies/${key}`;
      await client.send(new CopyObjectCommand({ Bucket: BUCKET, Key: copy, CopySource: `${BUCKET}/${encodeURIComponent(key)}` }));
      expect(await text(copy)).toBe(`hello ${key}`);

      await client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: key }));
      await client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: copy }));
      await expect(client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }))).rejects.toMatchObject({ name: "NotFound", $metadata: { httpStatusCode: 404 } });
    });
  }

  test("ListObjectsV2 pages through continuation tokens in key order", async () => {
    const keys = Array.from({ length: 25 }, (_, i) => `pages/${String(i).padStart(3, "0")}.txt`);
    await Promise.all(keys.map((k) => put(k, k)));
    const pages: string[][] = [];
    for await (const page of paginateListObjectsV2({ client, pageSize: 10 }, { Bucket: BUCKET, Prefix: "pages/" })) {
      pages.push((page.Contents ?? []).map((o) => o.Key!));
    }
    expect(pages.map((p) => p.length)).toEqual([10, 10, 5]);
    expect(pages.flat()).toEqual(keys);

    const folders = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: "pag", Delimiter: "/" }));
    expect(folders.CommonPrefixes).toEqual([{ Prefix: "pages/" }]);
  });

  test("a range GET returns just those bytes", async () => {
    await put("range.txt", "0123456789");
    const got = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: "range.txt", Range: "bytes=2-5" }));
    expect(got.ContentRange).toBe("bytes 2-5/10");
    expect(await got.Body!.transformToString()).toBe("2345");
  });

  test("a 21 MiB multipart upload round-trips byte for byte", async () => {
    const data = randomBytes(21 * 1024 * 1024);
    const before = s3.stats().calls.UploadPart ?? 0;
    await new Upload({ client, params: { Bucket: BUCKET, Key: "big/blob.bin", Body: data }, partSize: 5 * 1024 * 1024, queueSize: 4 }).done();
    expect((s3.stats().calls.UploadPart ?? 0) - before).toBe(5);
    const got = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: "big/blob.bin" }));
    expect(got.ContentLength).toBe(data.length);
    expect(sha256(Buffer.from(await got.Body!.transformToByteArray()))).toBe(sha256(data));
  });

  test("an aborted multipart upload is gone: its parts are refused with NoSuchUpload", async () => {
    const key = "big/aborted.bin";
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key }));
    await client.send(new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId, PartNumber: 1, Body: "part one" }));
    await client.send(new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: key, UploadId }));
    await expect(client.send(new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId, PartNumber: 2, Body: "late" }))).rejects.toMatchObject({ name: "NoSuchUpload" });
  });

  test("a streamed body (aws-chunked with a CRC32 trailer) is stored decoded", async () => {
    const parts = [randomBytes(100_000), randomBytes(70_001)];
    const length = parts[0]!.length + parts[1]!.length;
    await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "streamed.bin", Body: Readable.from(parts), ContentLength: length }));
    const got = Buffer.from(await (await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: "streamed.bin" }))).Body!.transformToByteArray());
    expect(got.length).toBe(length);
    expect(sha256(got)).toBe(sha256(Buffer.concat(parts)));
  });

  test("DeleteObjects reports keys the session may not delete as AccessDenied inside a 200", async () => {
    const policy = JSON.stringify({
      Version: "2012-10-17",
      Statement: [
        { Effect: "Allow", Action: "s3:*", Resource: "*" },
        { Effect: "Deny", Action: "s3:DeleteObject", Resource: `arn:aws:s3:::${BUCKET}/keep/*` },
      ],
    });
    const limited = clientFor(await mint(DEMO_ROLE_ARN, policy), once);
    await Promise.all(["scratch/a.txt", "keep/b.txt", "1999"].map((k) => put(k, k)));
    const result = await limited.send(new DeleteObjectsCommand({
      Bucket: BUCKET,
      Delete: { Objects: [{ Key: "scratch/a.txt" }, { Key: "keep/b.txt" }, { Key: "1999" }] },
    }));
    expect(result.$metadata.httpStatusCode).toBe(200);
    expect(result.Deleted?.map((d) => d.Key).sort()).toEqual(["1999", "scratch/a.txt"]);
    expect(result.Errors).toEqual([{ Key: "keep/b.txt", Code: "AccessDenied", Message: "Access Denied" }]);
    expect(await text("keep/b.txt")).toBe("keep/b.txt");
    await expect(client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "1999" }))).rejects.toMatchObject({ name: "NotFound" });
  });
});

describe("presigned URLs", () => {
  test("a presigned GET works with plain fetch, response overrides included", async () => {
    await put("shared/report.csv", "a,b\n1,2\n");
    const url = await getSignedUrl(client, new GetObjectCommand({ Bucket: BUCKET, Key: "shared/report.csv", ResponseContentDisposition: 'attachment; filename="r.csv"' }), { expiresIn: 60 });
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-disposition")).toBe('attachment; filename="r.csv"');
    expect(await res.text()).toBe("a,b\n1,2\n");
  });

  test("a presigned PUT uploads with plain fetch", async () => {
    const url = await getSignedUrl(client, new PutObjectCommand({ Bucket: BUCKET, Key: "shared/upload.txt" }), { expiresIn: 60 });
    expect((await fetch(url, { method: "PUT", body: "from a browser" })).status).toBe(200);
    expect(await text("shared/upload.txt")).toBe("from a browser");
  });

  test("a tampered URL is SignatureDoesNotMatch", async () => {
    await put("shared/secret.txt", "no");
    const url = await getSignedUrl(client, new GetObjectCommand({ Bucket: BUCKET, Key: "shared/report.csv" }), { expiresIn: 60 });
    for (const tampered of [url.replace("report.csv", "secret.txt"), url.replace("X-Amz-Expires=60", "X-Amz-Expires=600")]) {
      const res = await fetch(tampered);
      expect(res.status).toBe(403);
      expect(codeOf(await res.text())).toBe("SignatureDoesNotMatch");
    }
  });

  test("an expired URL is AccessDenied: Request has expired", async () => {
    const url = await getSignedUrl(client, new GetObjectCommand({ Bucket: BUCKET, Key: "shared/report.csv" }), { expiresIn: 1 });
    await Bun.sleep(2000);
    const res = await fetch(url);
    const body = await res.text();
    expect(res.status).toBe(403);
    expect([codeOf(body), messageOf(body)]).toEqual(["AccessDenied", "Request has expired"]);
  });
});

/** Signs a request by hand with the session's secret, for bodies the SDK would never send. */
async function signedFetch(path: string, init: { method: string; body: string; headers: Record<string, string> }): Promise<Response> {
  const url = new URL(path, s3.url);
  const signer = new SignatureV4({ service: "s3", region: REGION, credentials: creds, sha256: Hash.bind(null, "sha256"), uriEscapePath: false });
  const signed = await signer.sign({ method: init.method, protocol: "http:", hostname: url.hostname, port: Number(url.port), path: url.pathname, query: {}, headers: { host: url.host, ...init.headers } });
  return fetch(url, { method: init.method, headers: signed.headers, body: init.body });
}

/** An aws-chunked body whose chunks are signed in a chain seeded by the request signature. */
async function signedChunkUpload(key: string, chunks: Buffer[], tamper = false): Promise<Response> {
  const url = new URL(`/${BUCKET}/${key}`, s3.url);
  const signer = new SignatureV4({ service: "s3", region: REGION, credentials: creds, sha256: Hash.bind(null, "sha256"), uriEscapePath: false });
  const signingDate = new Date();
  const amzDate = signingDate.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
  const lineLength = (line: string) => line.length + 2;
  const decoded = chunks.reduce((n, c) => n + c.length, 0);
  // Chunk sizes are in hex; signatures are 64 hex chars, so the encoded length is known up front.
  const frame = (size: number) => `${size.toString(16)};chunk-signature=${"0".repeat(64)}`;
  const encodedLength = [...chunks.map((c) => lineLength(frame(c.length)) + c.length + 2), lineLength(frame(0)) + 2].reduce((a, b) => a + b, 0);
  const headers: Record<string, string> = {
    host: url.host,
    "content-encoding": "aws-chunked",
    "content-length": String(encodedLength),
    "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    "x-amz-decoded-content-length": String(decoded),
  };
  const signed = await signer.sign({ method: "PUT", protocol: "http:", hostname: url.hostname, port: Number(url.port), path: url.pathname, query: {}, headers }, { signingDate });
  let previous = /Signature=([0-9a-f]{64})/.exec(String(signed.headers.authorization))![1]!;
  const scope = `${amzDate.slice(0, 8)}/${REGION}/s3/aws4_request`;
  const body: Buffer[] = [];
  for (const chunk of [...chunks, Buffer.alloc(0)]) {
    const stringToSign = ["AWS4-HMAC-SHA256-PAYLOAD", amzDate, scope, previous, sha256(Buffer.alloc(0)), sha256(chunk)].join("\n");
    previous = await signer.sign(stringToSign, { signingDate });
    const data = tamper && chunk.length ? Buffer.from(chunk.map((b) => b ^ 1)) : chunk;
    body.push(Buffer.from(`${chunk.length.toString(16)};chunk-signature=${previous}\r\n`), data, Buffer.from("\r\n"));
  }
  return fetch(url, { method: "PUT", headers: signed.headers, body: Buffer.concat(body) });
}

describe("bodies are checked before s3rver stores them", () => {
  test("signed aws-chunked chunks are verified one by one", async () => {
    const chunks = [randomBytes(65_536), randomBytes(1000)];
    const ok = await signedChunkUpload("chunks/good.bin", chunks);
    expect(ok.status).toBe(200);
    const got = Buffer.from(await (await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: "chunks/good.bin" }))).Body!.transformToByteArray());
    expect(sha256(got)).toBe(sha256(Buffer.concat(chunks)));

    const bad = await signedChunkUpload("chunks/bad.bin", chunks, true);
    expect([bad.status, codeOf(await bad.text())]).toEqual([403, "SignatureDoesNotMatch"]);
    await expect(client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "chunks/bad.bin" }))).rejects.toMatchObject({ name: "NotFound" });
  });

  test("a body that does not match x-amz-content-sha256 is refused and not stored", async () => {
    await put("hashed.txt", "original");
    const res = await signedFetch(`/${BUCKET}/hashed.txt`, {
      method: "PUT",
      body: "swapped!",
      headers: { "x-amz-content-sha256": sha256(Buffer.from("intended")), "content-length": "8" },
    });
    expect([res.status, codeOf(await res.text())]).toEqual([400, "XAmzContentSHA256Mismatch"]);
    expect(await text("hashed.txt")).toBe("original");
  });

  test("an upload cut short by the client leaves the previous object untouched", async () => {
    await put("cut/short.txt", "previous");
    const url = new URL(await getSignedUrl(client, new PutObjectCommand({ Bucket: BUCKET, Key: "cut/short.txt" }), { expiresIn: 60 }));
    await new Promise<void>((resolve) => {
      const upload = request({ host: url.hostname, port: url.port, method: "PUT", path: `${url.pathname}${url.search}`, headers: { "content-length": 2_000_000 } });
      upload.on("error", () => resolve());
      upload.write(Buffer.alloc(1_000_000, 1), () => upload.destroy());
    });
    await Bun.sleep(200);
    expect(await text("cut/short.txt")).toBe("previous");
  });

  test("a wrong CRC32 is BadDigest", async () => {
    const wrong = client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "crc.txt", Body: "data", ChecksumCRC32: "AAAAAA==" }));
    await expect(wrong).rejects.toMatchObject({ name: "BadDigest", message: "The CRC32 you specified did not match the calculated checksum." });
  });
});

describe("refusals", () => {
  test("an anonymous request is AccessDenied", async () => {
    const res = await fetch(`${s3.url}/${BUCKET}/plain.txt`);
    expect([res.status, codeOf(await res.text())]).toEqual([403, "AccessDenied"]);
  });

  test("a wrong secret is SignatureDoesNotMatch", async () => {
    // Another last character, whatever it was: appending "x" was no change for a secret ending in "x".
    const wrong = clientFor({ ...creds, secretAccessKey: `${creds.secretAccessKey.slice(0, -1)}${creds.secretAccessKey.endsWith("A") ? "B" : "A"}` }, once);
    await expect(wrong.send(new ListObjectsV2Command({ Bucket: BUCKET }))).rejects.toMatchObject({
      name: "SignatureDoesNotMatch",
      message: expect.stringContaining("does not match the signature you provided"),
      $metadata: { httpStatusCode: 403 },
    });
  });

  test("an unknown access key is InvalidAccessKeyId", async () => {
    const unknown = clientFor({ ...creds, accessKeyId: "ASIAUNKNOWNKEY000000" }, once);
    await expect(unknown.send(new ListObjectsV2Command({ Bucket: BUCKET }))).rejects.toMatchObject({
      name: "InvalidAccessKeyId",
      message: "The AWS Access Key Id you provided does not exist in our records.",
    });
  });

  test("a missing or wrong session token is InvalidToken", async () => {
    for (const sessionToken of [undefined, `${creds.sessionToken}x`]) {
      const c = clientFor({ ...creds, sessionToken }, once);
      await expect(c.send(new GetObjectCommand({ Bucket: BUCKET, Key: "range.txt" }))).rejects.toMatchObject({ name: "InvalidToken", $metadata: { httpStatusCode: 400 } });
    }
  });

  test("a session token that differs only in its last byte is InvalidToken, header-signed and presigned", async () => {
    await put("token.txt", "only with the session's own token");
    const last = creds.sessionToken.at(-1);
    const sessionToken = `${creds.sessionToken.slice(0, -1)}${last === "A" ? "B" : "A"}`;
    const c = clientFor({ ...creds, sessionToken }, once);
    // Signed with the altered token: only comparing it with the session's token refuses it.
    await expect(c.send(new GetObjectCommand({ Bucket: BUCKET, Key: "token.txt" }))).rejects.toMatchObject({ name: "InvalidToken", $metadata: { httpStatusCode: 400 } });
    const url = await getSignedUrl(c, new GetObjectCommand({ Bucket: BUCKET, Key: "token.txt" }), { expiresIn: 60 });
    const res = await fetch(url);
    expect([res.status, codeOf(await res.text())]).toEqual([400, "InvalidToken"]);
  });

  test("a request signed for another region is AuthorizationHeaderMalformed", async () => {
    const elsewhere = clientFor(creds, { ...once, region: "eu-west-1" });
    await expect(elsewhere.send(new ListObjectsV2Command({ Bucket: BUCKET }))).rejects.toMatchObject({
      name: "AuthorizationHeaderMalformed",
      message: "The authorization header is malformed; the region 'eu-west-1' is wrong; expecting 'us-east-1'",
    });
  });

  test("an expired session is ExpiredToken, presigned URLs included", async () => {
    const short = await mint();
    const c = clientFor(short, once);
    await c.send(new PutObjectCommand({ Bucket: BUCKET, Key: "expiring.txt", Body: "x" }));
    const url = await getSignedUrl(c, new GetObjectCommand({ Bucket: BUCKET, Key: "expiring.txt" }), { expiresIn: 3600 });
    expect((await fetch(`${stack.sts.url}/_local/sessions/${short.accessKeyId}/expire`, { method: "POST" })).status).toBe(200);
    await expect(c.send(new GetObjectCommand({ Bucket: BUCKET, Key: "expiring.txt" }))).rejects.toMatchObject({ name: "ExpiredToken", message: "The provided token has expired." });
    const res = await fetch(url);
    expect([res.status, codeOf(await res.text())]).toEqual([400, "ExpiredToken"]);
  });

  test("a role limited to a prefix is AccessDenied outside it", async () => {
    const roleArn = await stack.addRole({
      roleName: "s3-prefix-reader",
      maxSessionDuration: 3600,
      assumeRolePolicyDocument: trustPolicy(stack.provider, ACCOUNT_ID, `*::*::*::${stack.windmill.workspace}`),
      permissionPolicies: [{
        Version: "2012-10-17",
        Statement: [
          { Effect: "Allow", Action: "s3:GetObject", Resource: `arn:aws:s3:::${BUCKET}/allowed/*` },
          { Effect: "Allow", Action: "s3:ListBucket", Resource: `arn:aws:s3:::${BUCKET}`, Condition: { StringLike: { "s3:prefix": "allowed/*" } } },
        ],
      }],
    });
    await Promise.all([put("allowed/ok.txt", "ok"), put("private/no.txt", "no")]);
    const reader = clientFor(await mint(roleArn), once);
    expect(await text("allowed/ok.txt", reader)).toBe("ok");
    expect((await reader.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: "allowed/" }))).KeyCount).toBe(1);

    const denied = [
      () => reader.send(new GetObjectCommand({ Bucket: BUCKET, Key: "private/no.txt" })),
      () => reader.send(new PutObjectCommand({ Bucket: BUCKET, Key: "allowed/new.txt", Body: "x" })),
      () => reader.send(new ListObjectsV2Command({ Bucket: BUCKET })),
      () => reader.send(new CopyObjectCommand({ Bucket: BUCKET, Key: "allowed/copy.txt", CopySource: `${BUCKET}/private/no.txt` })),
    ];
    for (const attempt of denied) await expect(attempt()).rejects.toMatchObject({ name: "AccessDenied", $metadata: { httpStatusCode: 403 } });
    await expect(reader.send(new GetObjectCommand({ Bucket: BUCKET, Key: "private/no.txt" }))).rejects.toMatchObject({
      message: expect.stringMatching(/^User: arn:aws:sts::123456789012:assumed-role\/s3-prefix-reader\/s3-test is not authorized to perform: s3:GetObject on resource: "arn:aws:s3:::standin-bucket\/private\/no.txt"/),
    });
  });
});

describe("aws:SourceIp", () => {
  test("a session policy on aws:SourceIp sees the caller's address, which the gate reports (loopback)", async () => {
    const onlyFrom = (cidrs: string[]) => JSON.stringify({
      Version: "2012-10-17",
      Statement: [{ Effect: "Allow", Action: "s3:*", Resource: "*", Condition: { IpAddress: { "aws:SourceIp": cidrs } } }],
    });
    await put("source-ip.txt", "here");
    const local = clientFor(await mint(DEMO_ROLE_ARN, onlyFrom(["127.0.0.0/8", "::1/128"])), once);
    expect(await text("source-ip.txt", local)).toBe("here");
    const office = clientFor(await mint(DEMO_ROLE_ARN, onlyFrom(["203.0.113.0/24"])), once);
    await expect(text("source-ip.txt", office)).rejects.toMatchObject({ name: "AccessDenied", $metadata: { httpStatusCode: 403 } });
  });
});

describe("a missing key", () => {
  // S3 API reference, GetObject / HeadObject "Permissions": 404 only with s3:ListBucket.
  test("is 404 NoSuchKey with s3:ListBucket on the bucket, 403 AccessDenied without it", async () => {
    const roleArn = await stack.addRole({
      roleName: "s3-get-only",
      maxSessionDuration: 3600,
      assumeRolePolicyDocument: trustPolicy(stack.provider, ACCOUNT_ID, `*::*::*::${stack.windmill.workspace}`),
      permissionPolicies: [{ Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "s3:GetObject", Resource: `arn:aws:s3:::${BUCKET}/*` }] }],
    });
    await put("present.txt", "here");
    const getOnly = clientFor(await mint(roleArn), once);
    expect(await text("present.txt", getOnly)).toBe("here");
    await expect(getOnly.send(new GetObjectCommand({ Bucket: BUCKET, Key: "absent.txt" }))).rejects.toMatchObject({ name: "AccessDenied", $metadata: { httpStatusCode: 403 } });
    await expect(getOnly.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "absent.txt" }))).rejects.toMatchObject({ $metadata: { httpStatusCode: 403 } });
    await expect(client.send(new GetObjectCommand({ Bucket: BUCKET, Key: "absent.txt" }))).rejects.toMatchObject({ name: "NoSuchKey", $metadata: { httpStatusCode: 404 } });
    await expect(client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "absent.txt" }))).rejects.toMatchObject({ $metadata: { httpStatusCode: 404 } });
  });
});

describe("faults", () => {
  test("500 and 503 answers are retried by the SDK until it succeeds", async () => {
    const errorsBefore = s3.stats().errors;
    Object.assign(s3.faults, { status: 503, count: 2 });
    await put("faults/slow.txt", "eventually");
    await fetch(`${s3.url}/_local/faults`, { method: "POST", body: JSON.stringify({ status: 500, count: 1 }) });
    expect(await text("faults/slow.txt")).toBe("eventually");
    const errors = s3.stats().errors;
    expect((errors.SlowDown ?? 0) - (errorsBefore.SlowDown ?? 0)).toBe(2);
    expect((errors.InternalError ?? 0) - (errorsBefore.InternalError ?? 0)).toBe(1);
  });

  test("a dropped connection is retried by the SDK; a plain fetch sees it fail", async () => {
    const putsBefore = s3.stats().calls.PutObject ?? 0;
    s3.faults.dropConnections = 1;
    await put("faults/dropped.txt", "after a retry");
    expect(s3.faults.dropConnections).toBe(0);
    expect((s3.stats().calls.PutObject ?? 0) - putsBefore).toBe(2);

    const url = await getSignedUrl(client, new GetObjectCommand({ Bucket: BUCKET, Key: "faults/dropped.txt" }), { expiresIn: 60 });
    await fetch(`${s3.url}/_local/faults`, { method: "POST", body: JSON.stringify({ dropConnections: 1 }) });
    await expect(fetch(url).then((r) => r.text())).rejects.toThrow();
    expect(await (await fetch(url)).text()).toBe("after a retry");
  });

  test("DELETE /_local/faults clears them, and /_local/stats counts by operation", async () => {
    await fetch(`${s3.url}/_local/faults`, { method: "POST", body: JSON.stringify({ status: 500, count: 5, dropConnections: 5 }) });
    expect((await fetch(`${s3.url}/_local/faults`, { method: "DELETE" })).status).toBe(200);
    expect(s3.faults).toEqual({ status: 500, count: 0, dropConnections: 0 });
    const stats = (await (await fetch(`${s3.url}/_local/stats`)).json()) as { calls: Record<string, number> };
    expect(stats.calls).toMatchObject({ CreateBucket: 1, PutObject: expect.any(Number), CompleteMultipartUpload: 1, DeleteObjects: 1 });
  });
});
