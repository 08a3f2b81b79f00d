// The request target as S3 reads it (path-style only): bucket, key and query.
import type { IncomingMessage } from "node:http";
import { S3ErrorReply } from "./errors.ts";

interface QueryParam {
  name: string;
  value: string;
  /** As received, for forwarding unchanged. */
  raw: string;
}

export interface Target {
  method: string;
  /** The path as received, still percent-encoded. */
  rawPath: string;
  /** The path as SigV4 canonicalises it for S3: each segment decoded once and encoded once. */
  canonicalPath: string;
  bucket?: string;
  key?: string;
  params: QueryParam[];
}

/** RFC 3986 encoding, as SigV4 canonical requests use it. */
export function uriEscape(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** A percent-encoded component, decoded; S3's InvalidURI when it is not valid UTF-8 percent-encoding. */
export function decodeComponent(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new S3ErrorReply("InvalidURI", "Couldn't parse the specified URI.");
  }
}

function parseQuery(rawQuery: string): QueryParam[] {
  return rawQuery.split("&").filter(Boolean).map((raw) => {
    const eq = raw.indexOf("=");
    // S3 (like SigV4) reads `+` in a query as a plus sign, not a space.
    return eq < 0 ? { name: decodeComponent(raw), value: "", raw } : { name: decodeComponent(raw.slice(0, eq)), value: decodeComponent(raw.slice(eq + 1)), raw };
  });
}

export function parseTarget(req: IncomingMessage): Target {
  const url = req.url ?? "/";
  const q = url.indexOf("?");
  const rawPath = q < 0 ? url : url.slice(0, q);
  const segments = rawPath.split("/").slice(1).map(decodeComponent);
  const [bucket = "", ...keySegments] = segments;
  const key = keySegments.join("/");
  return {
    method: req.method ?? "GET",
    rawPath,
    canonicalPath: `/${segments.map(uriEscape).join("/")}`,
    bucket: bucket || undefined,
    key: key || undefined,
    params: parseQuery(q < 0 ? "" : url.slice(q + 1)),
  };
}

export function param(target: Target, name: string): string | undefined {
  return target.params.find((p) => p.name === name)?.value;
}
