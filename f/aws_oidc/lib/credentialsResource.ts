// The `aws_sts_credentials` resource: what assume_role saves and every AWS step reads.
//
// Concurrent saves to one path must never leave a torn resource (an access key id from
// one session beside the secret of another). Each save writes its secrets to FRESH
// secret variables named after a new generation, then points the resource at them in a
// single update_value: the resource update is the only write two sessions share, and it
// replaces the whole value at once. Generations nothing points to are deleted later.
//
// Folder permissions decide who may save and who may use a session. Windmill refuses a new
// variable in a folder its user cannot write (400, row-level security), but an update_value
// it may not make changes nothing and still answers 200: so the save reads the value back,
// and a refusal of either kind names the path, the user and the permission to grant.
import wmill from "windmill-client";
import type { MintParams, SessionCredentials } from "./assumeRole.ts";
import { InputError } from "./validate.ts";

export const CREDENTIALS_RESOURCE_TYPE = "aws_sts_credentials";
/**
 * A generation's variables outlive replacement by this long, so a save racing ours
 * (secrets written, resource update not yet landed) never loses its variables to our cleanup.
 */
const GENERATION_GRACE_MS = 2 * 60 * 1000;
const SECRET_KEY_VAR = "secret_access_key";
const SESSION_TOKEN_VAR = "session_token";

/**
 * The resource value, the session at rest. As saved, the two secrets are `$var:`
 * references to secret variables; getResource and `$res:` arguments resolve them.
 */
export interface AwsStsCredentials {
  region: string;
  awsAccessKeyId: string;
  awsSecretAccessKey: string;
  awsSessionToken: string;
  /** ISO 8601. */
  expiration: string;
  roleArn: string;
  assumedRoleArn: string;
  accountId: string;
  /** Where this resource lives, so a step that refreshes the session can save it back. */
  resourcePath: string;
  mint: MintParams;
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

/** Saves a session at `resourcePath`; returns the value written (secrets as `$var:` references). */
export async function saveCredentialsResource(resourcePath: string, creds: SessionCredentials, mint: MintParams): Promise<AwsStsCredentials> {
  const generation = newGeneration();
  const secretKeyVar = generationVariable(resourcePath, SECRET_KEY_VAR, generation);
  const sessionTokenVar = generationVariable(resourcePath, SESSION_TOKEN_VAR, generation);
  const describe = `STS session ${creds.assumedRoleArn} until ${creds.expiration.toISOString()} (written by f/aws_oidc/assume_role for ${resourcePath})`;
  await refusedAsPermission(resourcePath, "write", () => wmill.setVariable(secretKeyVar, creds.secretAccessKey, true, describe));
  await refusedAsPermission(resourcePath, "write", () => wmill.setVariable(sessionTokenVar, creds.sessionToken, true, describe));
  const value: AwsStsCredentials = {
    region: creds.region,
    awsAccessKeyId: creds.accessKeyId,
    awsSecretAccessKey: `$var:${secretKeyVar}`,
    awsSessionToken: `$var:${sessionTokenVar}`,
    expiration: creds.expiration.toISOString(),
    roleArn: creds.roleArn,
    assumedRoleArn: creds.assumedRoleArn,
    accountId: creds.accountId,
    resourcePath,
    mint,
  };
  await writeResource(resourcePath, value);
  await deleteStaleGenerations(resourcePath, secretKeyVar);
  return value;
}

/** A refusal that names the path, the job's user (WM_USERNAME) and what to grant. */
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
  const user = process.env.WM_USERNAME ? `u/${process.env.WM_USERNAME}` : "this job's user";
  const [kind, owner] = path.split("/");
  const where = kind === "f"
    ? `give ${user}, or a group ${user} is in, ${access} access to folder ${owner} (extra_perms in f/${owner}/folder.meta.yaml: ${access === "write" ? "true writes" : "false reads, true also writes"})`
    : `only ${kind}/${owner} and workspace admins can ${access} under ${kind}/${owner}/`;
  const instead = access === "write" ? `set save_to to a path under ${user}/` : `use credentials saved under ${user}/ (assume_role with save_to ${user}/aws_credentials)`;
  return `${user} cannot ${access} ${path}: ${where}, or ${instead}`;
}

