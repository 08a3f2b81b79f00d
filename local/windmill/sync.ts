// The part of the Windmill stand-in's API that `wmill sync push` / `wmill sync pull` use:
// scripts (syncScripts.ts), flows, folders and schedules of a workspace, the tarball the
// CLI diffs against (export.ts) and the lock jobs it asks for (locks.ts). Resource types
// (resources.ts) and the user look-ups the CLI makes on the way (auth.ts) live with the
// rest of the API.
//
// Records are stored in the shapes the API returns (the OpenAPI types of windmill-client),
// with JSON columns (schemas, flow values, args) normalised the way Postgres `jsonb` stores
// them, so reads look like a real instance's.
import type { EditSchedule, Flow, Folder, NewSchedule, OpenFlowWPath, Schedule } from "windmill-client";
import { HttpError, readJson, sendJson, sendText } from "../shared/http.ts";
import { exportRoutes } from "./export.ts";
import { dependencyRoutes } from "./locks.ts";
import { byPath, filterByPath, jsonb, pick, requireItemPath, type JsonObject } from "./records.ts";
import { allowed, authedAs, rowLevelSecurityViolation } from "./permissions.ts";
import { checkCron } from "./schedules.ts";
import type { FlowRecord, FolderRecord, Route, ScheduleRecord, SyncHost, SyncState, TokenInfo } from "./state.ts";
import { scriptRoutes } from "./syncScripts.ts";

export function syncRoutes(host: SyncHost): Route[] {
  return [...scriptRoutes(), ...flowRoutes(), ...folderRoutes(), ...scheduleRoutes(), ...exportRoutes(host), ...dependencyRoutes(host)];
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
      const t = c.token();
      const who = authedAs(c.ws(), t.username, t.email);
      // windmill-api-groups/src/folders.rs `update_folder`: owners (or admins) only.
      if (!who.isAdmin && !who.folders.some((f) => f.name === folder.name && f.owner)) {
        throw new HttpError(401, `Not authorized: You are not an owner of ${folder.name} and hence cannot modify it`);
      }
      const updated = updatedFolder(folder, body);
      const unwritable = (updated.owners ?? []).find((o) => (updated.extra_perms as Record<string, boolean>)[o] !== true);
      if (unwritable) throw new HttpError(400, `Bad request: Owner ${unwritable} would not have permission to write to folder and that is an invalid state`);
      sync.folders.set(folder.name, updated);
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
      // windmill-api schedule.rs create_schedule inserts under the caller's row-level security (user_db): a path in a
      // folder the caller cannot write is refused like any RLS insert (the policy text was not re-read: the safer side).
      if (!allowed(authedAs(c.ws(), caller.username, caller.email), body.path, {}, "write")) throw rowLevelSecurityViolation("schedule");
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
      // The editor becomes edited_by, which windmill-queue schedule.rs push_scheduled_job runs the jobs as
      // (u/<edited_by>); permissioned_as shows the same. (`wmill sync push` sends preserve_permissioned_as only
      // with wmill.yaml syncBehavior >= 1, which this repo does not set; the stand-in does not model it.)
      const caller = c.token();
      // windmill-api schedule.rs edit_schedule: UPDATE … RETURNING * under the caller's row-level security,
      // fetch_one, errors mapped to InternalErr: a caller who may not write the path updates no row, hence 500.
      if (!allowed(authedAs(c.ws(), caller.username, caller.email), current.path, current.extra_perms, "write")) {
        throw new HttpError(500, `Internal: updating schedule in ${c.match[1]}: no rows returned by a query that expected to return at least one row`);
      }
      sync.schedules.set(current.path, scheduleRecord(current.path, body, { ...current, permissioned_as: `u/${caller.username}` }, caller));
      sendText(res, 200, current.path);
    }],
    ["POST", /^\/api\/w\/([^/]+)\/schedules\/setenabled\/(.+)$/, async (c, res) => {
      const body = await readJson<{ enabled: boolean }>(c.req);
      const sync = c.ws().sync;
      const current = getSchedule(sync, c.match[2]);
      if (typeof body.enabled !== "boolean") throw new HttpError(400, "enabled must be a boolean");
      // windmill-api schedule.rs set_enabled: UPDATE … RETURNING * under row-level security, fetch_optional,
      // then not_found_if_none: a caller who may not write the path gets 404.
      const caller = c.token();
      if (!allowed(authedAs(c.ws(), caller.username, caller.email), current.path, current.extra_perms, "write")) {
        throw new HttpError(404, `Not found: Schedule not found at name ${current.path}`);
      }
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
