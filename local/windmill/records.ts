// Helpers the stand-in's sync, export and resource routes share to store and list records
// the way Windmill does: jsonb key order, fields kept as sent, item paths and path filters.
import { HttpError } from "../shared/http.ts";

export type JsonObject = Record<string, unknown>;

export const EPOCH = new Date(0).toISOString();

/** Windmill paths: `u/<user>/<name>` or `f/<folder>/<name>`, possibly nested. */
export function requireItemPath(path: string | undefined, what: string): void {
  if (!/^(u|f)\/[\w-]+\/[\w\-./]+$/.test(path ?? "") || path?.endsWith("/")) {
    throw new HttpError(400, `Invalid ${what} path ${JSON.stringify(path)}: expected u/<user>/<name> or f/<folder>/<name>`);
  }
}

/** The `path_start` / `path_exact` filters the list endpoints share. */
export function filterByPath<T extends { path: string }>(rows: T[], url: URL): T[] {
  const start = url.searchParams.get("path_start");
  const exact = url.searchParams.get("path_exact");
  return rows.filter((r) => (!start || r.path.startsWith(start)) && (!exact || r.path === exact));
}

export function byPath(a: { path: string }, b: { path: string }): number {
  return a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
}

export function pick<T extends object, K extends keyof T>(source: T, keys: readonly K[]): Partial<Pick<T, K>> {
  const picked: Partial<Pick<T, K>> = {};
  for (const key of keys) if (source[key] !== undefined) picked[key] = source[key];
  return picked;
}

export function dropUndefined(value: JsonObject): JsonObject {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined));
}

/**
 * A JSON value as Postgres `jsonb` gives it back: object keys ordered shortest first, then
 * bytewise. Windmill keeps schemas, flow values and args in jsonb columns, so that is the
 * order a pull writes them in.
 */
export function jsonb(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(jsonb);
  if (value === null || typeof value !== "object") return value;
  const entries = Object.entries(value).filter(([, v]) => v !== undefined);
  entries.sort(([a], [b]) => jsonbKeyOrder(a, b));
  return Object.fromEntries(entries.map(([k, v]) => [k, jsonb(v)]));
}

function jsonbKeyOrder(a: string, b: string): number {
  const la = Buffer.byteLength(a);
  const lb = Buffer.byteLength(b);
  return la !== lb ? la - lb : Buffer.compare(Buffer.from(a), Buffer.from(b));
}
