// ListObjects and ListObjectsV2, answered by the gate: s3rver holds keys as stored
// (storedKeys.ts) and lists them in order, by prefix and start-after, without a delimiter; the
// gate turns them back into the client's keys and groups common prefixes itself, as S3 does:
// keys and common prefixes merged in UTF-8 byte order, MaxKeys counting both, a continuation
// resuming after the last one returned (moto models.py `list_objects`, `list_objects_v2`,
// `_get_results_from_token`, `_truncate_result`; S3 API reference, ListObjectsV2 and ListObjects).
import type { IncomingMessage, ServerResponse } from "node:http";
import { readBody } from "../shared/http.ts";
import { idHeaders, S3ErrorReply, xmlEscape, xmlUnescape, type RequestIds } from "./errors.ts";
import { exchange, s3rverHeaders, type Upstream } from "./forward.ts";
import { S3_XMLNS } from "./limits.ts";
import { param, type Target } from "./request.ts";
import { fromStored, toStored } from "./storedKeys.ts";

/** What s3rver is asked for per page; the client's MaxKeys is capped at the same 1000. */
const PAGE_KEYS = 1000;
/** Sorts after every hex digit: `<hex of a prefix>g` is past every stored key under that prefix. */
const PAST_EVERY_HEX = "g";
/** The owner S3 shows on listed objects; its canonical user id is not modelled here (a fixed 64-hex id). */
const OWNER = { id: "75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a", displayName: "local" };

interface StoredObject {
  key: string;
  lastModified: string;
  etag: string;
  size: string;
}

type Entry = { kind: "key"; object: StoredObject } | { kind: "prefix"; prefix: string };

interface ListQuery {
  v2: boolean;
  prefix: string;
  delimiter: string;
  /** Resume after this key or common prefix (start-after, marker, or the continuation token's). */
  after: string;
  maxKeys: number;
  urlEncoded: boolean;
}

function maxKeysOf(target: Target): number {
  const raw = param(target, "max-keys");
  if (raw === undefined) return PAGE_KEYS;
  if (!/^\d+$/.test(raw) || Number(raw) > 2147483647) {
    throw new S3ErrorReply("InvalidArgument", "Provided max-keys not an integer or within integer range", { ArgumentName: "max-keys", ArgumentValue: raw });
  }
  return Math.min(PAGE_KEYS, Number(raw));
}

/** S3's tokens are opaque; here the last key or prefix returned, base64url. */
function tokenFor(entry: Entry): string {
  return Buffer.from(entry.kind === "key" ? entry.object.key : entry.prefix, "utf8").toString("base64url");
}

function afterOf(target: Target, v2: boolean): string {
  if (!v2) return param(target, "marker") ?? "";
  const token = param(target, "continuation-token");
  if (token === undefined) return param(target, "start-after") ?? "";
  if (!/^[A-Za-z0-9_-]+$/.test(token)) throw new S3ErrorReply("InvalidArgument", "The continuation token provided is incorrect", { ArgumentName: "continuation-token" });
  return Buffer.from(token, "base64url").toString("utf8");
}

function queryOf(target: Target): ListQuery {
  const v2 = param(target, "list-type") === "2";
  const encoding = param(target, "encoding-type");
  if (encoding !== undefined && encoding !== "url") throw new S3ErrorReply("InvalidArgument", "Invalid Encoding Method specified in Request", { ArgumentName: "encoding-type", ArgumentValue: encoding });
  return { v2, prefix: param(target, "prefix") ?? "", delimiter: param(target, "delimiter") ?? "", after: afterOf(target, v2), maxKeys: maxKeysOf(target), urlEncoded: encoding === "url" };
}

/** One page of stored keys from s3rver, in order, after `afterHex`. */
async function storedPage(upstream: Upstream, bucket: string, prefixHex: string, afterHex: string): Promise<{ objects: StoredObject[]; truncated: boolean }> {
  const path = `/${bucket}`;
  const query = [`list-type=2`, `max-keys=${PAGE_KEYS}`, ...(prefixHex ? [`prefix=${prefixHex}`] : []), ...(afterHex ? [`start-after=${afterHex}`] : [])].join("&");
  const answer = await exchange(upstream, "GET", `${path}?${query}`, await s3rverHeaders(upstream, "GET", path, undefined, 0), undefined);
  const xml = (await readBody(answer)).toString("utf8");
  const field = (text: string, name: string) => xmlUnescape(new RegExp(`<${name}>([^<]*)</${name}>`).exec(text)?.[1] ?? "");
  if (answer.statusCode !== 200) {
    const bucketName = field(xml, "BucketName");
    throw new S3ErrorReply(field(xml, "Code") || "InternalError", field(xml, "Message"), bucketName ? { BucketName: bucketName } : {});
  }
  const objects = [...xml.matchAll(/<Contents>([\s\S]*?)<\/Contents>/g)].map(([, c]) => ({
    key: fromStored(field(c!, "Key")), lastModified: field(c!, "LastModified"), etag: field(c!, "ETag"), size: field(c!, "Size"),
  }));
  return { objects, truncated: /<IsTruncated>true<\/IsTruncated>/.test(xml) };
}

