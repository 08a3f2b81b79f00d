// The storage half of the S3 stand-in: s3rver 3.7.1 on loopback, started by local/s3/s3rver.ts
// for the SigV4 gate (local/s3/server.ts), the only client it should ever have. Plain JS run by Node,
// because s3rver misbehaves under Bun (list order) and needs --openssl-legacy-provider on
// Node 17+ (its ListObjectsV2 continuation tokens use DES):
//
//   node --openssl-legacy-provider local/s3/s3rverChild.mjs <port|0> <dataDir>
//
// Prints {"port": N} as one JSON line on stdout once listening; exits when stdin closes
// (so it dies with its parent) or on SIGTERM/SIGINT.
//
// Two fixes on top of s3rver, both about behaving like S3 when a request goes wrong:
// - s3rver writes object and part bodies straight over the final file, so an upload cut
//   short (client gone, or the gate refusing a body whose hash does not match) would leave
//   a truncated object behind. Bodies are written to a temp file and renamed into place
//   only when complete.
// - s3rver has no AbortMultipartUpload (it answers MethodNotAllowed) and accepts parts for
//   upload ids that do not exist; S3 answers 204 and NoSuchUpload.
// Keys: S3 takes any key of up to 1024 bytes ("a//b", "x/../y", a 300-byte segment), which
// s3rver, keeping objects as files under their key, cannot. The gate sends every key as the
// lowercase hex of its UTF-8 bytes (local/s3/storedKeys.ts); here a hex key is a file path in
// chunks of at most 200 characters (file names stay under NAME_MAX, 255 bytes), and listings
// come out in hex order, which is S3's order (by UTF-8 bytes).
// And one about SSE: S3 keeps an object's x-amz-server-side-encryption (and KMS key id) and
// answers them on GET and HEAD; s3rver drops both. They are kept as metadata here, and a
// copy takes them from the copy request, never from its source, as S3 does (CopyObject:
// the copy is encrypted as the request asks, else with the bucket's default).
import { AsyncLocalStorage } from "node:async_hooks";
import { createHash, randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";

const require = createRequire(import.meta.url);
const S3rver = require("s3rver");
const FilesystemStore = require("s3rver/lib/stores/filesystem.js");
const S3Error = require("s3rver/lib/models/error.js");
const S3Object = require("s3rver/lib/models/object.js");

const SSE_HEADERS = ["x-amz-server-side-encryption", "x-amz-server-side-encryption-aws-kms-key-id"];
S3Object.ALLOWED_METADATA.push(...SSE_HEADERS);
/** The headers of the request being handled, for the store calls that s3rver hands none. */
const requestHeaders = new AsyncLocalStorage();

const NO_SUCH_UPLOAD_MESSAGE =
  "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.";

/** Streams `content` into `finalPath` through a temp file, so readers never see a partial body. */
async function writeAtomically(content, finalPath) {
  await mkdir(dirname(finalPath), { recursive: true });
  const tempPath = `${finalPath}.partial-${randomBytes(6).toString("hex")}`;
  const md5 = createHash("md5");
  let size = 0;
  const measure = new Transform({
    transform(chunk, _encoding, callback) {
      md5.update(chunk);
      size += chunk.length;
      callback(null, chunk);
    },
  });
  try {
    await pipeline(content, measure, createWriteStream(tempPath));
    await rename(tempPath, finalPath);
  } catch (err) {
    await rm(tempPath, { force: true });
    throw err;
  }
  return { size, md5: md5.digest("hex") };
}

/** Hex characters per path segment of a stored key; a file name adds ._S3rver_metadata.json (22) and a temp suffix (21). */
const KEY_CHUNK = 200;
const OBJECT_SUFFIX = "._S3rver_object";

class AtomicStore extends FilesystemStore {
  /** A hex key's chunks: directories named `<chunk>~` (after `<chunk>._S3rver_…` in byte order, as a shorter key sorts first), then the file. */
  getResourcePath(bucket, key = "", resource) {
    if (!key) return super.getResourcePath(bucket, key, resource);
    if (!/^[0-9a-f]+$/.test(key)) throw new S3Error("InvalidArgument", "This store takes keys as the hex of their UTF-8 bytes (the S3 gate sends them so).");
    const chunks = key.match(new RegExp(`.{1,${KEY_CHUNK}}`, "g"));
    const last = chunks.pop();
    return join(this.rootDirectory, bucket, ...chunks.map((c) => `${c}~`), `${last}._S3rver_${resource}`);
  }

  /** Every stored hex key of a bucket, sorted (S3's order); prefix, start-after and max-keys as s3rver takes them, no delimiter (the gate groups). */
  async listObjects(bucket, options) {
    const { prefix = "", startAfter = "", maxKeys = Infinity } = options;
    const keys = (await this.storedKeys(this.getBucketPath(bucket), "")).filter((k) => k.startsWith(prefix) && k > startAfter).sort();
    const page = keys.slice(0, maxKeys);
    const metadata = await Promise.all(page.map((key) => this.getMetadata(bucket, key).catch((err) => (err.code === "ENOENT" ? undefined : Promise.reject(err)))));
    const objects = page.map((key, i) => metadata[i] && new S3Object(bucket, key, null, metadata[i])).filter(Boolean);
    return { objects, commonPrefixes: [], isTruncated: keys.length > page.length };
  }

  async storedKeys(dir, above) {
    const entries = await readdir(dir, { withFileTypes: true }).catch((err) => (err.code === "ENOENT" ? [] : Promise.reject(err)));
    const nested = await Promise.all(entries.map(async (entry) => {
      if (entry.isDirectory() && entry.name.endsWith("~")) return this.storedKeys(join(dir, entry.name), above + entry.name.slice(0, -1));
      return entry.isFile() && entry.name.endsWith(OBJECT_SUFFIX) && !entry.name.startsWith(".") ? [above + entry.name.slice(0, -OBJECT_SUFFIX.length)] : [];
    }));
    return nested.flat();
  }

  uploadDir(bucket, uploadId) {
    return join(this.getResourcePath(bucket, undefined, "uploads"), uploadId);
  }

  async putObject(object) {
    if (Buffer.isBuffer(object.content)) return super.putObject(object);
    const { size, md5 } = await writeAtomically(object.content, this.getResourcePath(object.bucket, object.key, "object"));
    await this.putMetadata(object.bucket, object.key, object.metadata, md5);
    return { size, md5 };
  }

  async putPart(bucket, uploadId, partNumber, content) {
    await this.assertUpload(bucket, uploadId);
    const partPath = join(this.uploadDir(bucket, uploadId), String(partNumber));
    const { size, md5 } = await writeAtomically(content, partPath);
    await writeFile(`${partPath}.md5`, md5);
    return { size, md5 };
  }

  async copyObject(srcBucket, srcKey, destBucket, destKey, replacementMetadata) {
    const metadata = await super.copyObject(srcBucket, srcKey, destBucket, destKey, replacementMetadata);
    // With the COPY directive s3rver copied the source's metadata file, encryption included.
    if (replacementMetadata) return metadata;
    const headers = requestHeaders.getStore() ?? {};
    const metadataPath = this.getResourcePath(destBucket, destKey, "metadata.json");
    const stored = JSON.parse(await readFile(metadataPath, "utf8"));
    for (const name of SSE_HEADERS) {
      if (headers[name] === undefined) delete stored[name];
      else stored[name] = headers[name];
    }
    await writeFile(metadataPath, JSON.stringify(stored, null, 2));
    return this.getMetadata(destBucket, destKey);
  }

  async abortUpload(bucket, uploadId) {
    await this.assertUpload(bucket, uploadId);
    await rm(this.uploadDir(bucket, uploadId), { recursive: true, force: true });
  }

  async assertUpload(bucket, uploadId) {
    // Upload ids are hex from s3rver; anything else must not reach path.join.
    const exists = /^[0-9a-f]+$/.test(uploadId) && (await stat(this.uploadDir(bucket, uploadId)).then(() => true, () => false));
    if (!exists) throw new S3Error("NoSuchUpload", NO_SUCH_UPLOAD_MESSAGE, { UploadId: uploadId });
  }
}

/** DELETE /bucket/key?uploadId=… is AbortMultipartUpload; s3rver would answer MethodNotAllowed. */
function abortTarget(req) {
  if (req.method !== "DELETE") return undefined;
  const url = new URL(req.url ?? "/", "http://s3rver");
  const uploadId = url.searchParams.get("uploadId");
  const bucket = decodeURIComponent(url.pathname.split("/")[1] ?? "");
  return uploadId === null || !bucket ? undefined : { bucket, uploadId };
}

async function abortUpload(store, target, res) {
  try {
    await store.abortUpload(target.bucket, target.uploadId);
    res.writeHead(204).end();
  } catch (err) {
    const error = err instanceof S3Error ? err : S3Error.fromError(err);
    const body = error.toXML();
    res.writeHead(error.status, { "content-type": "application/xml", "content-length": Buffer.byteLength(body) }).end(body);
  }
}

async function main() {
  const [portArg, directory] = process.argv.slice(2);
  const port = Number(portArg);
  if (!directory || !Number.isInteger(port)) {
    console.error("usage: node --openssl-legacy-provider local/s3/s3rverChild.mjs <port|0> <dataDir>");
    process.exit(2);
  }
  await mkdir(directory, { recursive: true });
  // The gate rewrites Host to this loopback address, so path-style is the only style s3rver sees.
  const app = new S3rver({ directory, silent: true, vhostBuckets: false });
  const store = new AtomicStore(directory);
  app.store = app.context.store = store;
  const handle = app.callback();
  const server = createServer((req, res) => {
    const target = abortTarget(req);
    if (target) void abortUpload(store, target, res);
    else requestHeaders.run(req.headers, () => handle(req, res));
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", resolve);
  });
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);

  const stop = () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  process.stdin.on("close", stop);
  process.stdin.on("end", stop);
  process.stdin.resume();
}

await main();
