// Members, groups and grants of the Windmill stand-in: adding users to the workspace,
// creating groups and adding members, and the granular ACLs (an item's or a folder's
// extra_perms), with Windmill's routes.
import { HttpError, readJson, sendJson, sendText } from "../shared/http.ts";
import { allowed, authedAs, type Authed } from "./permissions.ts";
import type { Route, RouteContext, WorkspaceGroup, WorkspaceState } from "./state.ts";

/** windmill-common/src/error.rs `RequireAdmin` → 403. */
function requireAdmin(who: Authed, what: string): void {
  if (!who.isAdmin) throw new HttpError(403, `Require Admin privileges for ${what}`);
}

function authed(c: RouteContext): Authed {
  const t = c.token();
  return authedAs(c.ws(), t.username, t.email);
}

/** Usernames and group names Windmill accepts. */
const NAME = /^[a-zA-Z_0-9]+$/;

export function memberRoutes(): Route[] {
  return [
    // windmill-api/src/workspaces.rs `add_user` (admins only); the user joins `all`.
    ["POST", /^\/api\/w\/([^/]+)\/workspaces\/add_user$/, async (c, res) => {
      const body = await readJson<{ email: string; username?: string; is_admin?: boolean; operator?: boolean }>(c.req);
      requireAdmin(authed(c), "adding users");
      const ws = c.ws();
      const username = body.username ?? body.email?.split("@")[0] ?? "";
      if (!NAME.test(username) || !body.email) throw new HttpError(400, `Bad request: a user needs an email and a username matching ${NAME.source}`);
      if (ws.users.has(username)) throw new HttpError(400, `Bad request: user ${username} already exists in workspace ${ws.id}`);
      ws.users.set(username, { username, email: body.email, isAdmin: body.is_admin ?? false, operator: body.operator ?? false });
      sendText(res, 201, `user ${body.email} added to workspace ${ws.id}`);
    }],
    // windmill-api/src/groups.rs `create_group`, `add_user`, `get_group`, `list_groups`.
    ["POST", /^\/api\/w\/([^/]+)\/groups\/create$/, async (c, res) => {
      const body = await readJson<{ name: string; summary?: string }>(c.req);
      requireAdmin(authed(c), "creating groups");
      const ws = c.ws();
      if (!NAME.test(body.name ?? "")) throw new HttpError(400, `Bad request: group name must match ${NAME.source}`);
      if (ws.groups.has(body.name) || body.name === "all") throw new HttpError(400, `Bad request: Group ${body.name} already exists`);
      ws.groups.set(body.name, { name: body.name, summary: body.summary ?? "", members: new Set() });
      sendText(res, 201, `Created group ${body.name}`);
    }],
    ["POST", /^\/api\/w\/([^/]+)\/groups\/adduser\/([^/]+)$/, async (c, res) => {
      const body = await readJson<{ username: string }>(c.req);
      requireAdmin(authed(c), "adding group members");
      const group = getGroup(c.ws(), c.match[2]);
      if (!c.ws().users.has(body.username)) throw new HttpError(404, `Not found: user ${body.username} not found`);
      group.members.add(body.username);
      sendText(res, 200, `Added ${body.username} to group ${group.name}`);
    }],
    ["GET", /^\/api\/w\/([^/]+)\/groups\/get\/([^/]+)$/, (c, res) => {
      c.token();
      const group = getGroup(c.ws(), c.match[2]);
      sendJson(res, 200, { workspace_id: c.match[1], name: group.name, summary: group.summary, members: [...group.members].sort(), extra_perms: {} });
    }],
    ["GET", /^\/api\/w\/([^/]+)\/groups\/list$/, (c, res) => {
      c.token();
      sendJson(res, 200, [...c.ws().groups.values()].map((g) => ({ workspace_id: c.match[1], name: g.name, summary: g.summary, members: [...g.members].sort(), extra_perms: {} })));
    }],
    // windmill-api/src/granular_acls.rs: `acls/get|add|remove/{kind}/{path}` edit a row's extra_perms.
    ["GET", /^\/api\/w\/([^/]+)\/acls\/get\/(resource|variable|folder)\/(.+)$/, (c, res) => {
      c.token();
      sendJson(res, 200, grantsOf(c.ws(), c.match[2], c.match[3]));
    }],
    ["POST", /^\/api\/w\/([^/]+)\/acls\/(add|remove)\/(resource|variable|folder)\/(.+)$/, async (c, res) => {
      const body = await readJson<{ owner: string; write?: boolean }>(c.req);
      const [, , op, kind, path] = c.match;
      const who = authed(c);
      const ws = c.ws();
      const mayEdit = kind === "folder" ? who.isAdmin || who.folders.some((f) => f.name === path && f.owner) : allowed(who, path, grantsOf(ws, kind, path), "write");
      if (!mayEdit) throw new HttpError(401, `Not authorized: you cannot change the permissions of ${kind} ${path}`);
      if (!/^(u|g)\/[a-zA-Z_0-9]+$/.test(body.owner ?? "")) throw new HttpError(400, `Bad request: owner must be u/<user> or g/<group>`);
      const grants = { ...grantsOf(ws, kind, path) };
      if (op === "add") grants[body.owner] = body.write ?? false;
      else delete grants[body.owner];
      setGrants(ws, kind, path, grants);
      sendText(res, 200, `${op === "add" ? "Successfully modified" : "Successfully removed"} granular acl`);
    }],
  ];
}

function getGroup(ws: WorkspaceState, name: string): WorkspaceGroup {
  const group = ws.groups.get(name);
  if (!group) throw new HttpError(404, `Not found: Group not found at name ${name}`);
  return group;
}

function grantsOf(ws: WorkspaceState, kind: string, path: string): Record<string, boolean> {
  const row = kind === "resource" ? ws.resources.get(path) : kind === "variable" ? ws.variables.get(path) : undefined;
  if (kind === "folder") {
    const folder = ws.sync.folders.get(path);
    if (!folder) throw new HttpError(404, `Not found: folder not found at name ${path}`);
    return (folder.extra_perms ?? {}) as Record<string, boolean>;
  }
  if (!row) throw new HttpError(404, `Not found: ${kind} not found at name ${path}`);
  return row.extraPerms ?? {};
}

function setGrants(ws: WorkspaceState, kind: string, path: string, grants: Record<string, boolean>): void {
  if (kind === "folder") {
    const folder = ws.sync.folders.get(path);
    if (folder) ws.sync.folders.set(path, { ...folder, extra_perms: grants });
    return;
  }
  const resource = kind === "resource" ? ws.resources.get(path) : undefined;
  if (resource) ws.resources.set(path, { ...resource, extraPerms: grants });
  const variable = kind === "variable" ? ws.variables.get(path) : undefined;
  if (variable) ws.variables.set(path, { ...variable, extraPerms: grants });
}
