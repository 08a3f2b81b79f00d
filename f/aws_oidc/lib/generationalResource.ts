// A resource whose secrets live in secret variables, saved torn-proof: what the credentials
// resource and the RDS PostgreSQL resource share.
//
// Concurrent saves to one path must never leave a torn resource (an access key id from
// one session beside the secret of another). Each save writes its secrets to FRESH
// secret variables named after a new generation, then points the resource at them in a
// single update_value: the resource update is the only write two sessions share, and it
// replaces the whole value at once. Generations nothing points to are deleted later.
//
// Folder permissions decide who may save and who may use a resource. Windmill refuses a new
// variable in a folder its user cannot write (400, row-level security), but an update_value
// it may not make changes nothing and still answers 200: so the save reads the value back,
// and a refusal of either kind names the path, the user and the permission to grant.
import wmill from "windmill-client";

/**
 * A generation's variables outlive replacement by this long, so a save racing ours
 * (secrets written, resource update not yet landed) never loses its variables to our cleanup.
 */
const GENERATION_GRACE_MS = 2 * 60 * 1000;

export interface GenerationalSave<K extends string, V> {
  resourcePath: string;
  resourceType: string;
  /** The secrets, by kind (a variable name part, e.g. `session_token`). */
  secrets: Record<K, string>;
  /** Shown on each secret variable. */
  secretDescription: string;
  /** The resource's value, given each secret as its `$var:` reference. */
  value: (references: Record<K, string>) => V;
  /** The resource's description, set when the save creates it. */
  resourceDescription?: string;
}

function generationVariable(resourcePath: string, kind: string, generation: string): string {
  return `${resourcePath}__${kind}__${generation}`;
}

function newGeneration(now = Date.now()): string {
  return `g${now}_${Math.random().toString(36).slice(2, 8)}`;
}

function generationTime(variablePath: string): number {
  const match = /__g(\d+)_[a-z0-9]+$/.exec(variablePath);
  return match ? Number(match[1]) : 0;
}

/** Writes a fresh generation of secrets, points the resource at it, cleans up old ones; returns the value written. */
export async function saveGenerationalResource<K extends string, V>(save: GenerationalSave<K, V>): Promise<V> {
  const { resourcePath } = save;
  const generation = newGeneration();
  const references = {} as Record<K, string>;
  const variables: string[] = [];
  for (const [kind, secret] of Object.entries(save.secrets) as [K, string][]) {
    const variable = generationVariable(resourcePath, kind, generation);
    await refusedAsPermission(resourcePath, "write", () => wmill.setVariable(variable, secret, true, save.secretDescription));
    references[kind] = `$var:${variable}`;
    variables.push(variable);
  }
  const value = save.value(references);
  await writeResource(resourcePath, save.resourceType, value, save.resourceDescription);
  await deleteStaleGenerations(resourcePath, variables[0]);
  return value;
}

/** A refusal that names the path, the user the job acts as (WM_PERMISSIONED_AS) and what to grant. */
export class PermissionError extends Error {
  override name = "PermissionError";
}

/** What Windmill answers when its row-level security refuses a write (400) or a read (401). */
function isPermissionRefusal(err: unknown, access: "read" | "write"): boolean {
  const { status, body } = (err ?? {}) as { status?: number; body?: unknown };
  return access === "write" ? status === 400 && String(body).includes("row-level security") : status === 401 || status === 403;
}

/**
 * Runs a Windmill call on `path`; a permission refusal becomes a PermissionError naming the fix.
 * `needed` is the access the message asks for (a save that cannot even read needs write).
 */
export async function refusedAsPermission<T>(path: string, access: "read" | "write", call: () => Promise<T>, needed = access): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (isPermissionRefusal(err, access)) throw new PermissionError(permissionFix(path, needed));
    throw err;
  }
}

/**
 * E.g. "u/bob cannot write f/aws_oidc/aws_credentials: give u/bob, or a group u/bob is in,
 * write access to folder aws_oidc (...), or set save_to to a path under u/bob/".
 */
