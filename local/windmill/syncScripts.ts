// Scripts as `wmill sync push` deploys them to the Windmill stand-in: a linear history of
// versions per path (hash, parent hashes, archived flags), the deployed head of each path
// being what jobs run.
import { createHash, randomUUID } from "node:crypto";
import type { NewScript, Script } from "windmill-client";
import { HttpError, readJson, sendJson, sendText } from "../shared/http.ts";
import { byPath, filterByPath, jsonb, pick, requireItemPath, type JsonObject } from "./records.ts";
import type { Route, ScriptRecord, SyncState, TokenInfo } from "./state.ts";

export function scriptRoutes(): Route[] {
  return [
    ["POST", /^\/api\/w\/([^/]+)\/scripts\/create$/, async (c, res) => {
      const body = await readJson<NewScript>(c.req);
      const hash = createScript(c.ws().sync, body, c.token(), c.url.searchParams.get("skip_if_noop") === "true");
      sendText(res, 201, hash);
    }],
    // The newest version at the path, archived or not (the CLI redeploys an archived one).
    ["GET", /^\/api\/w\/([^/]+)\/scripts\/get\/p\/(.+)$/, (c, res) => sendJson(res, 200, latestScript(c.ws().sync, c.match[2]))],
    ["GET", /^\/api\/w\/([^/]+)\/scripts\/get\/h\/([0-9a-f]+)$/, (c, res) => sendJson(res, 200, scriptVersion(c.ws().sync, c.match[2]))],
    ["GET", /^\/api\/w\/([^/]+)\/scripts\/raw\/p\/(.+)$/, (c, res) => sendText(res, 200, headScript(c.ws().sync, stripScriptExtension(c.match[2])).content)],
    ["GET", /^\/api\/w\/([^/]+)\/scripts\/exists\/p\/(.+)$/, (c, res) => sendJson(res, 200, c.ws().sync.scripts.has(c.match[2]))],
    ["GET", /^\/api\/w\/([^/]+)\/scripts\/history\/p\/(.+)$/, (c, res) => {
      const versions = versionsAt(c.ws().sync, c.match[2]).reverse();
      sendJson(res, 200, versions.map((s) => ({ script_hash: s.hash, created_at: s.created_at, created_by: s.created_by })));
    }],
    ["GET", /^\/api\/w\/([^/]+)\/scripts\/deployment_status\/h\/([0-9a-f]+)$/, (c, res) => {
      const s = scriptVersion(c.ws().sync, c.match[2]);
      sendJson(res, 200, { lock: s.lock ?? null, lock_error_logs: null, job_id: null });
    }],
    ["GET", /^\/api\/w\/([^/]+)\/scripts\/list$/, (c, res) => {
      const sync = c.ws().sync;
      const showArchived = c.url.searchParams.get("show_archived") === "true";
      const rows = showArchived ? latestVersions(sync) : [...sync.scripts.values()];
      sendJson(res, 200, filterByPath(rows, c.url).sort(byPath).map(listedScript));
    }],
    ["POST", /^\/api\/w\/([^/]+)\/scripts\/archive\/p\/(.+)$/, (c, res) => {
      archiveScript(c.ws().sync, c.match[2]);
      sendText(res, 200, c.match[2]);
    }],
    ["POST", /^\/api\/w\/([^/]+)\/scripts\/delete\/p\/(.+)$/, (c, res) => {
      deleteScript(c.ws().sync, c.match[2]);
      sendText(res, 200, c.match[2]);
    }],
  ];
}

/** Fields of NewScript a version keeps as they were sent (what the export writes back). */
const SCRIPT_SETTINGS = [
  "tag", "envs", "concurrent_limit", "concurrency_time_window_s", "concurrency_key", "debounce_key",
  "debounce_delay_s", "debounce_args_to_accumulate", "max_total_debouncing_time", "max_total_debounces_amount",
  "cache_ttl", "cache_ignore_s3_path", "dedicated_worker", "priority", "restart_unless_cancelled", "timeout",
  "delete_after_secs", "visible_to_runner_only", "codebase", "on_behalf_of_email",
  "modules", "labels",
] as const satisfies readonly (keyof NewScript & keyof Script)[];

