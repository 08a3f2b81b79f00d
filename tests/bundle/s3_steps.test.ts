// The S3 scripts as a user runs them (Windmill jobs, credentials as `$res:`), against
// the S3 stand-in that verifies every SigV4 signature and evaluates the role's policy.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { assumeRoleAndSave } from "../../f/aws_oidc/lib/assumeRoleAndSave.ts";
import { s3Client, uploadObject } from "../../f/aws_oidc/lib/s3.ts";
import { auditLeaksThenClose } from "../helpers/leaks.ts";
import { DEMO_KMS_KEY_ARN, DEMO_ROLE_ARN, REGION, startStack, type Stack } from "../helpers/testStack.ts";

const CREDS = "f/aws_oidc/s3_test_creds";
const REF = `$res:${CREDS}`;
const BUCKET = "demo-bucket";
let stack: Stack;
let s3: S3Client;
const quiet = () => {};

beforeAll(async () => {
  stack = await startStack({ s3: true });
  stack.actAsJob("f/aws_oidc/s3_test");
  await assumeRoleAndSave({ roleArn: DEMO_ROLE_ARN, region: REGION, saveTo: CREDS }, quiet);
  s3 = (await s3Client(CREDS)).s3;
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
});
afterAll(async () => {
  await auditLeaksThenClose(stack);
});

const run = (script: string, args: Record<string, unknown>) => stack.runScript(`f/aws_oidc/${script}`, { credentials: REF, bucket: BUCKET, ...args });

describe("put, get, head, copy", () => {
  const awkwardKeys = ["plain.txt", "with space/and+plus.txt", "ünïcødé/日本語/ключ.txt", "deep/a/b/c/d/e/f/g/h/i/j/k.txt"];
  for (const key of awkwardKeys) {
    test(`round trip of ${key}`, async () => {
      const put = await run("s3_put_object", { key, content: `hello ${key}` });
      expect(put.status).toBe(200);
      expect(put.result).toMatchObject({ bucket: BUCKET, key, size: Buffer.byteLength(`hello ${key}`), multipart: false });
      const got = await run("s3_get_object", { key });
      expect(got.result).toMatchObject({ key, body: `hello ${key}`, content_type: "text/plain; charset=utf-8" });
    });
  }

  test("JSON and base64 bodies", async () => {
    await run("s3_put_object", { key: "doc.json", content: JSON.stringify({ a: [1, 2], b: "é" }), encoding: "json" });
    expect((await run("s3_get_object", { key: "doc.json", as: "json" })).result.body).toEqual({ a: [1, 2], b: "é" });
    const bytes = randomBytes(300);
    await run("s3_put_object", { key: "blob.bin", content: bytes.toString("base64"), encoding: "base64" });
    expect((await run("s3_get_object", { key: "blob.bin", as: "base64" })).result.body).toBe(bytes.toString("base64"));
  });

  test("a byte range", async () => {
    await run("s3_put_object", { key: "range.txt", content: "0123456789" });
    const { result } = await run("s3_get_object", { key: "range.txt", range: "bytes=2-5" });
    expect(result.body).toBe("2345");
    expect(result.range).toBe("bytes 2-5/10");
    // The advice the range input gives, "bytes=-100" (last 100 bytes), is what S3 does.
    expect((await run("s3_get_object", { key: "range.txt", range: "bytes=-3" })).result).toMatchObject({ body: "789", range: "bytes 7-9/10", size: 3 });
    const past = await run("s3_get_object", { key: "range.txt", range: "bytes=10-" });
    expect(past.result.error.message).toContain("failed with InvalidRange (HTTP 416)");
    expect(past.result.error.message.split("Fix:")[1]).toContain("check its size with s3_head_object");
  });

  test("the size guard refuses to load a big object whole", async () => {
    await run("s3_put_object", { key: "big.txt", content: "x".repeat(5000) });
    const { status, result } = await run("s3_get_object", { key: "big.txt", max_bytes: 1000 });
    expect(status).toBe(422);
    expect(result.error.message).toContain('Invalid input "max_bytes"');
    expect(result.error.message).toContain("5000 bytes, over the 1000-byte limit");
  });

  test("head and copy with server-side encryption", async () => {
    await run("s3_put_object", { key: "src.txt", content: "copy me", content_type: "text/x-custom" });
    const copy = await run("s3_copy_object", { source_bucket: BUCKET, source_key: "src.txt", key: "copies/dst.txt", sse: "AES256" });
    expect(copy.result).toMatchObject({ source: `s3://${BUCKET}/src.txt`, destination: `s3://${BUCKET}/copies/dst.txt` });
    const head = await run("s3_head_object", { key: "copies/dst.txt" });
    expect(head.result).toMatchObject({ size: 7, content_type: "text/x-custom" });
  });

  test("SSE-KMS: a session without the key's KMS permissions is told to allow the kms action on the key, not s3:PutObject", async () => {
    const key = `arn:aws:kms:${REGION}:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab`;
    await run("s3_put_object", { key: "kms/secret.txt", content: "s", sse: "aws:kms", kms_key_id: key });
    expect((await run("s3_head_object", { key: "kms/secret.txt" })).result).toMatchObject({ server_side_encryption: "aws:kms" });
    const s3Only = "f/aws_oidc/s3_no_kms_creds";
    const policy = JSON.stringify({ Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "s3:*", Resource: "*" }] });
    await stack.runScript("f/aws_oidc/assume_role", { role_arn: DEMO_ROLE_ARN, region: REGION, save_to: s3Only, session_policy: policy });
    const put = await run("s3_put_object", { credentials: `$res:${s3Only}`, key: "kms/denied.txt", content: "s", sse: "aws:kms", kms_key_id: key });
    expect(put.status).toBe(422);
    const putFix = put.result.error.message.split("Fix:")[1];
    expect(putFix).toContain(`must allow kms:GenerateDataKey on ${key}`);
    expect(putFix).not.toContain("s3:PutObject");
    const got = await run("s3_get_object", { credentials: `$res:${s3Only}`, key: "kms/secret.txt" });
    const getFix = got.result.error.message.split("Fix:")[1];
    expect(getFix).toContain(`must allow kms:Decrypt on ${key}`);
    expect(getFix).not.toContain("may also not exist");
  });

  test("SSE-KMS: an alias is resolved to its key, reported by key ARN; a key that does not exist is KMS.NotFoundException with a fix", async () => {
    await run("s3_put_object", { key: "kms/by-alias.txt", content: "a", sse: "aws:kms", kms_key_id: "alias/demo-data" });
    expect((await run("s3_head_object", { key: "kms/by-alias.txt" })).result).toMatchObject({ server_side_encryption: "aws:kms", kms_key_id: DEMO_KMS_KEY_ARN });
    const missing = `arn:aws:kms:${REGION}:123456789012:key/00000000-0000-0000-0000-000000000000`;
    const put = await run("s3_put_object", { key: "kms/missing.txt", content: "a", sse: "aws:kms", kms_key_id: missing });
    expect(put.status).toBe(422);
    expect(put.result.error.message).toContain(`failed with KMS.NotFoundException (HTTP 400): Key '${missing}' does not exist`);
    expect(put.result.error.message.split("Fix:")[1]).toContain("the key must be in the bucket's region");
  });

  test("a missing key says how to find it", async () => {
    const { result } = await run("s3_get_object", { key: "nope/missing.txt" });
    expect(result.error.message).toContain("NoSuchKey");
    expect(result.error.message).toContain("Fix:");
  });

  test("a 24 MiB object goes up as multipart and comes back byte-exact", async () => {
    const body = randomBytes(24 * 1024 * 1024);
    const put = await uploadObject(s3, { bucket: BUCKET, key: "multipart/blob.bin", body, contentType: "application/octet-stream", encryption: { sse: "", kmsKeyId: "" } });
    expect(put.multipart).toBe(true);
    const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: "multipart/blob.bin" }));
    const back = Buffer.from(await got.Body!.transformToByteArray());
    expect(createHash("sha256").update(back).digest("hex")).toBe(createHash("sha256").update(body).digest("hex"));
  });
});