/** The common prefix a key rolls up into, if the listing has a delimiter and the key has one past the prefix. */
function commonPrefixOf(key: string, q: ListQuery): string | undefined {
  if (!q.delimiter) return undefined;
  const at = key.indexOf(q.delimiter, q.prefix.length);
  return at < 0 ? undefined : key.slice(0, at + q.delimiter.length);
}

/** Up to MaxKeys keys and common prefixes after `q.after`, and whether more follow. */
async function collect(upstream: Upstream, bucket: string, q: ListQuery): Promise<{ entries: Entry[]; truncated: boolean }> {
  if (q.maxKeys === 0) return { entries: [], truncated: false };
  const afterHex = toStored(q.after);
  let cursor = afterHex;
  const entries: Entry[] = [];
  while (entries.length <= q.maxKeys) {
    const page = await storedPage(upstream, bucket, toStored(q.prefix), cursor);
    let seek: string | undefined;
    for (const object of page.objects) {
      cursor = toStored(object.key);
      const prefix = commonPrefixOf(object.key, q);
      if (prefix === undefined) entries.push({ kind: "key", object });
      else {
        // A common prefix at or before the resume point was returned already (moto `_get_results_from_token`).
        if (toStored(prefix) > afterHex) entries.push({ kind: "prefix", prefix });
        seek = toStored(prefix) + PAST_EVERY_HEX;
      }
      if (seek !== undefined || entries.length > q.maxKeys) break;
    }
    if (seek !== undefined) cursor = seek;
    else if (!page.truncated) break;
  }
  return { entries: entries.slice(0, q.maxKeys), truncated: entries.length > q.maxKeys };
}

function listXml(bucket: string, q: ListQuery, target: Target, listed: { entries: Entry[]; truncated: boolean }): string {
  const text = (value: string) => xmlEscape(q.urlEncoded ? encodeURIComponent(value) : value);
  const element = (name: string, value: string | undefined) => (value === undefined ? "" : `<${name}>${value}</${name}>`);
  const owner = !q.v2 || param(target, "fetch-owner") === "true" ? `<Owner><ID>${OWNER.id}</ID><DisplayName>${OWNER.displayName}</DisplayName></Owner>` : "";
  const keys = listed.entries.flatMap((e) => (e.kind === "key" ? [e.object] : []));
  const prefixes = listed.entries.flatMap((e) => (e.kind === "prefix" ? [e.prefix] : []));
  const last = listed.entries.at(-1);
  const paging = q.v2
    ? element("StartAfter", param(target, "start-after") === undefined ? undefined : text(param(target, "start-after")!)) +
      element("ContinuationToken", param(target, "continuation-token")) +
      element("NextContinuationToken", listed.truncated && last ? tokenFor(last) : undefined) +
      element("KeyCount", String(listed.entries.length))
    : element("Marker", text(q.after)) +
      element("NextMarker", listed.truncated && q.delimiter && last ? text(last.kind === "key" ? last.object.key : last.prefix) : undefined);
  return `<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="${S3_XMLNS}">` +
    element("Name", bucket) + element("Prefix", text(q.prefix)) + paging +
    element("MaxKeys", param(target, "max-keys") ?? String(PAGE_KEYS)) + element("Delimiter", q.delimiter ? text(q.delimiter) : undefined) +
    element("EncodingType", q.urlEncoded ? "url" : undefined) + element("IsTruncated", String(listed.truncated)) +
    keys.map((o) => `<Contents><Key>${text(o.key)}</Key><LastModified>${o.lastModified}</LastModified><ETag>${xmlEscape(o.etag)}</ETag><Size>${o.size}</Size>${owner}<StorageClass>STANDARD</StorageClass></Contents>`).join("") +
    prefixes.map((p) => `<CommonPrefixes><Prefix>${text(p)}</Prefix></CommonPrefixes>`).join("") +
    "</ListBucketResult>";
}

export async function listObjects(gate: { upstream: Upstream }, req: IncomingMessage, res: ServerResponse, target: Target, ids: RequestIds): Promise<void> {
  const bucket = target.bucket!;
  const q = queryOf(target);
  const xml = listXml(bucket, q, target, await collect(gate.upstream, bucket, q));
  req.resume();
  res.writeHead(200, { ...idHeaders(ids), "content-type": "application/xml", "content-length": Buffer.byteLength(xml) });
  res.end(xml);
}