export function permissionFix(path: string, access: "read" | "write"): string {
  const user = jobOwner();
  const [kind, owner] = path.split("/");
  const where = kind === "f"
    ? `give ${user}, or a group ${user} is in, ${access} access to folder ${owner} (extra_perms in f/${owner}/folder.meta.yaml: ${access === "write" ? "true writes" : "false reads, true also writes"})`
    : `only ${kind}/${owner} and workspace admins can ${access} under ${kind}/${owner}/`;
  const instead = access === "write" ? `set save_to to a path under ${user}/` : `use credentials saved under ${user}/ (assume_role with save_to ${user}/aws_credentials)`;
  return `${user} cannot ${access} ${path}: ${where}, or ${instead}`;
}

/**
 * Who Windmill checks the job's reads and writes against: WM_PERMISSIONED_AS (`u/<user>` or
 * `g/<group>`). WM_USERNAME is the job's creator, which for a schedule's run is
 * `schedule-<path>`, not a user anyone can grant anything to.
 */
function jobOwner(): string {
  const owner = process.env.WM_PERMISSIONED_AS ?? "";
  if (/^[ug]\/[^/]+$/.test(owner)) return owner;
  return process.env.WM_USERNAME ? `u/${process.env.WM_USERNAME}` : "this job's user";
}

/**
 * Updates the resource, or creates it the first time. wmill.setResource checks for
 * existence and then creates, so two first-time saves racing each other make the slower
 * one fail on "already exists"; that one updates instead.
 */
async function writeResource(path: string, resourceType: string, value: unknown, description: string | undefined): Promise<void> {
  const workspace = wmill.getWorkspace();
  const update = () => refusedAsPermission(path, "write", () => wmill.ResourceService.updateResourceValue({ workspace, path, requestBody: { value } }));
  if (await wmill.ResourceService.existsResource({ workspace, path })) return void (await update());
  try {
    await wmill.ResourceService.createResource({ workspace, requestBody: { path, value, resource_type: resourceType, description } });
  } catch (err) {
    if (isPermissionRefusal(err, "write")) throw new PermissionError(permissionFix(path, "write"));
    if (!(await wmill.ResourceService.existsResource({ workspace, path }))) {
      throw new Error(`Windmill refused to create the resource ${path} (${(err as { body?: unknown }).body ?? (err as Error).message}): check that the ${resourceType} resource type exists (wmill sync push, or the Hub for hub types) and that this job may write to ${path.split("/").slice(0, 2).join("/")}`);
    }
    await update();
  }
}

/**
 * Deletes generations the resource no longer points to, once past the grace period. Reading the
 * value back also checks that our update landed: if the resource points elsewhere, either a
 * racing save replaced ours (fine) or Windmill dropped our update because this user may not
 * write the path (update_value answers 200 all the same): whoami tells which.
 */
async function deleteStaleGenerations(resourcePath: string, ourVariable: string): Promise<void> {
  const workspace = wmill.getWorkspace();
  const current = JSON.stringify(await refusedAsPermission(resourcePath, "read", () => wmill.ResourceService.getResourceValue({ workspace, path: resourcePath }), "write"));
  if (!current.includes(`$var:${ourVariable}"`) && !(await mayWrite(resourcePath))) throw new PermissionError(permissionFix(resourcePath, "write"));
  const variables = await wmill.VariableService.listVariable({ workspace, pathStart: `${resourcePath}__` });
  const cutoff = Date.now() - GENERATION_GRACE_MS;
  for (const { path } of variables) {
    if (current.includes(`$var:${path}"`) || generationTime(path) > cutoff) continue;
    await wmill.VariableService.deleteVariable({ workspace, path }).catch(() => {
      // Another save's cleanup got there first.
    });
  }
}

/** Whether Windmill lets this job's user write `path` (users.rs whoami: `folders` are the writable ones). */
async function mayWrite(path: string): Promise<boolean> {
  const me = await wmill.UserService.whoami({ workspace: wmill.getWorkspace() });
  const [kind, owner] = path.split("/");
  return me.is_admin || (kind === "u" && owner === me.username) || (kind === "f" && me.folders.includes(owner));
}
