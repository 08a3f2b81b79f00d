// Variables, resources and resource types of the Windmill stand-in: what scripts read
// through windmill-client (values, `$var:` / `$res:` references resolved) and what
// `wmill sync push` writes. Reads and writes follow Windmill's row-level security
// (permissions.ts), with the status codes and texts of backend/windmill-api/src/resources.rs
// and variables.rs.
import type { EditResourceType } from "windmill-client";
import { HttpError, readJson, sendJson, sendText } from "../shared/http.ts";
import { allowed, authedAs, describeAuthed, rowLevelSecurityViolation, type Authed } from "./permissions.ts";
import { jsonb } from "./records.ts";
import type { Resource, ResourceType, Route, RouteContext, Variable, WorkspaceState } from "./state.ts";

function authed(c: RouteContext): Authed {
  const t = c.token();
  return authedAs(c.ws(), t.username, t.email);
}

export function resourceRoutes(): Route[] {
  return [
    // variables.rs `exists_variable` queries the plain db (no RLS): true whoever asks.
    ["GET", /^\/api\/w\/([^/]+)\/variables\/exists\/(.+)$/, (c, res) => sendJson(res, 200, c.ws().variables.has(c.match[2]))],
    ["GET", /^\/api\/w\/([^/]+)\/variables\/get_value\/(.+)$/, (c, res) => sendJson(res, 200, readVariable(c.ws(), authed(c), c.match[2]).value)],
    ["GET", /^\/api\/w\/([^/]+)\/variables\/get\/(.+)$/, (c, res) => {
      const v = readVariable(c.ws(), authed(c), c.match[2]);
      sendJson(res, 200, { path: c.match[2], value: v.isSecret ? undefined : v.value, is_secret: v.isSecret, description: v.description, extra_perms: v.extraPerms ?? {} });
    }],
    // variables.rs `list_variables`: a SELECT under RLS lists what the caller can read.
    ["GET", /^\/api\/w\/([^/]+)\/variables\/list$/, (c, res) => {
      const start = c.url.searchParams.get("path_start") ?? "";
      const who = authed(c);
      const rows = [...c.ws().variables.entries()]
        .filter(([p, v]) => p.startsWith(start) && allowed(who, p, v.extraPerms, "read"))
        .map(([p, v]) => ({ path: p, value: v.isSecret ? undefined : v.value, is_secret: v.isSecret, description: v.description, extra_perms: v.extraPerms ?? {} }));
      sendJson(res, 200, rows);
    }],
    // variables.rs `create_variable`: the path conflict check runs under RLS, then the INSERT's WITH CHECK.
    ["POST", /^\/api\/w\/([^/]+)\/variables\/create$/, async (c, res) => {
      const body = await readJson<{ path: string; value: string; is_secret?: boolean; description?: string }>(c.req);
      const state = c.ws();
      const who = authed(c);
      checkPath(body.path);
      if (typeof body.value !== "string") throw new HttpError(400, "variable value must be a string");
      const existing = state.variables.get(body.path);
      if (existing && allowed(who, body.path, existing.extraPerms, "read")) throw new HttpError(400, `Bad request: Variable ${body.path} already exists`);
      if (!allowed(who, body.path, {}, "write")) throw rowLevelSecurityViolation("variable");
      if (existing) throw new HttpError(400, `SqlErr: error returned from database: duplicate key value violates unique constraint "variable_pkey"`);
      state.variables.set(body.path, { value: body.value, isSecret: body.is_secret ?? false, description: body.description ?? "" });
      sendText(res, 201, `variable ${body.path} created`);
    }],
    // variables.rs `update_variable`: an UPDATE ... RETURNING path that RLS hides gives not_found_if_none's 404.
    ["POST", /^\/api\/w\/([^/]+)\/variables\/update\/(.+)$/, async (c, res) => {
      const body = await readJson<{ value?: string; is_secret?: boolean; description?: string }>(c.req);
      const path = c.match[2];
      const current = c.ws().variables.get(path);
      if (!current || !allowed(authed(c), path, current.extraPerms, "write")) throw new HttpError(404, `Not found: Variable not found at name ${path}`);
      c.ws().variables.set(path, {
        ...current,
        value: body.value ?? current.value,
        isSecret: body.is_secret ?? current.isSecret,
        description: body.description ?? current.description,
      });
      sendText(res, 200, `variable ${path} updated (npath: "${path}")`);
    }],
    // variables.rs `delete_variable`: DELETEs (the variable and a resource at the same path) under RLS,
    // rows affected not checked: 200 even when nothing was deleted.
    ["DELETE", /^\/api\/w\/([^/]+)\/variables\/delete\/(.+)$/, (c, res) => {
      deleteRows(c.ws(), authed(c), c.match[2]);
      sendText(res, 200, `variable ${c.match[2]} deleted`);
    }],
    // resources.rs `exists_resource` queries the plain db (no RLS): true whoever asks.
    ["GET", /^\/api\/w\/([^/]+)\/resources\/exists\/(.+)$/, (c, res) => sendJson(res, 200, c.ws().resources.has(c.match[2]))],
    ["GET", /^\/api\/w\/([^/]+)\/resources\/get_value_interpolated\/(.+)$/, (c, res) => {
      const who = authed(c);
      sendJson(res, 200, interpolate(c.ws(), readResource(c.ws(), who, c.match[2]).value, who));
    }],
    ["GET", /^\/api\/w\/([^/]+)\/resources\/get_value\/(.+)$/, (c, res) => sendJson(res, 200, readResource(c.ws(), authed(c), c.match[2]).value)],
    ["GET", /^\/api\/w\/([^/]+)\/resources\/get\/(.+)$/, (c, res) => {
      const r = readResource(c.ws(), authed(c), c.match[2]);
      sendJson(res, 200, {
        workspace_id: c.match[1], path: c.match[2], value: r.value, resource_type: r.resourceType, description: r.description,
        extra_perms: r.extraPerms ?? {}, is_oauth: false,
      });
    }],
    // windmill-store/src/resources.rs `create_resource`: check_path_conflict under RLS, then INSERT ... ON CONFLICT
    // DO UPDATE, whose WITH CHECK (and, on a conflict, the UPDATE policy) refuses a caller without write. It checks
    // neither that the resource type exists nor the value against its schema: scripts validate what they read.
    ["POST", /^\/api\/w\/([^/]+)\/resources\/create$/, async (c, res) => {
      const body = await readJson<{ path: string; value: unknown; resource_type: string; description?: string }>(c.req);
      const state = c.ws();
      const who = authed(c);
      checkPath(body.path);
      const existing = state.resources.get(body.path);
      const updateIfExists = c.url.searchParams.get("update_if_exists") === "true";
      if (existing && !updateIfExists && allowed(who, body.path, existing.extraPerms, "read")) {
        throw new HttpError(400, `Bad request: Resource ${body.path} already exists`);
      }
      if (!allowed(who, body.path, {}, "write") || (existing && !allowed(who, body.path, existing.extraPerms, "write"))) {
        throw rowLevelSecurityViolation("resource");
      }
      state.resources.set(body.path, { value: body.value, resourceType: body.resource_type, description: body.description ?? "", extraPerms: existing?.extraPerms });
      sendText(res, 201, `resource ${body.path} created`);
    }],
    // resources.rs `update_resource_value`: an UPDATE under RLS whose row count is not checked, so a
    // caller without write (a folder reader, or one who cannot even read) gets 200 and nothing changes.
    ["POST", /^\/api\/w\/([^/]+)\/resources\/update_value\/(.+)$/, async (c, res) => {
      const body = await readJson<{ value: unknown }>(c.req);
      const path = c.match[2];
      const current = c.ws().resources.get(path);
      if (current && allowed(authed(c), path, current.extraPerms, "write")) c.ws().resources.set(path, { ...current, value: body.value });
      sendText(res, 200, `value of resource ${path} updated`);
    }],
    // windmill-store/src/resources.rs `delete_resource`: DELETE ... RETURNING path under RLS, not_found_if_none's
    // 404 when it deleted nothing (absent, or hidden from the caller), then the variable at the same path.
    ["DELETE", /^\/api\/w\/([^/]+)\/resources\/delete\/(.+)$/, (c, res) => {
      const state = c.ws();
      const who = authed(c);
      const path = c.match[2];
      const resource = state.resources.get(path);
      if (!resource || !allowed(who, path, resource.extraPerms, "write")) throw new HttpError(404, `Not found: Resource not found at name ${path}`);
      state.resources.delete(path);
      deleteRows(state, who, path);
      sendText(res, 200, `resource ${path} deleted`);
    }],
    ["GET", /^\/api\/w\/([^/]+)\/resources\/type\/exists\/(.+)$/, (c, res) => sendJson(res, 200, c.ws().resourceTypes.has(c.match[2]))],
    ["GET", /^\/api\/w\/([^/]+)\/resources\/type\/list$/, (c, res) =>
      sendJson(res, 200, [...c.ws().resourceTypes.values()].map((t) => ({ ...t, workspace_id: c.match[1] })))],
    // windmill-store/src/resources.rs `create_resource_type`: check_rt_path_conflict looks in this workspace only
    // (a hub type lives in `admins`), 400 "Resource type <name> already exists"; 201 "resource_type <name> created".
    ["POST", /^\/api\/w\/([^/]+)\/resources\/type\/create$/, async (c, res) => {
      const body = await readJson<ResourceType>(c.req);
      if (!/^[a-z][a-z0-9_]*$/.test(body.name ?? "")) throw new HttpError(400, `Resource type name ${body.name} must be snake_case`);
      const ws = c.ws();
      const existing = ws.resourceTypes.get(body.name);
      if (existing && !existing.hub) {
        throw new HttpError(400, `Bad request: Resource type ${body.name} already exists`);
      }
      ws.resourceTypes.set(body.name, { name: body.name, schema: body.schema, description: body.description ?? "" });
      sendText(res, 201, `resource_type ${body.name} created`);
    }],
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

/**
/**
 * A resource's value as `get_value_interpolated` gives it: `$var:` and `$res:` strings
 * resolved as `who` may read them, recursing into objects but not arrays
 * (windmill-api/src/resources.rs transform_json_value has no Array arm).
 */
export function interpolate(state: WorkspaceState, value: unknown, who: Authed, depth = 0): unknown {
  if (depth > 10) throw new HttpError(400, "Resource references nest too deeply");
  if (typeof value === "string") {
    if (value.startsWith("$var:")) return readVariable(state, who, value.slice(5)).value;
    if (value.startsWith("$res:")) {
      // transform_json_value's `$res:` branch: an RLS-filtered SELECT, then not_found_if_none.
      const path = value.slice(5);
      const r = state.resources.get(path);
      if (!r || !allowed(who, path, r.extraPerms, "read")) throw new HttpError(404, `Not found: Resource not found at name ${path}`);
      return interpolate(state, r.value, who, depth + 1);
    }
    return value;
  }
  if (value && typeof value === "object" && !Array.isArray(value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(state, v, who, depth + 1)]));
  }
  return value;
}

