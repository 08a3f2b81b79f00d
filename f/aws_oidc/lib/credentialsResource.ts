// The `aws_sts_credentials` resource: what assume_role saves and every AWS step reads.
// Its two secrets live in secret variables, written torn-proof (generationalResource.ts).
import wmill from "windmill-client";
import type { MintParams, SessionCredentials } from "./assumeRole.ts";
import { PermissionError, refusedAsPermission, saveGenerationalResource } from "./generationalResource.ts";
import { InputError } from "./validate.ts";

export const CREDENTIALS_RESOURCE_TYPE = "aws_sts_credentials";

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

/** Saves a session at `resourcePath`; returns the value written (secrets as `$var:` references). */
export async function saveCredentialsResource(resourcePath: string, creds: SessionCredentials, mint: MintParams): Promise<AwsStsCredentials> {
  return await saveGenerationalResource({
    resourcePath,
    resourceType: CREDENTIALS_RESOURCE_TYPE,
    secrets: { secret_access_key: creds.secretAccessKey, session_token: creds.sessionToken },
    secretDescription: `STS session ${creds.assumedRoleArn} until ${creds.expiration.toISOString()} (written by f/aws_oidc/assume_role for ${resourcePath})`,
    value: (secret): AwsStsCredentials => ({
      region: creds.region,
      awsAccessKeyId: creds.accessKeyId,
      awsSecretAccessKey: secret.secret_access_key,
      awsSessionToken: secret.session_token,
      expiration: creds.expiration.toISOString(),
      roleArn: creds.roleArn,
      assumedRoleArn: creds.assumedRoleArn,
      accountId: creds.accountId,
      resourcePath,
      mint,
    }),
  });
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