/** The session a resolved resource holds. */
export function sessionFromResource(value: AwsStsCredentials): SessionCredentials {
  return {
    accessKeyId: value.awsAccessKeyId,
    secretAccessKey: value.awsSecretAccessKey,
    sessionToken: value.awsSessionToken,
    expiration: new Date(value.expiration),
    roleArn: value.roleArn,
    assumedRoleArn: value.assumedRoleArn,
    accountId: value.accountId,
    region: value.region,
  };
}

/**
 * Updates the resource, or creates it the first time. wmill.setResource checks for
 * existence and then creates, so two first-time saves racing each other make the slower
 * one fail on "already exists"; that one updates instead.
 */
async function writeResource(path: string, value: unknown): Promise<void> {
  const workspace = wmill.getWorkspace();
  const update = () => refusedAsPermission(path, "write", () => wmill.ResourceService.updateResourceValue({ workspace, path, requestBody: { value } }));
  if (await wmill.ResourceService.existsResource({ workspace, path })) return void (await update());
  try {
    await wmill.ResourceService.createResource({ workspace, requestBody: { path, value, resource_type: CREDENTIALS_RESOURCE_TYPE } });
  } catch (err) {
    if (isPermissionRefusal(err, "write")) throw new PermissionError(permissionFix(path, "write"));
    if (!(await wmill.ResourceService.existsResource({ workspace, path }))) {
      throw new Error(`Windmill refused to create the resource ${path} (${(err as { body?: unknown }).body ?? (err as Error).message}): check that the aws_sts_credentials resource type was pushed (wmill sync push) and that this job may write to ${path.split("/").slice(0, 2).join("/")}`);
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
async function deleteStaleGenerations(resourcePath: string, ourSecretVar: string): Promise<void> {
  const workspace = wmill.getWorkspace();
  const current = JSON.stringify(await refusedAsPermission(resourcePath, "read", () => wmill.ResourceService.getResourceValue({ workspace, path: resourcePath }), "write"));
  if (!current.includes(`$var:${ourSecretVar}"`) && !(await mayWrite(resourcePath))) throw new PermissionError(permissionFix(resourcePath, "write"));
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

/** Reads a saved resource with its secrets resolved; refuses a resource of another shape. */
export async function loadCredentialsResource(resourcePath: string): Promise<AwsStsCredentials> {
  let value: unknown;
  try {
    // What wmill.getResource calls, without its wrapper, which drops the status a refusal is told by.
    value = await refusedAsPermission(resourcePath, "read", () =>
      wmill.ResourceService.getResourceValueInterpolated({ workspace: wmill.getWorkspace(), path: resourcePath }));
  } catch (err) {
    if (err instanceof PermissionError) throw err;
    throw new InputError("credentials", `no resource at ${resourcePath} (or not visible to this job)`,
      "Run f/aws_oidc/assume_role with save_to set to this path first, or pick an existing aws_sts_credentials resource");
  }
  return checkCredentials("credentials", value, resourcePath);
}

/** Checks that a value (resolved `$res:` arg or getResource result) is an aws_sts_credentials. */
export function checkCredentials(input: string, value: unknown, where = "the given value"): AwsStsCredentials {
  const v = (value ?? {}) as Partial<AwsStsCredentials>;
  const missing = (["region", "awsAccessKeyId", "awsSecretAccessKey", "awsSessionToken", "expiration", "mint"] as const).filter((k) => !v[k]);
  if (typeof value !== "object" || missing.length > 0) {
    throw new InputError(input, `${where} is not an aws_sts_credentials resource (missing ${missing.join(", ") || "everything"})`,
      "Pick a resource saved by f/aws_oidc/assume_role");
  }
  if (String(v.awsSecretAccessKey).startsWith("$var:") || String(v.awsSessionToken).startsWith("$var:")) {
    throw new InputError(input, `the secrets of ${where} were not resolved`,
      "Pass the resource as $res:<path> (Windmill then resolves its $var: secrets) or its path as a string");
  }
  return v as AwsStsCredentials;
}

/** Shows enough of an access key id to tell sessions apart in CloudTrail, never the whole id. */
export function maskAccessKeyId(accessKeyId: string): string {
  return accessKeyId.length > 8 ? `${accessKeyId.slice(0, 4)}…${accessKeyId.slice(-4)}` : "…";
}