/** windmill-worker/src/common.rs RE_RES_VAR: only an arg whose JSON text holds one of these is transformed. */
const RESOLVABLE_ARG = /\$(?:var|res|encrypted):/;

/**
 * A job's args as its worker resolves them before main runs (windmill-worker/src/common.rs
 * transform_json and transform_json_value, newest version): `$var:p` the variable's value,
 * `$res:p` the resource's interpolated value, both read through the API with the job's token
 * (so as `who` may read them), any other `$NAME` the reserved variable of that name (else
 * unchanged); objects at any depth, arrays only at depth ≤ 2 and with ≤ 1000 items.
 */
export function resolveJobArgs(state: WorkspaceState, args: Record<string, unknown>, who: Authed, reserved: Record<string, string>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(args).map(([name, value]) =>
    [name, RESOLVABLE_ARG.test(JSON.stringify(value) ?? "") ? transformJsonValue(state, name, value, who, reserved, 0) : value]));
}

/** Raised when an arg cannot be resolved: the job fails before main runs. */
class ArgResolutionError extends Error {
  override name = "ArgResolutionError";
}

/** What the API answered the worker, as the worker words the failure (common.rs get_variable_value / get_resource_value_interpolated). */
function resolved<T>(kind: "Variable" | "Resource", path: string, name: string, read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (err instanceof HttpError) throw new ArgResolutionError(`${kind} ${path} not found for \`${name}\`: ${err.message}`);
    throw err;
  }
}

