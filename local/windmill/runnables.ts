// Which script or flow a job by path runs, resolved as Windmill resolves it before it
// creates the job: under the caller's row-level security, so a caller who cannot read the
// script or flow gets the refusal at the API and no job exists.
import { HttpError } from "../shared/http.ts";
import { allowed, describeAuthed, type Authed } from "./permissions.ts";
import type { WorkspaceState } from "./state.ts";

/**
 * windmill-common/src/lib.rs get_latest_deployed_hash_for_path (scripts) and
 * get_latest_flow_version_id_for_path (flows): the SELECT runs as the caller; when it finds
 * nothing but the plain db does, Error::NotAuthorized (401) "You are not authorized to access
 * this script: <path> (but it exists). Your permissions are: <ApiAuthed:?>"; when nothing
 * exists, not_found_if_none's 404 "script not found at name <path>" (Windmill appends the
 * source location; the stand-in leaves it out). Before anything was pushed the stand-in runs
 * the repo's files, which have no permissions to check.
 */
export function requireReadableRunnable(state: WorkspaceState, who: Authed, kind: "script" | "flow", path: string): void {
  if (kind === "script" && state.sync.scripts.size === 0) return;
  const record = kind === "script" ? state.sync.scripts.get(path) : state.sync.flows.get(path);
  if (!record) throw new HttpError(404, `Not found: ${kind} not found at name ${path}`);
  const extraPerms = (record.extra_perms ?? {}) as Record<string, boolean>;
  if (!allowed(who, path, extraPerms, "read")) {
    throw new HttpError(401, `Not authorized: You are not authorized to access this ${kind}: ${path} (but it exists). Your permissions are: ${describeAuthed(who)}`);
  }
}
