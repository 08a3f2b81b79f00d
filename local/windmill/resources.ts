// Variables, resources and resource types of the Windmill stand-in: what scripts read
// through windmill-client (values, `$var:` / `$res:` references resolved) and what
// `wmill sync push` writes.
import type { EditResourceType } from "windmill-client";
import { HttpError, readJson, sendJson, sendText } from "../shared/http.ts";
import { jsonb } from "./records.ts";
import type { Resource, ResourceType, Route, Variable, WorkspaceState } from "./state.ts";

export function resourceRoutes(): Route[] {
  return [
    ["GET", /^\/api\/w\/([^/]+)\/variables\/exists\/(.+)$/, (c, res) => sendJson(res, 200, c.ws().variables.has(c.match[2]))],
    ["GET", /^\/api\/w\/([^/]+)\/variables\/get_value\/(.+)$/, (c, res) => sendJson(res, 200, getVariable(c.ws(), c.match[2]).value)],
    ["GET", /^\/api\/w\/([^/]+)\/variables\/get\/(.+)$/, (c, res) => {
      const v = getVariable(c.ws(), c.match[2]);
      sendJson(res, 200, { path: c.match[2], value: v.isSecret ? undefined : v.value, is_secret: v.isSecret, description: v.description });
    }],
    ["GET", /^\/api\/w\/([^/]+)\/variables\/list$/, (c, res) => {
      const start = c.url.searchParams.get("path_start") ?? "";
      const rows = [...c.ws().variables.entries()]
        .filter(([p]) => p.startsWith(start))
        .map(([p, v]) => ({ path: p, value: v.isSecret ? undefined : v.value, is_secret: v.isSecret, description: v.description }));
      sendJson(res, 200, rows);
    }],
    ["POST", /^\/api\/w\/([^/]+)\/variables\/create$/, async (c, res) => {
      const body = await readJson<{ path: string; value: string; is_secret?: boolean; description?: string }>(c.req);
      const state = c.ws();
      checkPath(body.path);
      if (typeof body.value !== "string") throw new HttpError(400, "variable value must be a string");
      if (state.variables.has(body.path)) throw new HttpError(400, `Variable ${body.path} already exists`);
      state.variables.set(body.path, { value: body.value, isSecret: body.is_secret ?? false, description: body.description ?? "" });
      sendText(res, 201, body.path);
    }],
    ["POST", /^\/api\/w\/([^/]+)\/variables\/update\/(.+)$/, async (c, res) => {
      const body = await readJson<{ value?: string; is_secret?: boolean; description?: string }>(c.req);
      const current = getVariable(c.ws(), c.match[2]);
      c.ws().variables.set(c.match[2], {
        value: body.value ?? current.value,
        isSecret: body.is_secret ?? current.isSecret,
        description: body.description ?? current.description,
      });
      sendText(res, 200, c.match[2]);
    }],
    ["DELETE", /^\/api\/w\/([^/]+)\/variables\/delete\/(.+)$/, (c, res) => {
      getVariable(c.ws(), c.match[2]);
      c.ws().variables.delete(c.match[2]);
      sendText(res, 200, `variable ${c.match[2]} deleted`);
    }],
    ["GET", /^\/api\/w\/([^/]+)\/resources\/exists\/(.+)$/, (c, res) => sendJson(res, 200, c.ws().resources.has(c.match[2]))],
    ["GET", /^\/api\/w\/([^/]+)\/resources\/get_value_interpolated\/(.+)$/, (c, res) =>
      sendJson(res, 200, interpolateResourceValue(c.ws(), getResource(c.ws(), c.match[2]).value))],
    ["GET", /^\/api\/w\/([^/]+)\/resources\/get_value\/(.+)$/, (c, res) => sendJson(res, 200, getResource(c.ws(), c.match[2]).value)],
    ["GET", /^\/api\/w\/([^/]+)\/resources\/get\/(.+)$/, (c, res) => {
      const r = getResource(c.ws(), c.match[2]);
      sendJson(res, 200, { workspace_id: c.match[1], path: c.match[2], value: r.value, resource_type: r.resourceType, description: r.description, is_oauth: false });
    }],
    ["POST", /^\/api\/w\/([^/]+)\/resources\/create$/, async (c, res) => {
      const body = await readJson<{ path: string; value: unknown; resource_type: string; description?: string }>(c.req);
      const state = c.ws();
      checkPath(body.path);
      if (!state.resourceTypes.has(body.resource_type)) {
        throw new HttpError(400, `Resource type ${body.resource_type} does not exist in workspace ${c.match[1]}: push it first (wmill sync push)`);
      }
      const exists = state.resources.has(body.path);
      if (exists && c.url.searchParams.get("update_if_exists") !== "true") throw new HttpError(400, `Resource ${body.path} already exists`);
      state.resources.set(body.path, { value: body.value, resourceType: body.resource_type, description: body.description ?? "" });
      sendText(res, 201, body.path);
    }],
    ["POST", /^\/api\/w\/([^/]+)\/resources\/update_value\/(.+)$/, async (c, res) => {
      const body = await readJson<{ value: unknown }>(c.req);
      const current = getResource(c.ws(), c.match[2]);
      c.ws().resources.set(c.match[2], { ...current, value: body.value });
      sendText(res, 200, c.match[2]);
    }],
    ["DELETE", /^\/api\/w\/([^/]+)\/resources\/delete\/(.+)$/, (c, res) => {
      getResource(c.ws(), c.match[2]);
      c.ws().resources.delete(c.match[2]);
      sendText(res, 200, `resource ${c.match[2]} deleted`);
    }],
    ["GET", /^\/api\/w\/([^/]+)\/resources\/type\/exists\/(.+)$/, (c, res) => sendJson(res, 200, c.ws().resourceTypes.has(c.match[2]))],
    ["GET", /^\/api\/w\/([^/]+)\/resources\/type\/list$/, (c, res) =>
      sendJson(res, 200, [...c.ws().resourceTypes.values()].map((t) => ({ ...t, workspace_id: c.match[1] })))],
    ["POST", /^\/api\/w\/([^/]+)\/resources\/type\/create$/, async (c, res) => {
      const body = await readJson<ResourceType>(c.req);
      if (!/^[a-z][a-z0-9_]*$/.test(body.name ?? "")) throw new HttpError(400, `Resource type name ${body.name} must be snake_case`);
      c.ws().resourceTypes.set(body.name, { name: body.name, schema: body.schema, description: body.description ?? "" });
      sendText(res, 201, body.name);
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
 * A resource's value as `get_value_interpolated` gives it: `$var:` and `$res:` strings
 * resolved, recursing into objects but not arrays (windmill-api/src/resources.rs
 * transform_json_value has no Array arm).
 */
export function interpolateResourceValue(state: WorkspaceState, value: unknown, depth = 0): unknown {
  if (depth > 10) throw new HttpError(400, "Resource references nest too deeply");
  if (typeof value === "string") {
    if (value.startsWith("$var:")) return getVariable(state, value.slice(5)).value;
    if (value.startsWith("$res:")) return interpolateResourceValue(state, getResource(state, value.slice(5)).value, depth + 1);
    return value;
  }
  if (value && typeof value === "object" && !Array.isArray(value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolateResourceValue(state, v, depth + 1)]));
  }
  return value;
}

/** windmill-worker/src/common.rs RE_RES_VAR: only an arg whose JSON text holds one of these is transformed. */
const RESOLVABLE_ARG = /\$(?:var|res|encrypted):/;

/**
 * A job's args as its worker resolves them before main runs (windmill-worker/src/common.rs
 * transform_json and transform_json_value, newest version): `$var:p` the variable's value,
 * `$res:p` the resource's interpolated value, any other `$NAME` the reserved variable of that
 * name (else unchanged); objects at any depth, arrays only at depth ≤ 2 and with ≤ 1000 items.
 */
export function resolveJobArgs(state: WorkspaceState, args: Record<string, unknown>, reserved: Record<string, string>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(args).map(([name, value]) =>
    [name, RESOLVABLE_ARG.test(JSON.stringify(value) ?? "") ? transformJsonValue(state, name, value, reserved, 0) : value]));
}

/** Raised when an arg cannot be resolved: the job fails before main runs. */
class ArgResolutionError extends Error {
  override name = "ArgResolutionError";
}

function transformJsonValue(state: WorkspaceState, name: string, value: unknown, reserved: Record<string, string>, depth: number): unknown {
  if (typeof value === "string") {
    if (value.startsWith("$var:")) {
      const path = value.slice(5);
      const variable = state.variables.get(path);
      if (!variable) throw new ArgResolutionError(`Variable ${path} not found for \`${name}\`: Variable not found at ${path}`);
      return variable.value;
    }
    if (value.startsWith("$res:")) {
      const path = value.slice(5);
      if (path.split("/").length < 2) throw new ArgResolutionError(`Argument \`${name}\` is an invalid resource path: ${path}`);
      const resource = state.resources.get(path);
      if (!resource) throw new ArgResolutionError(`Resource ${path} not found for \`${name}\`: Resource not found at ${path}`);
      return interpolateResourceValue(state, resource.value);
    }
    if (value.startsWith("$encrypted:")) throw new ArgResolutionError(`Argument \`${name}\`: $encrypted: values are not supported by the stand-in`);
    if (value.startsWith("$")) return reserved[value.slice(1)] ?? value;
    return value;
  }
  if (Array.isArray(value)) {
    return depth <= 2 && value.length <= 1000 ? value.map((v) => transformJsonValue(state, name, v, reserved, depth + 1)) : value;
  }
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, transformJsonValue(state, k, v, reserved, depth + 1)]));
  }
  return value;
}

function getVariable(state: WorkspaceState, path: string): Variable {
  const v = state.variables.get(path);
  if (!v) throw new HttpError(404, `Variable not found at ${path}`);
  return v;
}

function getResource(state: WorkspaceState, path: string): Resource {
  const r = state.resources.get(path);
  if (!r) throw new HttpError(404, `Resource not found at ${path}`);
  return r;
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