function transformJsonValue(state: WorkspaceState, name: string, value: unknown, who: Authed, reserved: Record<string, string>, depth: number): unknown {
  if (typeof value === "string") {
    if (value.startsWith("$var:")) {
      const path = value.slice(5);
      return resolved("Variable", path, name, () => readVariable(state, who, path).value);
    }
    if (value.startsWith("$res:")) {
      const path = value.slice(5);
      if (path.split("/").length < 2) throw new ArgResolutionError(`Argument \`${name}\` is an invalid resource path: ${path}`);
      return resolved("Resource", path, name, () => interpolate(state, readResource(state, who, path).value, who));
    }
    if (value.startsWith("$encrypted:")) throw new ArgResolutionError(`Argument \`${name}\`: $encrypted: values are not supported by the stand-in`);
    if (value.startsWith("$")) return reserved[value.slice(1)] ?? value;
    return value;
  }
  if (Array.isArray(value)) {
    return depth <= 2 && value.length <= 1000 ? value.map((v) => transformJsonValue(state, name, v, who, reserved, depth + 1)) : value;
  }
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, transformJsonValue(state, k, v, who, reserved, depth + 1)]));
  }
  return value;
}

/** The folder's extra_perms, as the permission explanations print them (`null` without a folder). */
function folderPerms(state: WorkspaceState, path: string): string {
  return JSON.stringify(path.startsWith("f/") ? (state.sync.folders.get(path.split("/")[1])?.extra_perms ?? null) : null, null, 2);
}

