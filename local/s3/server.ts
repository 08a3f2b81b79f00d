// The Amazon S3 stand-in: s3rver (an independent S3 implementation, run by Node in
// local/s3/s3rverChild.mjs) behind a gate that is as strict as S3 about who may do what.
// The gate verifies every request's SigV4 signature (header-signed or presigned) with
// the secret the STS stand-in issued, checks the session token and its expiry, asks STS
// whether the session's policies allow the S3 action on the resource (and the KMS action on
// the key, with SSE-KMS), decodes aws-chunked bodies and checks payload hashes and checksums,
// keeps multipart uploads to S3's rules, then streams the request to s3rver.
// It talks to STS only over HTTP (GET /_local/sessions/<id>, POST /_local/authorize).
//
// Tests and tools reach it through /_local/: POST|DELETE /_local/faults, GET /_local/stats,
// POST /_local/stats/reset (no bucket can be named `_local`, so these never shadow S3).
//
// Run alone: bun local/s3/server.ts --sts-url http://127.0.0.1:PORT [--port N] [--region R] [--data-dir DIR]
import { mkdtemp, rm } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { closeOnSignals, flagReader, isEntryModule } from "../shared/cli.ts";
import { bypassProxyForLoopback } from "../shared/proxy.ts";
import { closeServer, HttpError, listen, readBody, readJson, sendJson } from "../shared/http.ts";
import { authenticate, authorize, isAllowed, type Caller } from "./auth.ts";
import { verifiedBody } from "./body.ts";
import { deleteObjects } from "./deleteObjects.ts";
import { listObjects } from "./listObjects.ts";
import { MESSAGES, newRequestIds, S3ErrorReply, sendS3Error, type RequestIds } from "./errors.ts";
import { applyFaults, clearFaults, takeDropFault, takeErrorFault, type S3Faults } from "./faults.ts";
import { forward, relay, s3rverUpstream, type Upstream } from "./forward.ts";
import { checkCopy } from "./copy.ts";
import { authorizeKms, authorizeRead, keyScopeOf, requestedKmsKey, storedEncryption } from "./kms.ts";
import { KmsKeys, type KmsKeyConfig } from "./kmsKeys.ts";
import { DEFAULT_REGION, MAX_COPY_SOURCE_BYTES } from "./limits.ts";
import { completeMultipartUpload, createMultipartUpload, forgetAborted, uploadPart, type MultipartUploads, type Reply } from "./multipart.ts";
import { classify, type Operation } from "./operations.ts";
import { uploadPartCopy } from "./partCopy.ts";
import { planRange, rangedReply } from "./ranges.ts";
import { parseTarget, type Target } from "./request.ts";
import { restoreKeys } from "./storedKeys.ts";
import { startS3rver, stopChild } from "./s3rver.ts";

export type { S3Faults } from "./faults.ts";
export type { KmsKeyConfig } from "./kmsKeys.ts";

// ---------------------------------------------------------------------------------------
// Public API

export interface S3Stats {
  /** Requests by S3 operation (PutObject, ListObjectsV2, ...), refused ones included. */
  calls: Record<string, number>;
  /** Error responses by S3 error code. */
  errors: Record<string, number>;
}

export interface S3Options {
  /** The STS stand-in that issued the credentials: sessions and policy decisions come from it. */
  stsUrl: string;
  /** The one region this endpoint serves; requests signed for another are refused. */
  region?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
  host?: string;
  /** Where s3rver keeps buckets; a temp dir (removed on close) when not given. */
  dataDir?: string;
  /** The customer managed KMS keys SSE-KMS may name (the AWS managed key aws/s3 exists in every account without being listed). */
  kmsKeys?: KmsKeyConfig[];
  /** For tests only: the largest CopyObject source (S3's 5 GiB, MAX_COPY_SOURCE_BYTES, when not given), so a multipart copy can be tested on small objects. */
  maxCopySourceBytes?: number;
}