describe("list and delete", () => {
  test("lists every page, with common prefixes and a limit", async () => {
    const keys = Array.from({ length: 2100 }, (_, i) => `many/${String(i).padStart(5, "0")}.csv`);
    for (let i = 0; i < keys.length; i += 100) {
      await Promise.all(keys.slice(i, i + 100).map((Key) => s3.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: "a,b\n1,2\n" }))));
    }
    const all = await run("s3_list_objects", { prefix: "many/" });
    expect(all.result).toHaveLength(2100);
    expect(all.result[0]).toMatchObject({ key: "many/00000.csv", size: 8, kind: "object", storage_class: "STANDARD", etag: expect.stringMatching(/^"[0-9a-f]{32}"$/) });
    expect((await run("s3_list_objects", { prefix: "many/", limit: 5 })).result).toHaveLength(5);
    const top = await run("s3_list_objects", { delimiter: "/" });
    expect(top.result.filter((r: { kind: string }) => r.kind === "prefix").map((r: { key: string }) => r.key)).toContain("many/");
  });

  test("deletes a prefix in batches, dry run first", async () => {
    const dry = await run("s3_delete_objects", { prefix: "many/", dry_run: true });
    expect(dry.result).toMatchObject({ dry_run: true, matched: 2100, deleted: 0 });
    expect(dry.result.sample).toHaveLength(20);
    const real = await run("s3_delete_objects", { prefix: "many/", dry_run: false });
    expect(real.result).toMatchObject({ matched: 2100, deleted: 2100, failed: [] });
    expect((await run("s3_list_objects", { prefix: "many/" })).result).toHaveLength(0);
  });

  test("reports a per-key failure when the session may not delete some keys", async () => {
    const narrow = "f/aws_oidc/s3_narrow_creds";
    const policy = JSON.stringify({
      Version: "2012-10-17",
      Statement: [
        { Effect: "Allow", Action: "s3:*", Resource: "*" },
        { Effect: "Deny", Action: "s3:DeleteObject", Resource: `arn:aws:s3:::${BUCKET}/protected/*` },
      ],
    });
    await stack.runScript("f/aws_oidc/assume_role", { role_arn: DEMO_ROLE_ARN, region: REGION, save_to: narrow, session_policy: policy });
    await run("s3_put_object", { key: "protected/keep.txt", content: "k" });
    await run("s3_put_object", { key: "scratch/go.txt", content: "g" });
    const { status, result } = await stack.runScript("f/aws_oidc/s3_delete_objects", {
      credentials: `$res:${narrow}`, bucket: BUCKET, keys: ["scratch/go.txt", "protected/keep.txt"], dry_run: false,
    });
    expect(status).toBe(200);
    expect(result.deleted).toBe(1);
    expect(result.failed).toEqual([{ key: "protected/keep.txt", code: "AccessDenied", message: expect.any(String) }]);
    const denied = await stack.runScript("f/aws_oidc/s3_put_object", { credentials: `$res:${narrow}`, bucket: "other-bucket-x", key: "a", content: "b" });
    expect(denied.status).toBe(422);
  });

  test("keys and prefix together are refused", async () => {
    const { result } = await run("s3_delete_objects", { keys: ["a"], prefix: "b/" });
    expect(result.error.message).toContain('Invalid input "keys"');
  });
});