/** variables.rs `get_value_internal` and `explain_variable_perm_error`. */
function readVariable(state: WorkspaceState, who: Authed, path: string): Variable {
  const v = state.variables.get(path);
  if (!v) throw new HttpError(404, `Not found: Variable ${path} not found`);
  if (!allowed(who, path, v.extraPerms, "read")) {
    const folder = path.startsWith("f/") ? `\nfolder perms: ${folderPerms(state, path)}` : "";
    throw new HttpError(401, `Not authorized: Variable exists but you don't have access to it:\nvariable perms: ${JSON.stringify(v.extraPerms ?? {}, null, 2)}${folder}`);
  }
  return v;
}

/** resources.rs `get_resource_value` and `explain_resource_perm_error`. */
function readResource(state: WorkspaceState, who: Authed, path: string): Resource {
  const r = state.resources.get(path);
  if (!r) throw new HttpError(404, `Not found: Resource ${path} not found`);
  if (!allowed(who, path, r.extraPerms, "read")) {
    const folder = path.startsWith("f/") ? `\nfolder perms: ${folderPerms(state, path)}` : "";
    throw new HttpError(401, `Not authorized: Resource exists but you don't have access to it:\nresource perms: ${JSON.stringify(r.extraPerms ?? {}, null, 2)}${folder}\nauthed as: ${describeAuthed(who)}`);
  }
  return r;
}

/** Both delete handlers remove the variable and the resource at `path`, each where RLS lets them. */
function deleteRows(state: WorkspaceState, who: Authed, path: string): void {
  const variable = state.variables.get(path);
  if (variable && allowed(who, path, variable.extraPerms, "write")) state.variables.delete(path);
  const resource = state.resources.get(path);
  if (resource && allowed(who, path, resource.extraPerms, "write")) state.resources.delete(path);
}

/** Windmill paths are `u/<user>/<name>` or `f/<folder>/<name>`. */
function checkPath(path: string): void {
  if (!/^(u|f)\/[\w-]+\/[\w\-./]+$/.test(path ?? "")) {
    throw new HttpError(400, `Invalid path ${JSON.stringify(path)}: expected u/<user>/<name> or f/<folder>/<name>`);
  }
}

function getResourceType(ws: WorkspaceState, name: string): ResourceType {
  const t = ws.resourceTypes.get(name);
  if (!t) throw new HttpError(404, `Resource type not found: ${name}`);
  return t;
}
