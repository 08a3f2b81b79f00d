// The part of the Windmill stand-in's API that `wmill sync push` / `wmill sync pull` use:
// scripts, flows, folders, schedules and resource types of a workspace, the tarball the CLI
// diffs against, and the user/workspace look-ups the CLI makes on the way.
//
// Records are stored in the shapes the API returns (the OpenAPI types of windmill-client),
// with JSON columns (schemas, flow values, args) normalised the way Postgres `jsonb` stores
// them, so reads look like a real instance's. The workspace tarball follows windmill-api's
// export field for field: the CLI diffs it against the repo and writes it out on pull.
import { createHash, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import type { ServerResponse } from "node:http";
import { builtinModules, createRequire } from "node:module";
import { join } from "node:path";
import type {
  EditResourceType,
  EditSchedule,
  Flow,
  Folder,
  NewSchedule,
  NewScript,
  OpenFlowWPath,
  Schedule,
  Script,
  ScriptLang,
} from "windmill-client";
import { initSync, parse_ts_imports, parse_ts_relative_imports } from "windmill-parser-wasm-ts";
import { HttpError, readJson, sendJson, sendText } from "./shared/http.ts";
import { checkCron } from "./windmill_schedules.ts";
import type { ResourceType, Route, RouteContext, TokenInfo, WorkspaceState } from "./windmill.ts";

/** A script version as `GET /scripts/get/h/{hash}` returns it. */
export type ScriptRecord = Script;
/** A flow as `GET /flows/get/{path}` returns it; `value` is the OpenFlow the job engine runs. */
export type FlowRecord = Flow;
/** A folder as `GET /folders/get/{name}` returns it (the server sends display_name; the spec omits it). */
export type FolderRecord = Folder & { display_name: string };
/** A schedule as `GET /schedules/get/{path}` returns it. */
export type ScheduleRecord = Schedule;

export interface SyncState {
  /** The deployed head version of each script path (archived paths are absent): what jobs run. */
  scripts: Map<string, ScriptRecord>;
  /** Every version ever deployed, by hash, archived ones included. */
  scriptVersions: Map<string, ScriptRecord>;
  flows: Map<string, FlowRecord>;
  folders: Map<string, FolderRecord>;
  schedules: Map<string, ScheduleRecord>;
  /** Lock (dependencies) jobs `wmill generate-metadata` asked for, kept for it to poll. */
  dependencyJobs: Map<string, DependencyJob>;
  /** Local script versions the CLI uploads (by SHA-256) so lock jobs resolve imports to them. */
  tempScripts: Map<string, string>;
}

/** What the sync routes need to know about the rest of the stand-in. */
export interface SyncHost {
  /** Types every workspace sees but none owns (they live in the instance's `admins` workspace). */
  hubResourceTypes: ReadonlySet<string>;
  /** The repo: lock jobs pin npm packages to the versions installed in its node_modules. */
  workspaceDir: string;
}

export function createSyncState(): SyncState {
  return {
    scripts: new Map(), scriptVersions: new Map(), flows: new Map(), folders: new Map(), schedules: new Map(), dependencyJobs: new Map(), tempScripts: new Map(),
  };
}

export function syncRoutes(host: SyncHost): Route[] {
  return [...userRoutes(), ...scriptRoutes(), ...flowRoutes(), ...folderRoutes(), ...scheduleRoutes(), ...resourceTypeRoutes(), ...workspaceRoutes(host), ...dependencyRoutes(host)];
}

type JsonObject = Record<string, unknown>;

// ---------------------------------------------------------------- users and workspaces

function userRoutes(): Route[] {
  return [
    ["GET", /^\/api\/users\/whoami$/, (c, res) => {
      const t = c.token();
      sendJson(res, 200, {
        email: t.email, username: t.username, login_type: "password", super_admin: false, verified: true,
        first_time_user: false, role_source: "manual", disabled: false,
      });
    }],
    ["GET", /^\/api\/workspaces\/users$/, (c, res) => {
      const t = c.token();
      sendJson(res, 200, {
        email: t.email,
        workspaces: [{ id: t.workspace, name: t.workspace, username: t.username, color: "", parent_workspace_id: null, is_dev_workspace: false, disabled: false }],
      });
    }],
    // Each stand-in token belongs to one workspace, and the stand-in serves one per instance.
    ["POST", /^\/api\/workspaces\/exists$/, async (c, res) => {
      const body = await readJson<{ id?: string }>(c.req);
      sendJson(res, 200, body.id === c.token().workspace);
    }],
    ["GET", /^\/api\/w\/([^/]+)\/users\/list$/, (c, res) => {
      c.ws();
      const t = c.token();
      sendJson(res, 200, [workspaceUser(t)]);
    }],
  ];
}

function workspaceUser(t: TokenInfo): JsonObject {
  return {
    email: t.email, username: t.username, is_admin: true, is_super_admin: false, operator: false, disabled: false,
    created_at: EPOCH, groups: [], folders: [], folders_read: [], folders_owners: [],
  };
}

// ---------------------------------------------------------------- scripts

function scriptRoutes(): Route[] {
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

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
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

// ---------------------------------------------------------------- flows

/** Fields of OpenFlowWPath a flow keeps as they were sent. */
const FLOW_SETTINGS = [
  "tag", "dedicated_worker", "timeout", "priority", "on_behalf_of_email", "labels",
] as const satisfies readonly (keyof OpenFlowWPath & keyof Flow)[];

function flowRoutes(): Route[] {
  return [
    ["POST", /^\/api\/w\/([^/]+)\/flows\/create$/, async (c, res) => {
      const body = await readJson<OpenFlowWPath>(c.req);
      const sync = c.ws().sync;
      requireItemPath(body.path, "flow");
      if (sync.flows.has(body.path)) throw new HttpError(400, `Flow ${body.path} already exists`);
      sync.flows.set(body.path, flowRecord(body, c.token(), undefined));
      sendText(res, 201, body.path);
    }],
    ["POST", /^\/api\/w\/([^/]+)\/flows\/update\/(.+)$/, async (c, res) => {
      const body = await readJson<OpenFlowWPath>(c.req);
      const sync = c.ws().sync;
      const current = getFlow(sync, c.match[2]);
      const path = body.path ?? current.path;
      requireItemPath(path, "flow");
      if (path !== current.path && sync.flows.has(path)) throw new HttpError(400, `Flow ${path} already exists`);
      sync.flows.delete(current.path);
      sync.flows.set(path, flowRecord({ ...body, path }, c.token(), current));
      sendText(res, 200, path);
    }],
    ["GET", /^\/api\/w\/([^/]+)\/flows\/get\/(.+)$/, (c, res) => sendJson(res, 200, getFlow(c.ws().sync, c.match[2]))],
    ["GET", /^\/api\/w\/([^/]+)\/flows\/exists\/(.+)$/, (c, res) => sendJson(res, 200, c.ws().sync.flows.has(c.match[2]))],
    ["GET", /^\/api\/w\/([^/]+)\/flows\/deployment_status\/p\/(.+)$/, (c, res) => {
      getFlow(c.ws().sync, c.match[2]);
      sendJson(res, 200, { lock_error_logs: null, job_id: null });
    }],
    ["GET", /^\/api\/w\/([^/]+)\/flows\/list$/, (c, res) => {
      const showArchived = c.url.searchParams.get("show_archived") === "true";
      const rows = [...c.ws().sync.flows.values()].filter((f) => showArchived || !f.archived);
      sendJson(res, 200, filterByPath(rows, c.url).sort(byPath).map(listedFlow));
    }],
    ["POST", /^\/api\/w\/([^/]+)\/flows\/archive\/(.+)$/, async (c, res) => {
      const body = await readJson<{ archived?: boolean }>(c.req);
      const sync = c.ws().sync;
      const flow = getFlow(sync, c.match[2]);
      sync.flows.set(flow.path, { ...flow, archived: body.archived ?? true });
      sendText(res, 200, flow.path);
    }],
    ["DELETE", /^\/api\/w\/([^/]+)\/flows\/delete\/(.+)$/, (c, res) => {
      const sync = c.ws().sync;
      sync.flows.delete(getFlow(sync, c.match[2]).path);
      sendText(res, 200, c.match[2]);
    }],
  ];
}

function flowRecord(body: OpenFlowWPath, caller: TokenInfo, previous: FlowRecord | undefined): FlowRecord {
  if (!body.value || !Array.isArray(body.value.modules)) throw new HttpError(400, `Flow ${body.path}: value.modules must be an array`);
  return {
    workspace_id: caller.workspace,
    path: body.path,
    summary: body.summary ?? "",
    description: body.description ?? "",
    value: jsonb(body.value) as FlowRecord["value"],
    schema: body.schema === undefined ? undefined : (jsonb(body.schema) as JsonObject),
    edited_by: caller.username,
    edited_at: new Date().toISOString(),
    archived: false,
    extra_perms: previous?.extra_perms ?? {},
    version_id: (previous?.version_id ?? 0) + 1,
    ws_error_handler_muted: body.ws_error_handler_muted,
    visible_to_runner_only: body.visible_to_runner_only,
    ...pick(body, FLOW_SETTINGS),
  };
}

function getFlow(sync: SyncState, path: string): FlowRecord {
  const flow = sync.flows.get(path);
  if (!flow) throw new HttpError(404, `Flow not found at path ${path}`);
  return flow;
}

function listedFlow(f: FlowRecord): JsonObject {
  const { value: _value, schema: _schema, ...rest } = f;
  return { ...rest, starred: false, has_draft: false };
}

// ---------------------------------------------------------------- folders

interface FolderWrite {
  name?: string;
  summary?: string;
  display_name?: string;
  owners?: string[];
  extra_perms?: Record<string, boolean>;
  default_permissioned_as?: Folder["default_permissioned_as"];
  labels?: string[];
}

function folderRoutes(): Route[] {
  return [
    ["POST", /^\/api\/w\/([^/]+)\/folders\/create$/, async (c, res) => {
      const body = await readJson<FolderWrite>(c.req);
      const sync = c.ws().sync;
      const name = body.name ?? "";
      if (!/^[a-zA-Z_0-9-]+$/.test(name)) throw new HttpError(400, "Folder name can only contain alphanumeric characters, underscores, and hyphens");
      if (sync.folders.has(name)) throw new HttpError(400, `Folder ${name} already exists`);
      sync.folders.set(name, newFolder(name, body, c.token()));
      sendText(res, 200, `Created folder ${name}`);
    }],
    ["POST", /^\/api\/w\/([^/]+)\/folders\/update\/([^/]+)$/, async (c, res) => {
      const body = await readJson<FolderWrite>(c.req);
      const sync = c.ws().sync;
      const folder = getFolder(sync, c.match[2]);
      sync.folders.set(folder.name, updatedFolder(folder, body));
      sendText(res, 200, `Updated folder ${folder.name}`);
    }],
    ["GET", /^\/api\/w\/([^/]+)\/folders\/get\/([^/]+)$/, (c, res) => sendJson(res, 200, getFolder(c.ws().sync, c.match[2]))],
    ["GET", /^\/api\/w\/([^/]+)\/folders\/exists\/([^/]+)$/, (c, res) => sendJson(res, 200, c.ws().sync.folders.has(c.match[2]))],
    ["GET", /^\/api\/w\/([^/]+)\/folders\/list$/, (c, res) =>
      sendJson(res, 200, [...c.ws().sync.folders.values()].sort((a, b) => a.name.localeCompare(b.name)))],
    ["GET", /^\/api\/w\/([^/]+)\/folders\/listnames$/, (c, res) => sendJson(res, 200, [...c.ws().sync.folders.keys()].sort())],
    ["DELETE", /^\/api\/w\/([^/]+)\/folders\/delete\/([^/]+)$/, (c, res) => {
      const sync = c.ws().sync;
      sync.folders.delete(getFolder(sync, c.match[2]).name);
      sendText(res, 200, `Deleted folder ${c.match[2]}`);
    }],
  ];
}

/** Windmill makes the creator an owner (with write access) whatever the request says. */
function newFolder(name: string, body: FolderWrite, caller: TokenInfo): FolderRecord {
  const creator = `u/${caller.username}`;
  const owners = [...new Set([...(body.owners ?? []), creator])];
  const extraPerms = { ...(body.extra_perms ?? {}), ...Object.fromEntries(owners.map((o) => [o, true])) };
  return {
    name,
    display_name: body.display_name ?? name,
    owners,
    extra_perms: jsonb(extraPerms) as Record<string, boolean>,
    summary: body.summary,
    created_by: caller.username,
    edited_at: new Date().toISOString(),
    default_permissioned_as: body.default_permissioned_as ?? [],
    labels: body.labels?.length ? [...new Set(body.labels)] : undefined,
  };
}

/** An admin's update sets exactly what it names (Windmill re-adds the caller only for non-admins). */
function updatedFolder(folder: FolderRecord, body: FolderWrite): FolderRecord {
  return {
    ...folder,
    display_name: body.display_name ?? folder.display_name,
    summary: body.summary ?? folder.summary,
    owners: body.owners ?? folder.owners,
    extra_perms: body.extra_perms ? (jsonb(body.extra_perms) as Record<string, boolean>) : folder.extra_perms,
    default_permissioned_as: body.default_permissioned_as ?? folder.default_permissioned_as,
    labels: body.labels ? (body.labels.length ? [...new Set(body.labels)] : undefined) : folder.labels,
    edited_at: new Date().toISOString(),
  };
}

function getFolder(sync: SyncState, name: string): FolderRecord {
  const folder = sync.folders.get(name);
  if (!folder) throw new HttpError(404, `Folder not found: ${name}`);
  return folder;
}

// ---------------------------------------------------------------- schedules

/** Fields of NewSchedule/EditSchedule a schedule keeps as they were sent. */
const SCHEDULE_SETTINGS = [
  "on_failure", "on_failure_times", "on_failure_exact", "on_failure_extra_args", "on_recovery", "on_recovery_times",
  "on_recovery_extra_args", "on_success", "on_success_extra_args", "retry", "summary", "description", "tag",
  "paused_until", "cron_version", "dynamic_skip", "labels",
] as const satisfies readonly (keyof EditSchedule & keyof Schedule)[];

function scheduleRoutes(): Route[] {
  return [
    ["POST", /^\/api\/w\/([^/]+)\/schedules\/create$/, async (c, res) => {
      const body = await readJson<NewSchedule>(c.req);
      const sync = c.ws().sync;
      const caller = c.token();
      requireItemPath(body.path, "schedule");
      requireItemPath(body.script_path, body.is_flow ? "flow" : "script");
      if (sync.schedules.has(body.path)) throw new HttpError(400, `Schedule ${body.path} already exists`);
      const target: ScheduleTarget = {
        script_path: body.script_path, is_flow: body.is_flow, enabled: body.enabled ?? false,
        email: caller.email, permissioned_as: `u/${caller.username}`, extra_perms: {},
      };
      sync.schedules.set(body.path, scheduleRecord(body.path, body, target, caller));
      sendText(res, 200, body.path);
    }],
    ["POST", /^\/api\/w\/([^/]+)\/schedules\/update\/(.+)$/, async (c, res) => {
      const body = await readJson<EditSchedule>(c.req);
      const sync = c.ws().sync;
      const current = getSchedule(sync, c.match[2]);
      sync.schedules.set(current.path, scheduleRecord(current.path, body, current, c.token()));
      sendText(res, 200, current.path);
    }],
    ["POST", /^\/api\/w\/([^/]+)\/schedules\/setenabled\/(.+)$/, async (c, res) => {
      const body = await readJson<{ enabled: boolean }>(c.req);
      const sync = c.ws().sync;
      const current = getSchedule(sync, c.match[2]);
      if (typeof body.enabled !== "boolean") throw new HttpError(400, "enabled must be a boolean");
      sync.schedules.set(current.path, { ...current, enabled: body.enabled, edited_at: new Date().toISOString() });
      sendText(res, 200, `succesfully updated schedule at path ${current.path} to status ${body.enabled}`);
    }],
    ["GET", /^\/api\/w\/([^/]+)\/schedules\/get\/(.+)$/, (c, res) => sendJson(res, 200, getSchedule(c.ws().sync, c.match[2]))],
    ["GET", /^\/api\/w\/([^/]+)\/schedules\/exists\/(.+)$/, (c, res) => sendJson(res, 200, c.ws().sync.schedules.has(c.match[2]))],
    ["GET", /^\/api\/w\/([^/]+)\/schedules\/list$/, (c, res) =>
      sendJson(res, 200, filterByPath([...c.ws().sync.schedules.values()], c.url).sort(byPath))],
    ["DELETE", /^\/api\/w\/([^/]+)\/schedules\/delete\/(.+)$/, (c, res) => {
      const sync = c.ws().sync;
      sync.schedules.delete(getSchedule(sync, c.match[2]).path);
      sendText(res, 200, `schedule ${c.match[2]} deleted`);
    }],
  ];
}

/** What only create (and setenabled) sets: an update keeps it. */
type ScheduleTarget = Pick<ScheduleRecord, "script_path" | "is_flow" | "enabled" | "email" | "permissioned_as" | "extra_perms">;

function scheduleRecord(path: string, body: EditSchedule, target: ScheduleTarget, caller: TokenInfo): ScheduleRecord {
  try {
    checkCron(body.schedule ?? "", body.timezone ?? "");
  } catch (err) {
    throw new HttpError(400, `Schedule ${path}: ${(err as Error).message}`);
  }
  return {
    path,
    edited_by: caller.username,
    edited_at: new Date().toISOString(),
    schedule: body.schedule,
    timezone: body.timezone,
    enabled: target.enabled,
    script_path: target.script_path,
    is_flow: target.is_flow,
    args: body.args ? (jsonb(body.args) as ScheduleRecord["args"]) : null,
    extra_perms: target.extra_perms,
    email: target.email,
    permissioned_as: target.permissioned_as,
    ws_error_handler_muted: body.ws_error_handler_muted ?? false,
    no_flow_overlap: body.no_flow_overlap ?? false,
    ...pick(body, SCHEDULE_SETTINGS),
  };
}

function getSchedule(sync: SyncState, path: string): ScheduleRecord {
  const schedule = sync.schedules.get(path);
  if (!schedule) throw new HttpError(404, `Schedule not found at path ${path}`);
  return schedule;
}

// ---------------------------------------------------------------- resource types

/** The ones windmill.ts does not serve (create, exists and list live there). */
function resourceTypeRoutes(): Route[] {
  return [
    ["GET", /^\/api\/w\/([^/]+)\/resources\/type\/get\/([^/]+)$/, (c, res) => {
      const t = getResourceType(c.ws(), c.match[2]);
      sendJson(res, 200, { workspace_id: c.match[1], ...t, schema: jsonb(t.schema) });
    }],
    ["POST", /^\/api\/w\/([^/]+)\/resources\/type\/update\/([^/]+)$/, async (c, res) => {
      const body = await readJson<EditResourceType>(c.req);
      const ws = c.ws();
      const current = getResourceType(ws, c.match[2]);
      ws.resourceTypes.set(current.name, {
        ...current,
        schema: body.schema === undefined ? current.schema : body.schema,
        description: body.description ?? current.description,
      });
      sendText(res, 200, current.name);
    }],
    ["DELETE", /^\/api\/w\/([^/]+)\/resources\/type\/delete\/([^/]+)$/, (c, res) => {
      const ws = c.ws();
      ws.resourceTypes.delete(getResourceType(ws, c.match[2]).name);
      sendText(res, 200, `resource_type ${c.match[2]} deleted`);
    }],
    // Types whose resources are whole files (none here): the CLI asks before every sync.
    ["GET", /^\/api\/w\/([^/]+)\/resources\/file_resource_type_to_file_ext_map$/, (c, res) => {
      c.ws();
      sendJson(res, 200, {});
    }],
  ];
}

function getResourceType(ws: WorkspaceState, name: string): ResourceType {
  const t = ws.resourceTypes.get(name);
  if (!t) throw new HttpError(404, `Resource type not found: ${name}`);
  return t;
}

// ---------------------------------------------------------------- the workspace tarball

function workspaceRoutes(host: SyncHost): Route[] {
  return [
    // Items pinned per workspace (`wmill.yaml` workspaces.<name>.specificItems): none here.
    ["GET", /^\/api\/w\/([^/]+)\/workspaces\/list_ws_specific$/, (c, res) => {
      c.ws();
      sendJson(res, 200, []);
    }],
    ["GET", /^\/api\/w\/([^/]+)\/workspaces\/tarball$/, (c, res) => sendTarball(c, res, host)],
    // Shared UI files (the workspace's `ui/` folder), which a pull also fetches: none here.
    ["GET", /^\/api\/w\/([^/]+)\/shared_ui\/get$/, (c, res) => {
      c.ws();
      sendJson(res, 200, { files: {}, version: 0, edited_at: EPOCH, edited_by: c.token().username });
    }],
  ];
}

/**
 * `wmill sync pull` and `push` both start from this archive. Windmill serves tar always
 * and zip only when built with its `zip` feature; this one is a build without it, which
 * the CLI handles by asking again for tar.
 */
function sendTarball(c: RouteContext, res: ServerResponse, host: SyncHost): void {
  const ws = c.ws();
  const archiveType = c.url.searchParams.get("archive_type") ?? "tar";
  if (archiveType !== "tar") throw new HttpError(400, `Invalid Archive Type ${archiveType}`);
  const options: ExportOptions = {
    skipResourceTypes: c.url.searchParams.get("skip_resource_types") === "true",
    includeSchedules: c.url.searchParams.get("include_schedules") === "true",
    defaultTs: c.url.searchParams.get("default_ts") ?? "deno",
    preserveExtraPerms: c.url.searchParams.get("preserve_extra_perms") === "true",
  };
  const tar = tarArchive(exportWorkspace(ws, host, options));
  res.writeHead(200, {
    "content-type": "application/octet-stream",
    "content-disposition": `attachment; filename="windmill-${ws.id}.tar"`,
    "content-length": tar.length,
  });
  res.end(tar);
}

interface ExportOptions {
  skipResourceTypes: boolean;
  includeSchedules: boolean;
  /** `bun`: bun scripts are `.ts`, deno ones `.deno.ts`; otherwise the reverse. */
  defaultTs: string;
  /** Surface non-empty ACLs of scripts and flows (`wmill sync pull` asks for it). */
  preserveExtraPerms: boolean;
}

/**
 * The files of Windmill's workspace export (windmill-api `tarball_workspace`): JSON
 * pretty-printed with the server's field order, bookkeeping fields (ids, paths, authors,
 * timestamps) left out. The CLI turns the JSON into the YAML files of the repo.
 */
function exportWorkspace(ws: WorkspaceState, host: SyncHost, options: ExportOptions): Map<string, string> {
  const files = new Map<string, string>();
  const put = (path: string, value: unknown) => files.set(path, JSON.stringify(value, null, 2));
  for (const folder of ws.sync.folders.values()) put(`f/${folder.name}/folder.meta.json`, exportedFolder(folder));
  for (const script of ws.sync.scripts.values()) {
    files.set(`${script.path}.${scriptExtension(script.language, options.defaultTs)}`, script.content);
    put(`${script.path}.script.json`, exportedScriptMetadata(script, options));
  }
  if (!options.skipResourceTypes) {
    for (const t of ws.resourceTypes.values()) {
      if (!host.hubResourceTypes.has(t.name)) put(`${t.name}.resource-type.json`, exportedResourceType(t));
    }
  }
  for (const flow of ws.sync.flows.values()) {
    if (!flow.archived) put(`${flow.path}.flow.json`, exportedFlow(flow, options));
  }
  if (options.includeSchedules) {
    for (const schedule of ws.sync.schedules.values()) put(`${schedule.path}.schedule.json`, exportedSchedule(schedule));
  }
  return files;
}

function exportedFolder(f: FolderRecord): JsonObject {
  return dropUndefined({
    display_name: f.display_name,
    owners: f.owners,
    extra_perms: f.extra_perms,
    summary: f.summary ?? null,
    default_permissioned_as: f.default_permissioned_as?.length ? f.default_permissioned_as : undefined,
    labels: f.labels,
  });
}

/** windmill-api `ScriptMetadata`: schema and lock are always present (null when unset). */
function exportedScriptMetadata(s: ScriptRecord, options: ExportOptions): JsonObject {
  return dropUndefined({
    summary: s.summary,
    description: s.description,
    schema: s.schema ?? null,
    lock: s.lock ?? null,
    kind: s.kind,
    envs: s.envs,
    cache_ttl: s.cache_ttl,
    dedicated_worker: s.dedicated_worker,
    ws_error_handler_muted: s.ws_error_handler_muted ? true : undefined,
    priority: s.priority,
    tag: s.tag,
    timeout: s.timeout,
    delete_after_secs: s.delete_after_secs,
    restart_unless_cancelled: s.restart_unless_cancelled,
    visible_to_runner_only: s.visible_to_runner_only,
    codebase: s.codebase,
    has_preprocessor: s.has_preprocessor ? true : undefined,
    on_behalf_of_email: s.on_behalf_of_email,
    modules: s.modules ?? undefined,
    concurrency_key: s.concurrency_key,
    concurrent_limit: s.concurrent_limit,
    concurrency_time_window_s: s.concurrency_time_window_s,
    debounce_key: s.debounce_key,
    debounce_delay_s: s.debounce_delay_s,
    debounce_args_to_accumulate: s.debounce_args_to_accumulate,
    max_total_debouncing_time: s.max_total_debouncing_time,
    max_total_debounces_amount: s.max_total_debounces_amount,
    labels: s.labels,
    extra_perms: options.preserveExtraPerms && Object.keys(s.extra_perms).length ? s.extra_perms : undefined,
  });
}

function exportedResourceType(t: ResourceType): JsonObject {
  return { schema: jsonb(t.schema), description: t.description, format_extension: null, is_fileset: false };
}

function exportedFlow(f: FlowRecord, options: ExportOptions): JsonObject {
  return dropUndefined({
    summary: f.summary,
    description: f.description ?? "",
    value: f.value,
    schema: f.schema ?? null,
    extra_perms: options.preserveExtraPerms && Object.keys(f.extra_perms).length ? f.extra_perms : undefined,
    dedicated_worker: f.dedicated_worker,
    tag: f.tag,
    ws_error_handler_muted: f.ws_error_handler_muted ? true : undefined,
    timeout: f.timeout,
    visible_to_runner_only: f.visible_to_runner_only ? true : undefined,
    on_behalf_of_email: f.on_behalf_of_email,
    labels: f.labels,
  });
}

/** windmill-types `Schedule` minus what the export strips (path, editor, permissioned_as, error, extra_perms). */
function exportedSchedule(s: ScheduleRecord): JsonObject {
  return dropUndefined({
    schedule: s.schedule,
    timezone: s.timezone,
    enabled: s.enabled,
    script_path: s.script_path,
    is_flow: s.is_flow,
    args: s.args ?? null,
    email: s.email,
    on_failure: s.on_failure ?? undefined,
    on_failure_times: s.on_failure_times ?? undefined,
    on_failure_exact: s.on_failure_exact ?? undefined,
    on_failure_extra_args: s.on_failure_extra_args ?? undefined,
    on_recovery: s.on_recovery ?? undefined,
    on_recovery_times: s.on_recovery_times ?? undefined,
    on_recovery_extra_args: s.on_recovery_extra_args ?? undefined,
    on_success: s.on_success ?? undefined,
    on_success_extra_args: s.on_success_extra_args ?? undefined,
    ws_error_handler_muted: s.ws_error_handler_muted ?? false,
    retry: s.retry ?? undefined,
    no_flow_overlap: s.no_flow_overlap ?? false,
    summary: s.summary ?? undefined,
    description: s.description ?? undefined,
    tag: s.tag ?? undefined,
    paused_until: s.paused_until ?? undefined,
    cron_version: s.cron_version ?? undefined,
    dynamic_skip: s.dynamic_skip ?? undefined,
    labels: s.labels,
  });
}

/** windmill-api's extension per language, `defaultTs` deciding which TypeScript runtime gets plain `.ts`. */
function scriptExtension(language: ScriptLang, defaultTs: string): string {
  const bunDefault = defaultTs === "bun";
  const extensions: Record<ScriptLang, string> = {
    python3: "py", deno: bunDefault ? "deno.ts" : "ts", go: "go", bash: "sh", powershell: "ps1",
    postgresql: "pg.sql", mysql: "my.sql", bigquery: "bq.sql", snowflake: "sf.sql", mssql: "ms.sql",
    oracledb: "odb.sql", graphql: "gql", nativets: "fetch.ts", bun: bunDefault ? "ts" : "bun.ts",
    bunnative: bunDefault ? "ts" : "bun.ts", php: "php", rust: "rs", ansible: "playbook.yml", csharp: "cs",
    nu: "nu", java: "java", ruby: "rb", rlang: "r", duckdb: "duckdb.sql", dbt: "dbt.yaml",
  };
  return extensions[language];
}

// ---------------------------------------------------------------- lock (dependencies) jobs

/**
 * A dependencies job. Windmill runs it on a worker (bun build over the script and the
 * workspace scripts it imports); here it is computed when asked and kept so the CLI can
 * poll it like any job.
 */
export interface DependencyJob {
  id: string;
  kind: "dependencies" | "flowdependencies";
  path: string;
  createdBy: string;
  createdAt: string;
  success: boolean;
  result: unknown;
}

/** Workspace path -> hash of an uploaded local version (`scripts/raw_temp/store`). */
type TempScriptRefs = Record<string, string> | null | undefined;

interface DependenciesRequest {
  raw_scripts: { raw_code: string; language: ScriptLang; script_path: string }[];
  entrypoint?: string;
  temp_script_refs?: TempScriptRefs;
}

interface FlowDependenciesRequest {
  flow_value: FlowRecord["value"];
  path: string;
  temp_script_refs?: TempScriptRefs;
}

/** Where a lock job looks up the workspace scripts a script imports. */
interface ImportContext {
  host: SyncHost;
  sync: SyncState;
  tempRefs: TempScriptRefs;
}

function dependencyRoutes(host: SyncHost): Route[] {
  return [
    ["POST", /^\/api\/w\/([^/]+)\/jobs\/run\/dependencies_async$/, async (c, res) => {
      const body = await readJson<DependenciesRequest>(c.req);
      const sync = c.ws().sync;
      const entry = body.raw_scripts?.find((s) => s.script_path === body.entrypoint) ?? body.raw_scripts?.[0];
      if (!entry) throw new HttpError(400, "raw_scripts must hold the script to lock");
      const ctx: ImportContext = { host, sync, tempRefs: body.temp_script_refs };
      const job = runDependencyJob(sync, c.token(), "dependencies", entry.script_path, () => ({ lock: scriptLock(ctx, entry.script_path, entry.raw_code, entry.language) }));
      sendText(res, 201, job.id);
    }],
    ["POST", /^\/api\/w\/([^/]+)\/jobs\/run\/flow_dependencies_async$/, async (c, res) => {
      const body = await readJson<FlowDependenciesRequest>(c.req);
      const sync = c.ws().sync;
      const ctx: ImportContext = { host, sync, tempRefs: body.temp_script_refs };
      const job = runDependencyJob(sync, c.token(), "flowdependencies", body.path, () => ({ updated_flow_value: lockedFlowValue(ctx, body.path, body.flow_value) }));
      sendText(res, 201, job.id);
    }],
    // The CLI uploads the local versions of imported scripts that differ from the deployed ones.
    ["POST", /^\/api\/w\/([^/]+)\/scripts\/raw_temp\/diff$/, async (c, res) => {
      const body = await readJson<{ scripts?: Record<string, string>; workspace_deps?: { path: string }[] }>(c.req);
      const sync = c.ws().sync;
      const changed = Object.entries(body.scripts ?? {}).filter(([path, hash]) => {
        const deployed = sync.scripts.get(path);
        return !deployed || sha256(deployed.content) !== hash;
      });
      // The stand-in keeps no workspace dependency files, so any the CLI has differ.
      sendJson(res, 200, [...changed.map(([path]) => path), ...(body.workspace_deps ?? []).map((d) => d.path)]);
    }],
    ["POST", /^\/api\/w\/([^/]+)\/scripts\/raw_temp\/store$/, async (c, res) => {
      const content = await readJson<string>(c.req);
      if (typeof content !== "string") throw new HttpError(400, "the body must be the script content as a JSON string");
      const hash = sha256(content);
      c.ws().sync.tempScripts.set(hash, content);
      sendText(res, 200, hash);
    }],
    // After a push the CLI looks for lock jobs the deployment started; the stand-in starts none at deploy time.
    ["GET", /^\/api\/w\/([^/]+)\/jobs\/queue\/list$/, (c, res) => {
      c.ws();
      requireDependencyKinds(c.url);
      sendJson(res, 200, []);
    }],
    ["GET", /^\/api\/w\/([^/]+)\/jobs\/completed\/list$/, (c, res) => {
      const sync = c.ws().sync;
      requireDependencyKinds(c.url);
      const after = c.url.searchParams.get("created_after");
      const success = c.url.searchParams.get("success");
      const jobs = [...sync.dependencyJobs.values()]
        .filter((j) => (!after || j.createdAt >= after) && (success === null || String(j.success) === success))
        .map((j) => ({ id: j.id, job_kind: j.kind, script_path: j.path, created_by: j.createdBy, created_at: j.createdAt, success: j.success, result: j.result }));
      sendJson(res, 200, jobs);
    }],
  ];
}

/** The job lists here serve lock jobs only; script and flow runs are listed by `/jobs/list`. */
function requireDependencyKinds(url: URL): void {
  const kinds = url.searchParams.get("job_kinds") ?? "";
  if (kinds.split(",").some((k) => k !== "dependencies" && k !== "flowdependencies")) {
    throw new HttpError(400, `The stand-in lists only dependencies jobs here (job_kinds=${kinds}); use /jobs/list for runs`);
  }
}

function runDependencyJob(sync: SyncState, caller: TokenInfo, kind: DependencyJob["kind"], path: string, compute: () => JsonObject): DependencyJob {
  const job: DependencyJob = { id: randomUUID(), kind, path, createdBy: caller.username, createdAt: new Date().toISOString(), success: true, result: null };
  try {
    job.result = compute();
  } catch (err) {
    job.success = false;
    job.result = { error: { name: "ExecutionErr", message: err instanceof Error ? err.message : String(err) } };
  }
  sync.dependencyJobs.set(job.id, job);
  return job;
}

/** What `GET /jobs_u/completed/get_result_maybe/{id}` answers for a lock job (windmill.ts asks here first). */
export function dependencyJobResult(sync: SyncState | undefined, id: string): JsonObject | undefined {
  const job = sync?.dependencyJobs.get(id);
  return job && { completed: true, started: true, success: job.success, result: job.result };
}

/** Languages whose scripts Windmill locks with bun (TypeScript on the bun runtime). */
const BUN_LANGUAGES: readonly ScriptLang[] = ["bun", "bunnative"];

/**
 * Windmill's bun lock is the package.json its build step writes (every npm package the
 * script and its imported workspace scripts use), then `//bun.lock` and bun's lockfile,
 * or `<empty>` when there is nothing to install. The stand-in is offline and cannot run
 * `bun install`, so for a script with packages it returns the package.json part alone, a
 * form Windmill workers also accept (they install from it). Versions are the ones installed
 * in the repo; an import pinned as `pkg@1.2.3` keeps its pin. Other languages get no lock.
 */
function scriptLock(ctx: ImportContext, path: string, code: string, language: ScriptLang): string {
  if (!BUN_LANGUAGES.includes(language)) return "";
  const packages = new Map<string, string>();
  collectPackages(ctx, path, code, packages, new Set([path]));
  const dependencies = Object.fromEntries([...packages].sort(([a], [b]) => (a < b ? -1 : 1)));
  const packageJson = JSON.stringify({ dependencies }, null, 2);
  return packages.size === 0 ? `${packageJson}\n//bun.lock\n<empty>` : packageJson;
}

function collectPackages(ctx: ImportContext, path: string, code: string, packages: Map<string, string>, seen: Set<string>): void {
  const parser = windmillParser();
  const imports = (JSON.parse(parser.parse_ts_imports(code)) as { imports: string[] }).imports;
  for (const specifier of imports) {
    const pkg = npmPackage(specifier);
    if (pkg) packages.set(pkg.name, pkg.version ?? installedVersion(ctx.host, pkg.name, path));
  }
  for (const imported of parser.parse_ts_relative_imports(code, path)) {
    if (seen.has(imported)) continue;
    seen.add(imported);
    collectPackages(ctx, imported, importedSource(ctx, imported, path), packages, seen);
  }
}

/** A bare specifier's package (`@scope/name/sub@1.2` -> `@scope/name`, pin 1.2); undefined for builtins, URLs and paths. */
function npmPackage(specifier: string): { name: string; version?: string } | undefined {
  if (/^[./]/.test(specifier) || /^[a-z][a-z0-9+.-]*:/i.test(specifier)) return undefined;
  const match = /^((?:@[^/@]+\/)?[^/@]+)(?:@([^/]+))?/.exec(specifier);
  if (!match || builtinModules.includes(match[1])) return undefined;
  return { name: match[1], version: match[2] };
}

function installedVersion(host: SyncHost, name: string, importedBy: string): string {
  try {
    const manifest = JSON.parse(readFileSync(join(host.workspaceDir, "node_modules", name, "package.json"), "utf8")) as { version: string };
    return manifest.version;
  } catch {
    throw new Error(`${importedBy} imports ${name}, which is not installed in ${host.workspaceDir}/node_modules (the stand-in locks offline): add it to package.json`);
  }
}

/** An imported workspace script: the local version the CLI uploaded, else the deployed one. */
function importedSource(ctx: ImportContext, path: string, importedBy: string): string {
  const tempHash = ctx.tempRefs?.[path];
  const source = (tempHash && ctx.sync.tempScripts.get(tempHash)) || ctx.sync.scripts.get(path)?.content;
  if (source === undefined) throw new Error(`${importedBy} imports ${path}, which is not deployed in this workspace: push it first`);
  return source;
}

/** The flow with a lock on each inline bun script (steps that run scripts by path keep theirs). */
function lockedFlowValue(ctx: ImportContext, flowPath: string, value: FlowRecord["value"]): FlowRecord["value"] {
  const lockModule = (module: JsonObject): JsonObject => {
    const step = module.value as JsonObject;
    const locked: JsonObject = { ...step };
    if (step.type === "rawscript" && typeof step.content === "string") {
      locked.lock = scriptLock(ctx, `${flowPath}/${String(module.id)}`, step.content, step.language as ScriptLang);
    }
    for (const key of ["modules", "default"]) {
      if (Array.isArray(step[key])) locked[key] = (step[key] as JsonObject[]).map(lockModule);
    }
    if (Array.isArray(step.branches)) {
      locked.branches = (step.branches as JsonObject[]).map((b) => ({ ...b, modules: (b.modules as JsonObject[]).map(lockModule) }));
    }
    return { ...module, value: locked };
  };
  const modules = value.modules as unknown as JsonObject[];
  const optional = (m: unknown) => (m ? lockModule(m as JsonObject) : undefined);
  return dropUndefined({
    ...value,
    modules: modules.map(lockModule),
    failure_module: optional(value.failure_module),
    preprocessor_module: optional(value.preprocessor_module),
  }) as unknown as FlowRecord["value"];
}

let parserReady = false;
/** Windmill's own TypeScript import parser (the wasm build its CLI and server use). */
function windmillParser(): { parse_ts_imports: typeof parse_ts_imports; parse_ts_relative_imports: typeof parse_ts_relative_imports } {
  if (!parserReady) {
    const require = createRequire(import.meta.url);
    initSync({ module: readFileSync(require.resolve("windmill-parser-wasm-ts/windmill_parser_wasm_bg.wasm")) });
    parserReady = true;
  }
  return { parse_ts_imports, parse_ts_relative_imports };
}

// ---------------------------------------------------------------- tar (ustar) writer

const TAR_BLOCK = 512;

/** A ustar archive of text files, with the headers windmill-api writes (mode 0777, uid/gid/mtime 0). */
function tarArchive(files: Map<string, string>): Buffer {
  const blocks: Buffer[] = [];
  for (const [path, text] of files) {
    const body = Buffer.from(text, "utf8");
    blocks.push(tarHeader(path, body.length), body, Buffer.alloc(padding(body.length)));
  }
  blocks.push(Buffer.alloc(TAR_BLOCK * 2));
  return Buffer.concat(blocks);
}

function tarHeader(path: string, size: number): Buffer {
  const header = Buffer.alloc(TAR_BLOCK);
  const [prefix, name] = splitTarPath(path);
  header.write(name, 0, 100, "utf8");
  header.write(octal(0o777, 8), 100);
  header.write(octal(0, 8), 108);
  header.write(octal(0, 8), 116);
  header.write(octal(size, 12), 124);
  header.write(octal(0, 12), 136);
  header.write(" ".repeat(8), 148);
  header.write("0", 156);
  header.write("ustar\u000000", 257);
  header.write(prefix, 345, 155, "utf8");
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(`${sum.toString(8).padStart(6, "0")}\u0000 `, 148);
  return header;
}

/** ustar keeps names up to 100 bytes, plus a 155-byte directory prefix. */
function splitTarPath(path: string): [string, string] {
  if (Buffer.byteLength(path) <= 100) return ["", path];
  const cut = path.lastIndexOf("/", 155);
  const prefix = path.slice(0, cut);
  const name = path.slice(cut + 1);
  if (cut <= 0 || Buffer.byteLength(prefix) > 155 || Buffer.byteLength(name) > 100) {
    throw new HttpError(500, `Path too long for the workspace archive: ${path}`);
  }
  return [prefix, name];
}

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, "0")}\u0000`;
}

function padding(size: number): number {
  return (TAR_BLOCK - (size % TAR_BLOCK)) % TAR_BLOCK;
}

// ---------------------------------------------------------------- shared helpers

const EPOCH = new Date(0).toISOString();

/** Windmill paths: `u/<user>/<name>` or `f/<folder>/<name>`, possibly nested. */
function requireItemPath(path: string | undefined, what: string): void {
  if (!/^(u|f)\/[\w-]+\/[\w\-./]+$/.test(path ?? "") || path?.endsWith("/")) {
    throw new HttpError(400, `Invalid ${what} path ${JSON.stringify(path)}: expected u/<user>/<name> or f/<folder>/<name>`);
  }
}

/** The `path_start` / `path_exact` filters the list endpoints share. */
function filterByPath<T extends { path: string }>(rows: T[], url: URL): T[] {
  const start = url.searchParams.get("path_start");
  const exact = url.searchParams.get("path_exact");
  return rows.filter((r) => (!start || r.path.startsWith(start)) && (!exact || r.path === exact));
}

function byPath(a: { path: string }, b: { path: string }): number {
  return a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
}

function pick<T extends object, K extends keyof T>(source: T, keys: readonly K[]): Partial<Pick<T, K>> {
  const picked: Partial<Pick<T, K>> = {};
  for (const key of keys) if (source[key] !== undefined) picked[key] = source[key];
  return picked;
}

function dropUndefined(value: JsonObject): JsonObject {
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