describe("presigned URLs", () => {
  test("a GET URL works with plain fetch, and not once tampered with", async () => {
    await run("s3_put_object", { key: "share/report.csv", content: "id,name\n1,Ada\n" });
    const { result } = await run("s3_presign_url", { key: "share/report.csv", expires_in: "10m" });
    expect(result).toMatchObject({ method: "GET", expires_in: "10m", limited_by: null });
    const ok = await fetch(result.url);
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe("id,name\n1,Ada\n");
    const tampered = await fetch(result.url.replace("share/report.csv", "share/other.csv"));
    expect(tampered.status).toBe(403);
    expect(await tampered.text()).toContain("SignatureDoesNotMatch");
  });

  test("an expired URL is refused", async () => {
    const { result } = await run("s3_presign_url", { key: "share/report.csv", expires_in: "1s" });
    await Bun.sleep(2100);
    const res = await fetch(result.url);
    expect(res.status).toBe(403);
    expect(await res.text()).toContain("expired");
  });

  test("a PUT URL uploads", async () => {
    const { result } = await run("s3_presign_url", { key: "share/upload.txt", method: "PUT", content_type: "text/plain" });
    expect(result.required_headers).toEqual({ "Content-Type": "text/plain" });
    const put = await fetch(result.url, { method: "PUT", body: "uploaded", headers: { "content-type": "text/plain" } });
    expect(put.status).toBe(200);
    expect((await run("s3_get_object", { key: "share/upload.txt" })).result.body).toBe("uploaded");
  });

  test("content_type binds a PUT URL: another type, or none, is refused", async () => {
    const { result } = await run("s3_presign_url", { key: "share/typed.csv", method: "PUT", content_type: "text/csv" });
    const other = await fetch(result.url, { method: "PUT", body: "<x/>", headers: { "content-type": "application/xml" } });
    expect(other.status).toBe(403);
    expect(await other.text()).toContain("SignatureDoesNotMatch");
    const none = await fetch(result.url, { method: "PUT", body: new Blob(["a,b\n"]) });
    expect(none.status).toBe(403);
    const right = await fetch(result.url, { method: "PUT", body: "a,b\n", headers: { "content-type": "text/csv" } });
    expect(right.status).toBe(200);
  });

  test("the link never outlives the session, and the result says so", async () => {
    const short = "f/aws_oidc/s3_short_creds";
    await stack.runScript("f/aws_oidc/assume_role", { role_arn: DEMO_ROLE_ARN, region: REGION, save_to: short, duration: "15m" });
    const { result } = await stack.runScript("f/aws_oidc/s3_presign_url", { credentials: `$res:${short}`, bucket: BUCKET, key: "share/report.csv", expires_in: "7d" });
    expect(result.limited_by).toContain("the credentials expire at");
    expect(new Date(result.expires_at).getTime() - Date.now()).toBeLessThanOrEqual(15 * 60 * 1000);
  });

  test("expires_in above 7 days is refused", async () => {
    const { result } = await run("s3_presign_url", { key: "share/report.csv", expires_in: "8d" });
    expect(result.error.message).toContain('Invalid input "expires_in"');
  });
});

describe("bad input", () => {
  test.each([
    [{ bucket: "s3://demo-bucket/x" }, "bucket", "Give the bucket name alone: demo-bucket"],
    [{ bucket: "Demo_Bucket" }, "bucket", "lowercase"],
    [{ key: "" }, "key", "object key is empty"],
    [{ key: "k".repeat(1100) }, "key", "at most 1024 bytes"],
    [{ range: "0-10" }, "range", "bytes=0-1023"],
    [{ as: "xml" }, "as", "text"],
  ])("%o names %s", async (patch, input, fix) => {
    const { status, result } = await run("s3_get_object", { key: "plain.txt", ...patch });
    expect(status).toBe(422);
    expect(result.error.message).toContain(`Invalid input "${input}"`);
    expect(result.error.message).toContain(fix);
  });
});
