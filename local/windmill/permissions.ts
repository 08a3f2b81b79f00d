// Who may read and write what in the Windmill stand-in: a user's groups and folders, and the
// checks Windmill leaves to Postgres row-level security on every path-based table (resource,
// variable, ...), written out as functions. Admins bypass them all.
import { HttpError } from "../shared/http.ts";
import type { WorkspaceState, WorkspaceUser } from "./state.ts";

/** A folder as `get_folders_for_user` returns it: (name, write, owner). */
export interface FolderAccess {
  name: string;
  write: boolean;
  owner: boolean;
}

/** What a request or job acts as: Windmill's `ApiAuthed` (backend/windmill-api/src/db.rs). */
export interface Authed {
  username: string;
  email: string;
  isAdmin: boolean;
  operator: boolean;
  /** Group names, `all` included. */
  groups: string[];
  folders: FolderAccess[];
}

export type Access = "read" | "write";

/** Every member is in `all` (windmill-api/src/workspaces.rs `add_user` inserts the usr_to_group row). */
export const ALL_GROUP = "all";

export function groupsOf(ws: WorkspaceState, username: string): string[] {
  const named = [...ws.groups.values()].filter((g) => g.members.has(username)).map((g) => g.name).sort();
  return [ALL_GROUP, ...named.filter((g) => g !== ALL_GROUP)];
}

/**
 * windmill-api/src/users.rs `get_folders_for_user`: the folders whose extra_perms name the user
 * (`u/<user>`) or one of its groups (`g/<group>`); write = one of those keys is true; owner = it
 * is in `owners`. Folder owners always have write: create_folder and update_folder keep their
 * extra_perms true.
 */
export function foldersFor(ws: WorkspaceState, username: string, groups: string[]): FolderAccess[] {
  const keys = [`u/${username}`, ...groups.map((g) => `g/${g}`)];
  return [...ws.sync.folders.values()]
    .filter((f) => keys.some((k) => k in (f.extra_perms ?? {})))
    .map((f) => ({
      name: f.name,
      write: keys.some((k) => (f.extra_perms as Record<string, boolean>)[k] === true),
      owner: keys.some((k) => (f.owners ?? []).includes(k)),
    }));
}

/**
 * The identity a token acts as, read afresh on each request: Windmill refreshes a token's
 * folders before writing to `f/` (`maybe_refresh_folders`), so a folder change applies at once.
 * A username that is not a member gets no admin rights and only `all`.
 */
export function authedAs(ws: WorkspaceState, username: string, email: string): Authed {
  const user: WorkspaceUser | undefined = ws.users.get(username);
  const groups = groupsOf(ws, username);
  return {
    username, email: user?.email ?? email, isAdmin: user?.isAdmin ?? false, operator: user?.operator ?? false,
    groups, folders: foldersFor(ws, username, groups),
  };
}

/**
 * The row-level security policies on path-based tables, as the migration that split them
 * into select/insert/update/delete policies leaves them (backend/migrations, "Folder
 * permissions split into select, insert, and update"; `see_folder_extra_perms_user_delete`
 * is FOR DELETE since the migration that recreates it):
 * - `admin_policy` TO windmill_admin USING (true): admins see and change everything;
 * - `see_own` (FOR ALL): `u/<session.user>/...`; `see_member` (FOR ALL): `g/<group>/...`;
 * - `see_folder_extra_perms_user_*`: `f/<folder>/...`, select with folders_read, insert,
 *   update and delete with folders_write;
 * - `see_extra_perms_user_*` / `_groups_*`: the row's own extra_perms, key present = select,
 *   value true = insert/update/delete.
 * `extraPerms` is the row's (a new row has none: `{}`).
 */
export function allowed(a: Authed, path: string, extraPerms: Record<string, boolean> | undefined, access: Access): boolean {
  if (a.isAdmin) return true;
  const [kind, owner] = path.split("/");
  if (kind === "u" && owner === a.username) return true;
  if (kind === "g" && a.groups.includes(owner)) return true;
  if (kind === "f") {
    const folder = a.folders.find((f) => f.name === owner);
    if (folder && (access === "read" || folder.write)) return true;
  }
  const keys = [`u/${a.username}`, ...a.groups.map((g) => `g/${g}`)];
  const perms = extraPerms ?? {};
  return keys.some((k) => (access === "read" ? k in perms : perms[k] === true));
}

/**
 * An INSERT that no policy's WITH CHECK passes: sqlx surfaces Postgres' error, and
 * windmill-common/src/error.rs maps `SqlErr` to 400 with `SqlErr: error returned from database: ...`.
 * (Windmill appends ` @<file>:<line>` of the query; the stand-in leaves the location out.)
 */
export function rowLevelSecurityViolation(table: "resource" | "variable" | "schedule"): HttpError {
  return new HttpError(400, `SqlErr: error returned from database: new row violates row-level security policy for table "${table}"`);
}

/** The `authed as: {authed:?}` part of Windmill's permission explanations (Rust Debug of ApiAuthed). */
export function describeAuthed(a: Authed): string {
  const folders = a.folders.map((f) => `("${f.name}", ${f.write}, ${f.owner})`).join(", ");
  const groups = a.groups.map((g) => `"${g}"`).join(", ");
  return `ApiAuthed { email: "${a.email}", username: "${a.username}", is_admin: ${a.isAdmin}, is_operator: ${a.operator}, groups: [${groups}], folders: [${folders}], scopes: None }`;
}