export interface S3StandIn {
  url: string;
  region: string;
  /** Flip these to inject failures; POST /_local/faults does the same over HTTP. */
  faults: S3Faults;
  stats(): S3Stats;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------
// The gate

interface Gate {
  stsUrl: string;
  region: string;
  upstream: Upstream;
  faults: S3Faults;
  stats: S3Stats;
  uploads: MultipartUploads;
  maxCopySourceBytes: number;
  kmsKeys: KmsKeys;
}

function increment(record: Record<string, number>, name: string): void {
  record[name] = (record[name] ?? 0) + 1;
}

async function proxy(gate: Gate, req: IncomingMessage, res: ServerResponse, target: Target, operation: Operation, caller: Caller, ids: RequestIds): Promise<void> {
  const reply = await withClientKeys(await exchangeFor(gate, req, target, operation, caller), req, operation);
  relay(reply.upstream, res, ids, takeDropFault(gate.faults), reply.options);
}

/** s3rver's answers that name a key (errors, CompleteMultipartUpload's result) carry it as stored: read, and given the client's key back. */
async function withClientKeys(reply: Reply, req: IncomingMessage, operation: Operation): Promise<Reply> {
  const { upstream, options } = reply;
  const namesKey = (upstream.statusCode ?? 500) >= 300 || operation.name === "CompleteMultipartUpload";
  if (!namesKey || req.method === "HEAD" || options?.body !== undefined || !String(upstream.headers["content-type"] ?? "").includes("xml")) return reply;
  const body = Buffer.from(restoreKeys((await readBody(upstream)).toString("utf8")));
  return { upstream, options: { ...options, body, headers: { ...options?.headers, "content-length": String(body.length) } } };
}

function exchangeFor(gate: Gate, req: IncomingMessage, target: Target, operation: Operation, caller: Caller): Promise<Reply> {
  switch (operation.name) {
    case "CreateMultipartUpload":
      return createMultipartUpload(gate, req, target, caller);
    case "UploadPart":
      return uploadPart(gate, req, target, caller);
    case "UploadPartCopy":
      return uploadPartCopy(gate, req, target, caller, operation.copySource!);
    case "CompleteMultipartUpload":
      return completeMultipartUpload(gate, req, target, caller);
    default:
      return plainExchange(gate, req, target, operation, caller);
  }
}

/** Writes that store a new object, encrypted with the KMS key the request names, if any. */
const OBJECT_WRITES = new Set(["PutObject", "CopyObject"]);

async function plainExchange(gate: Gate, req: IncomingMessage, target: Target, operation: Operation, caller: Caller): Promise<Reply> {
  const scope = keyScopeOf(caller, gate.region);
  const writeKey = OBJECT_WRITES.has(operation.name) ? requestedKmsKey(req.headers, scope, gate.kmsKeys) : undefined;
  if (writeKey) await authorizeKms(gate.stsUrl, caller, scope, "kms:GenerateDataKey", writeKey);
  const copyHeaders = operation.copySource ? await checkCopy(gate, req, target, caller, scope, operation.copySource) : {};
  const encryption = OBJECT_WRITES.has(operation.name) ? storedEncryption(req.headers, writeKey) : {};
  const range = KEY_READS.has(operation.name) ? await planRange(gate.upstream, req, target) : {};
  const { body, length } = verifiedBody(req, caller);
  const set = { ...copyHeaders, ...encryption, ...(range.forwardedRange && { range: range.forwardedRange }) };
  const upstream = await forward(gate.upstream, target, req, body, length, { copySource: operation.copySource, set, drop: ["range"] });
  if (upstream.statusCode === 404 && KEY_READS.has(operation.name)) await hideMissingKeyWithoutList(gate, caller, target, upstream);
  if (operation.name === "GetObject" && (upstream.statusCode === 200 || upstream.statusCode === 206)) await authorizeRead(gate.stsUrl, caller, scope, upstream);
  if (operation.name === "AbortMultipartUpload") forgetAborted(gate, target, upstream);
  if (OBJECT_WRITES.has(operation.name) && upstream.statusCode === 200) return { upstream, options: { headers: encryption } };
  return { upstream, options: rangedReply(upstream, range) };
}

/** Object reads whose "no such key" S3 tells only to callers who may list the bucket. */
const KEY_READS = new Set(["GetObject", "HeadObject"]);

/**
 * S3 answers a missing key with 404 only to a caller allowed s3:ListBucket on the bucket;
 * anyone else gets 403 AccessDenied, so keys cannot be probed (S3 API reference,
 * GetObject and HeadObject, "Permissions": without s3:ListBucket, "Amazon S3 returns an
 * HTTP status code 403 Access Denied error"). The key is the s3:prefix of that check: the
 * reference does not say, and it is what a list that would reveal the key carries.
 */
async function hideMissingKeyWithoutList(gate: Gate, caller: Caller, target: Target, upstream: IncomingMessage): Promise<void> {
  const check = { action: "s3:ListBucket", resource: `arn:aws:s3:::${target.bucket}`, context: { "s3:prefix": target.key ?? "" } };
  if ((await isAllowed(gate.stsUrl, caller, check)).allowed) return;
  upstream.resume();
  throw new S3ErrorReply("AccessDenied", "Access Denied");
}

async function handleS3(gate: Gate, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const ids = newRequestIds();
  try {
    const target = parseTarget(req);
    const operation = classify(target, req.headers);
    increment(gate.stats.calls, operation.name);
    const fault = takeErrorFault(gate.faults);
    if (fault) throw fault;
    const caller = await authenticate(gate, req, target);
    await authorize(gate.stsUrl, caller, operation.checks);
    if (operation.name === "DeleteObjects") await deleteObjects(gate, req, res, target, caller, ids);
    else if (operation.name === "ListObjects" || operation.name === "ListObjectsV2") await listObjects(gate, req, res, target, ids);
    else await proxy(gate, req, res, target, operation, caller, ids);
  } catch (err) {
    // A client that went away mid-request has nobody left to answer.
    if (res.headersSent || res.destroyed) return void res.socket?.destroy();
    const error = err instanceof S3ErrorReply ? err : unexpected(err);
    increment(gate.stats.errors, error.code);
    sendS3Error(req, res, error, ids);
  }
}

function unexpected(err: unknown): S3ErrorReply {
  // The message never carries request secrets: it is about STS or s3rver, not headers or bodies.
  console.error("S3 stand-in: unexpected error:", err instanceof Error ? err.message : String(err));
  return new S3ErrorReply("InternalError", MESSAGES.internal);
}

// ---------------------------------------------------------------------------------------
// /_local/: faults and stats

async function handleLocal(gate: Gate, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  try {
    switch (`${req.method} ${path}`) {
      case "POST /_local/faults":
        applyFaults(gate.faults, await readJson<Record<string, unknown>>(req));
        return sendJson(res, 200, { faults: gate.faults });
      case "DELETE /_local/faults":
        clearFaults(gate.faults);
        return sendJson(res, 200, { faults: gate.faults });
      case "GET /_local/stats":
        return sendJson(res, 200, gate.stats);
      case "POST /_local/stats/reset":
        gate.stats = { calls: {}, errors: {} };
        return sendJson(res, 200, gate.stats);
      default:
        return sendJson(res, 404, { error: `no local endpoint ${req.method} ${path}` });
    }
  } catch (err) {
    if (!(err instanceof HttpError)) throw err;
    sendJson(res, err.status, { error: err.message });
  }
}

// ---------------------------------------------------------------------------------------
// Start and stop

export async function startS3(options: S3Options): Promise<S3StandIn> {
  // Whoever starts a stand-in calls it on loopback, directly whatever proxy is set (proxy.ts).
  bypassProxyForLoopback();
  const region = options.region ?? DEFAULT_REGION;
  const ownDataDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), "s3-standin-")));
  const { child, port } = await startS3rver(dataDir);
  const gate: Gate = {
    stsUrl: options.stsUrl.replace(/\/+$/, ""),
    region,
    upstream: s3rverUpstream(port, region),
    faults: { status: 500, count: 0, dropConnections: 0 },
    stats: { calls: {}, errors: {} },
    uploads: new Map(),
    maxCopySourceBytes: options.maxCopySourceBytes ?? MAX_COPY_SOURCE_BYTES,
    kmsKeys: new KmsKeys(options.kmsKeys),
  };
  const { server, url } = await listen((req, res) => {
    const path = (req.url ?? "/").split("?")[0]!;
    return path.startsWith("/_local/") ? handleLocal(gate, req, res, path) : handleS3(gate, req, res);
  }, options.port ?? 0, options.host ?? "127.0.0.1");
  return {
    url,
    region,
    faults: gate.faults,
    stats: () => structuredClone(gate.stats),
    async close() {
      await closeServer(server);
      await stopChild(child);
      if (ownDataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------------------
// CLI

function parseArgs(argv: string[]): S3Options {
  const value = flagReader(argv);
  const stsUrl = value("--sts-url");
  if (!stsUrl) throw new Error("usage: bun local/s3/server.ts --sts-url <url> [--port N] [--region us-east-1] [--data-dir DIR] [--host 127.0.0.1] [--kms-keys '[{\"arn\":\"arn:aws:kms:...:key/...\",\"aliases\":[\"alias/x\"]}]']");
  const port = value("--port");
  const kmsKeys = value("--kms-keys");
  return {
    stsUrl, port: port === undefined ? undefined : Number(port), region: value("--region"), dataDir: value("--data-dir"), host: value("--host"),
    kmsKeys: kmsKeys === undefined ? undefined : (JSON.parse(kmsKeys) as KmsKeyConfig[]),
  };
}

async function main(): Promise<void> {
  const s3 = await startS3(parseArgs(process.argv.slice(2)));
  console.log(s3.url);
  closeOnSignals(() => s3.close());
}

if (isEntryModule(import.meta.url)) await main();
