// GetObject and HeadObject byte ranges, answered by the gate as S3 answers them (RFC 9110
// section 14, as S3 applies it): s3rver parses Range itself, wrongly (`bytes=-10` read as the
// first 11 bytes, `bytes=0-0` as the whole object), so it only ever gets an open-ended range
// (`bytes=<first>-`, which it reads right) and the gate cuts the body to the bytes asked for.
// The rules follow moto (getmoto/moto moto/s3/responses.py `_handle_range_header`, which
// records S3's answers; tests/test_s3/test_s3.py `test_ranged_get`).
import type { IncomingMessage } from "node:http";
import { Readable } from "node:stream";
import { headerValue } from "../aws/headers.ts";
import { S3ErrorReply } from "./errors.ts";
import { headStored, type RelayOptions, type Upstream } from "./forward.ts";
import type { Target } from "./request.ts";

/** A single `bytes=` range as sent: either end may be missing (`bytes=-10` is the last 10 bytes). */
export interface RequestedRange {
  header: string;
  first?: number;
  last?: number;
}

/** The bytes to send, both included. */
export interface ByteSpan {
  first: number;
  last: number;
}

/**
 * The range a Range header asks for; undefined when S3 ignores the header and sends the whole
 * object with 200: several ranges (`bytes=0-1,5-6`), anything that is not `bytes=<n>-<n>` with
 * either number optional, or neither number given (moto `_handle_range_header`).
 */
export function parseRange(header: string | undefined): RequestedRange | undefined {
  const match = /^bytes=(\d*)-(\d*)$/.exec(header?.trim() ?? "");
  if (!match || (match[1] === "" && match[2] === "")) return undefined;
  return { header: header!, first: match[1] ? Number(match[1]) : undefined, last: match[2] ? Number(match[2]) : undefined };
}

/**
 * The bytes a range selects from an object of `size` bytes; undefined when S3 sends the whole
 * object instead (a first byte after the last one: `bytes=10-0`; a suffix on an empty object).
 * A range that starts at or past the end, or `bytes=-0`, is 416 InvalidRange naming the range
 * and the object's size; a last byte past the end is clamped to it; `bytes=-N` is the last N bytes.
 */
export function selectRange(range: RequestedRange, size: number): ByteSpan | undefined {
  const end = size - 1;
  if ((range.first === undefined && range.last === 0) || (range.first !== undefined && range.first > end)) {
    throw new S3ErrorReply("InvalidRange", "The requested range is not satisfiable", { RangeRequested: range.header, ActualObjectSize: String(size) });
  }
  const span = range.first === undefined
    ? { first: size - Math.min(range.last!, size), last: end }
    : { first: range.first, last: Math.min(range.last ?? end, end) };
  return span.first > span.last ? undefined : span;
}

/** What the gate does with a read's Range header: the range s3rver gets instead (none: the whole object), and the bytes to cut from its answer. */
export interface RangePlan {
  forwardedRange?: string;
  span?: ByteSpan;
  size?: number;
}

/** The plan for a GetObject or HeadObject: s3rver is asked for the object's size first when the request has a range S3 would honour. */
export async function planRange(upstream: Upstream, req: IncomingMessage, target: Target): Promise<RangePlan> {
  const range = parseRange(headerValue(req, "range"));
  if (!range) return {};
  const head = await headStored(upstream, target.bucket!, target.key!);
  // A missing object is for the read itself to report (NoSuchKey, or AccessDenied without s3:ListBucket).
  if (head.statusCode !== 200) return {};
  const size = Number(head.headers["content-length"]);
  const span = selectRange(range, size);
  return span ? { forwardedRange: `bytes=${span.first}-`, span, size } : {};
}

/** s3rver's answer to the open-ended range, cut to the span asked for, with S3's Content-Range and Content-Length. */
export function rangedReply(upstream: IncomingMessage, plan: RangePlan): RelayOptions | undefined {
  if (!plan.span || upstream.statusCode !== 206) return undefined;
  const { first, last } = plan.span;
  const count = last - first + 1;
  return {
    headers: { "content-length": String(count), "content-range": `bytes ${first}-${last}/${plan.size}` },
    body: Readable.from(firstBytes(upstream, count)),
  };
}

/** The first `count` bytes of `source`; the rest is not read (the source is destroyed once they are out). */
export async function* firstBytes(source: Readable, count: number): AsyncGenerator<Buffer> {
  let left = count;
  for await (const chunk of source as AsyncIterable<Buffer>) {
    const piece = chunk.subarray(0, left);
    left -= piece.length;
    yield piece;
    if (left === 0) break;
  }
}
