// Forwarding to s3rver: the client's request re-signed for s3rver's own account, minus
// this hop's auth and framing, and s3rver's answer relayed back (or cut, as a fault).
import { request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from "node:http";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { Hash } from "@smithy/hash-node";
import { SignatureV4 } from "@smithy/signature-v4";
import { UNSIGNED_PAYLOAD } from "../aws/sigv4.ts";
import { idHeaders, type RequestIds } from "./errors.ts";
import { HOP_HEADERS, PRESIGN_PARAMS, RESPONSE_HOP_HEADERS, S3RVER_CREDENTIALS } from "./limits.ts";
import type { Target } from "./request.ts";
import { storedPath } from "./storedKeys.ts";

/** The hash constructor the SDK itself hands its SigV4 signer in Node. */
const Sha256 = Hash.bind(null, "sha256");

/** s3rver on loopback, and the signer for its own account. */
export interface Upstream {
  host: string;
  port: number;
  signer: SignatureV4;
}

export function s3rverUpstream(port: number, region: string): Upstream {
  return {
    host: "127.0.0.1",
    port,
    signer: new SignatureV4({ service: "s3", region, credentials: S3RVER_CREDENTIALS, sha256: Sha256, uriEscapePath: false, applyChecksum: false }),
  };
}

/** What the gate changes in a forwarded request: CopyObject's source, re-encoded; headers it sets (a KMS key named by its ARN) or drops. */
export interface Rewrites {
  copySource?: { bucket: string; key: string };
  set?: Record<string, string>;
  drop?: string[];
}

/** The client's headers minus this hop's auth and framing, with the gate's rewrites, signed for s3rver's own account. */
export async function s3rverHeaders(upstream: Upstream, method: string, rawPath: string, req: IncomingMessage | undefined, length: number, rewrites: Rewrites = {}): Promise<OutgoingHttpHeaders> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req?.headers ?? {})) {
    if (value === undefined || HOP_HEADERS.has(name) || name.startsWith("x-amz-checksum-") || name.startsWith("proxy-")) continue;
    headers[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  const encodings = (headers["content-encoding"] ?? "").split(",").map((e) => e.trim()).filter((e) => e && e !== "aws-chunked");
  if (encodings.length) headers["content-encoding"] = encodings.join(", ");
  else delete headers["content-encoding"];
  const { copySource } = rewrites;
  if (copySource) headers["x-amz-copy-source"] = storedPath(copySource.bucket, copySource.key);
  for (const name of rewrites.drop ?? []) delete headers[name];
  Object.assign(headers, rewrites.set);
  headers.host = `${upstream.host}:${upstream.port}`;
  headers["x-amz-content-sha256"] = UNSIGNED_PAYLOAD;
  headers["content-length"] = String(length);
  const signed = await upstream.signer.sign(
    { method, protocol: "http:", hostname: upstream.host, port: upstream.port, path: rawPath, query: {}, headers },
    { signingDate: new Date() },
  );
  return signed.headers;
}

/** The query minus a presigned URL's auth parameters (s3rver would treat them as a second auth mechanism). */
export function forwardedQuery(target: Target): string {
  const kept = target.params.filter((p) => !PRESIGN_PARAMS.includes(p.name)).map((p) => p.raw);
  return kept.length ? `?${kept.join("&")}` : "";
}

/** Sends one request to s3rver; resolves with its response once the status line arrives. */
export function exchange(upstream: Upstream, method: string, path: string, headers: OutgoingHttpHeaders, body: Readable | Buffer | undefined): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest({ host: upstream.host, port: upstream.port, method, path, headers }, resolve);
    if (!(body instanceof Readable)) {
      outgoing.on("error", reject);
      return void outgoing.end(body);
    }
    // A body that fails verification is the error to report, not the hang-up it causes upstream.
    let bodyError: unknown;
    body.once("error", (err) => {
      bodyError = err;
    });
    outgoing.on("error", (err) => reject(bodyError ?? err));
    pipeline(body, outgoing).catch((err: unknown) => reject(bodyError ?? err));
  });
}

/** What the gate adds to s3rver's answer: headers S3 sends and s3rver does not, or the body when the gate has read or cut it. */
export interface RelayOptions {
  headers?: OutgoingHttpHeaders;
  body?: Buffer | Readable;
}

/** s3rver's path for a request's bucket or object (keys as stored: storedKeys.ts). */
export function upstreamPath(target: Target): string {
  return target.key === undefined ? `/${target.bucket ?? ""}` : storedPath(target.bucket!, target.key);
}

/** HEAD of a stored object as s3rver has it (status and headers; the empty body already drained). */
export async function headStored(upstream: Upstream, bucket: string, key: string): Promise<IncomingMessage> {
  const rawPath = storedPath(bucket, key);
  const head = await exchange(upstream, "HEAD", rawPath, await s3rverHeaders(upstream, "HEAD", rawPath, undefined, 0), undefined);
  head.resume();
  return head;
}

/** The client's request, rewritten, sent on to s3rver: its response once the status line arrives. */
export async function forward(upstream: Upstream, target: Target, req: IncomingMessage, body: Readable | Buffer, length: number, rewrites: Rewrites = {}): Promise<IncomingMessage> {
  const path = upstreamPath(target);
  const headers = await s3rverHeaders(upstream, target.method, path, req, length, rewrites);
  return exchange(upstream, target.method, `${path}${forwardedQuery(target)}`, headers, body);
}

/** s3rver's response to the client, under this request's ids; `drop` cuts it midway (a fault). */
export function relay(upstream: IncomingMessage, res: ServerResponse, ids: RequestIds, drop: boolean, options: RelayOptions = {}): void {
  const headers: OutgoingHttpHeaders = { ...idHeaders(ids) };
  for (const [name, value] of Object.entries(upstream.headers)) {
    if (value !== undefined && !RESPONSE_HOP_HEADERS.has(name)) headers[name] = value;
  }
  Object.assign(headers, options.headers);
  const body = Buffer.isBuffer(options.body) ? Readable.from([options.body]) : (options.body ?? upstream);
  if (drop) return dropMidResponse(upstream, body, res, headers);
  res.writeHead(upstream.statusCode ?? 502, headers);
  pipeline(body, res).catch(() => res.destroy());
}

/** The fault: the response starts (status line, headers, part of the body) and the connection dies. */
function dropMidResponse(upstream: IncomingMessage, body: Readable, res: ServerResponse, headers: OutgoingHttpHeaders): void {
  const cut = () => {
    upstream.destroy();
    body.destroy();
    res.socket?.destroy();
  };
  if (Number(upstream.headers["content-length"] ?? 0) === 0 && upstream.headers["transfer-encoding"] === undefined) return cut();
  res.writeHead(upstream.statusCode ?? 502, headers);
  body.once("data", (chunk: Buffer) => {
    res.write(chunk.subarray(0, Math.floor(chunk.length / 2)), cut);
  });
}
