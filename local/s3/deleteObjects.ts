// DeleteObjects: per-key permission checks, as S3 does, with errors inside a 200 DeleteResult.
import type { IncomingMessage, ServerResponse } from "node:http";
import { readBody } from "../shared/http.ts";
import { isAllowed, type Caller } from "./auth.ts";
import { readLimited, verifiedBody } from "./body.ts";
import { idHeaders, MESSAGES, notImplemented, S3ErrorReply, xmlEscape, xmlUnescape, type RequestIds } from "./errors.ts";
import { exchange, s3rverHeaders, type Upstream } from "./forward.ts";
import { DELETE_CONCURRENCY, MAX_DELETE_BODY_BYTES, MAX_DELETE_KEYS, S3_XMLNS } from "./limits.ts";
import { objectArn } from "./operations.ts";
import type { Target } from "./request.ts";
import { storedPath } from "./storedKeys.ts";

interface DeleteOutcome {
  key: string;
  error?: { code: string; message: string };
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

function parseDeleteRequest(xml: string): { keys: string[]; quiet: boolean } {
  if (!/<Delete[\s>]/.test(xml)) throw new S3ErrorReply("MalformedXML", MESSAGES.malformedXml);
  const objects = [...xml.matchAll(/<Object>([\s\S]*?)<\/Object>/g)].map((m) => m[1]!);
  const keys = objects.map((o) => /<Key>([\s\S]*?)<\/Key>/.exec(o)?.[1]);
  if (!keys.length || keys.length > MAX_DELETE_KEYS || keys.some((k) => k === undefined)) throw new S3ErrorReply("MalformedXML", MESSAGES.malformedXml);
  if (objects.some((o) => o.includes("<VersionId>"))) throw notImplemented("object versions (VersionId in DeleteObjects)");
  return { keys: keys.map((k) => xmlUnescape(k!)), quiet: /<Quiet>\s*true\s*<\/Quiet>/i.test(xml) };
}

function s3rverErrorOf(xml: string): { code: string; message: string } {
  return { code: /<Code>([^<]*)<\/Code>/.exec(xml)?.[1] ?? "InternalError", message: xmlUnescape(/<Message>([^<]*)<\/Message>/.exec(xml)?.[1] ?? MESSAGES.internal) };
}

/** Deletes one key through s3rver; undefined on success. */
async function deleteInS3rver(upstream: Upstream, bucket: string, key: string): Promise<{ code: string; message: string } | undefined> {
  const rawPath = storedPath(bucket, key);
  const response = await exchange(upstream, "DELETE", rawPath, await s3rverHeaders(upstream, "DELETE", rawPath, undefined, 0), undefined);
  const text = (await readBody(response)).toString("utf8");
  return response.statusCode === 204 || response.statusCode === 200 ? undefined : s3rverErrorOf(text);
}

function deleteResultXml(outcomes: DeleteOutcome[], quiet: boolean): string {
  const entries = outcomes.map(({ key, error }) => error
    ? `<Error><Key>${xmlEscape(key)}</Key><Code>${error.code}</Code><Message>${xmlEscape(error.message)}</Message></Error>`
    : quiet ? "" : `<Deleted><Key>${xmlEscape(key)}</Key></Deleted>`);
  return `<?xml version="1.0" encoding="UTF-8"?>\n<DeleteResult xmlns="${S3_XMLNS}">${entries.join("")}</DeleteResult>`;
}

/**
 * S3 checks s3:DeleteObject per key and reports refusals inside a 200 DeleteResult. s3rver's
 * own DeleteObjects cannot be reused for the allowed keys (its XML parser turns a key like
 * "2024" into a number and fails), so each allowed key is deleted on its own.
 */
export async function deleteObjects(gate: { stsUrl: string; upstream: Upstream }, req: IncomingMessage, res: ServerResponse, target: Target, caller: Caller, ids: RequestIds): Promise<void> {
  const bucket = target.bucket!;
  const { body } = verifiedBody(req, caller);
  const { keys, quiet } = parseDeleteRequest((await readLimited(body, MAX_DELETE_BODY_BYTES)).toString("utf8"));
  const outcomes = await mapLimit(keys, DELETE_CONCURRENCY, async (key): Promise<DeleteOutcome> => {
    const check = { action: "s3:DeleteObject", resource: objectArn(bucket, key) };
    if (!(await isAllowed(gate.stsUrl, caller, check)).allowed) return { key, error: { code: "AccessDenied", message: MESSAGES.accessDenied } };
    const error = await deleteInS3rver(gate.upstream, bucket, key);
    return { key, error: error?.code === "NoSuchKey" ? undefined : error };
  });
  const missingBucket = outcomes.find((o) => o.error?.code === "NoSuchBucket");
  if (missingBucket) throw new S3ErrorReply("NoSuchBucket", "The specified bucket does not exist", { BucketName: bucket });
  const xml = deleteResultXml(outcomes, quiet);
  res.writeHead(200, { ...idHeaders(ids), "content-type": "application/xml", "content-length": Buffer.byteLength(xml) });
  res.end(xml);
}