function createScript(sync: SyncState, body: NewScript, caller: TokenInfo, skipIfNoop: boolean): string {
  requireItemPath(body.path, "script");
  if (typeof body.content !== "string") throw new HttpError(400, `Script ${body.path}: content must be a string`);
  if (!body.language) throw new HttpError(400, `Script ${body.path}: language is required`);
  const head = sync.scripts.get(body.path);
  const parent = parentVersion(sync, body, head);
  const draft: ScriptRecord = {
    workspace_id: caller.workspace,
    hash: "",
    path: body.path,
    parent_hashes: parent ? [parent.hash, ...(parent.parent_hashes ?? [])] : undefined,
    summary: body.summary ?? "",
    description: body.description ?? "",
    content: body.content,
    created_by: caller.username,
    created_at: new Date().toISOString(),
    archived: false,
    schema: isEmptySchema(body.schema) ? parent?.schema : (jsonb(body.schema) as JsonObject),
    deleted: false,
    is_template: body.is_template ?? false,
    extra_perms: parent?.extra_perms ?? {},
    lock: body.lock,
    language: body.language,
    kind: body.kind ?? "script",
    starred: false,
    ws_error_handler_muted: body.ws_error_handler_muted ?? false,
    has_preprocessor: body.has_preprocessor ?? false,
    ...pick(body, SCRIPT_SETTINGS),
  };
  if (skipIfNoop && head && sameScriptVersion(head, draft)) return head.hash;
  const version: ScriptRecord = { ...draft, hash: scriptHash(draft) };
  if (parent) sync.scriptVersions.set(parent.hash, { ...parent, archived: true });
  sync.scriptVersions.set(version.hash, version);
  sync.scripts.set(version.path, version);
  return version.hash;
}

/**
 * Windmill keeps a linear history per path: a new version must name the current head as
 * its parent, or ask the server to pick it (`auto_parent`, what `wmill sync push` sends).
 */
function parentVersion(sync: SyncState, body: NewScript, head: ScriptRecord | undefined): ScriptRecord | undefined {
  if (body.auto_parent) return head;
  if (!body.parent_hash) {
    if (head) throw new HttpError(400, `Path conflict for ${body.path} with non-archived hash ${head.hash}: pass parent_hash or auto_parent`);
    return undefined;
  }
  const parent = scriptVersion(sync, body.parent_hash);
  if (head && parent.hash !== head.hash) {
    throw new HttpError(400, `The lineage must be linear: ${body.parent_hash} is not the head of ${body.path} (${head.hash})`);
  }
  return parent;
}

/** What makes two versions the same deployment (everything but identity and timestamps). */
function sameScriptVersion(a: ScriptRecord, b: ScriptRecord): boolean {
  const defining = (s: ScriptRecord) => JSON.stringify(jsonb({ ...s, hash: "", parent_hashes: null, created_at: "", created_by: "" }));
  return defining(a) === defining(b);
}

/** Windmill hashes are 64-bit, printed as 16 hex digits; each version gets its own. */
function scriptHash(version: ScriptRecord): string {
  return createHash("sha256").update(JSON.stringify(version)).update(randomUUID()).digest("hex").slice(0, 16);
}

function isEmptySchema(schema: NewScript["schema"]): boolean {
  return !schema || Object.keys(schema).length === 0;
}

function headScript(sync: SyncState, path: string): ScriptRecord {
  const script = sync.scripts.get(path);
  if (!script) throw new HttpError(404, `Script not found at path ${path}`);
  return script;
}

function latestScript(sync: SyncState, path: string): ScriptRecord {
  const latest = versionsAt(sync, path).at(-1);
  if (!latest) throw new HttpError(404, `Script not found at path ${path}`);
  return latest;
}

function scriptVersion(sync: SyncState, hash: string): ScriptRecord {
  const script = sync.scriptVersions.get(hash);
  if (!script) throw new HttpError(404, `Script not found at hash ${hash}`);
  return script;
}

/** Versions at a path, oldest first. */
function versionsAt(sync: SyncState, path: string): ScriptRecord[] {
  return [...sync.scriptVersions.values()].filter((s) => s.path === path);
}

/** The newest version of every path ever deployed, archived or not. */
function latestVersions(sync: SyncState): ScriptRecord[] {
  const latest = new Map<string, ScriptRecord>();
  for (const s of sync.scriptVersions.values()) latest.set(s.path, s);
  return [...latest.values()];
}

/** The list endpoint leaves out the code: clients fetch it per script. */
function listedScript(s: ScriptRecord): JsonObject {
  const { content: _content, lock: _lock, schema: _schema, ...rest } = s;
  return rest;
}

function archiveScript(sync: SyncState, path: string): void {
  const versions = versionsAt(sync, path);
  if (versions.length === 0) throw new HttpError(404, `Script not found at path ${path}`);
  for (const v of versions) sync.scriptVersions.set(v.hash, { ...v, archived: true });
  sync.scripts.delete(path);
}

function deleteScript(sync: SyncState, path: string): void {
  const versions = versionsAt(sync, path);
  if (versions.length === 0) throw new HttpError(404, `Script not found at path ${path}`);
  for (const v of versions) sync.scriptVersions.delete(v.hash);
  sync.scripts.delete(path);
}

/** `raw/p/{path}` is asked with the file's extension (`f/x/y.ts`), as import loaders do. */
function stripScriptExtension(path: string): string {
  return path.replace(/\.(bun\.ts|deno\.ts|fetch\.ts|ts|js|py)$/, "");
}
