// What f/aws_oidc/assume_role does: validate every input, reuse the saved session when
// it has enough time left, otherwise mint one and save it as an aws_sts_credentials resource.
import wmill from "windmill-client";
import { assumeRoleWithWindmillToken, type Log, type MintParams } from "./assumeRole.ts";
import { CREDENTIALS_RESOURCE_TYPE, maskAccessKeyId, saveCredentialsResource, type AwsStsCredentials } from "./credentialsResource.ts";
import { refusedAsPermission } from "./generationalResource.ts";
import { DEFAULT_AUDIENCE } from "./idToken.ts";
import {
  checkPolicyArns,
  checkSessionName,
  checkSessionPolicy,
  checkWindmillPath,
  defaultSessionName,
  formatSeconds,
  InputError,
  parseDuration,
  parseRoleArn,
} from "./validate.ts";
import { REFRESH_BEFORE_EXPIRY_MS } from "./credentialsProvider.ts";
import { checkKnownRegion } from "./awsRegions.ts";

export interface AssumeRoleInput {
  awsOidc?: { roleArn?: string; region?: string } | null;
  roleArn?: string;
  region?: string;
  audience?: string;
  sessionName?: string;
  duration?: string | number;
  sessionPolicy?: string;
  policyArns?: string[];
  chainRoleArn?: string;
  chainExternalId?: string;
  saveTo: string;
  minRemaining?: string | number;
  force?: boolean;
}

export interface AssumeRoleSummary {
  resource: string;
  /** Paste into a step's input to use these credentials. */
  resource_ref: string;
  reused_saved_session: boolean;
  role_arn: string;
  assumed_role_arn: string;
  account: string;
  region: string;
  access_key_id: string;
  expiration: string;
  expires_in: string;
  sts_calls: number;
}

export function checkAssumeRoleInput(input: AssumeRoleInput): { mint: MintParams; saveTo: string; minRemainingSeconds: number } {
  const fromResource = input.awsOidc ?? undefined;
  const roleArn = input.roleArn || fromResource?.roleArn;
  const region = input.region || fromResource?.region;
  if (!roleArn) {
    throw new InputError("role_arn", "no role given", "Pick an aws_oidc resource in aws_oidc, or fill role_arn and region");
  }
  if (input.roleArn && fromResource?.roleArn && input.roleArn !== fromResource.roleArn) {
    throw new InputError("role_arn", "it differs from the role of the aws_oidc resource", "Leave role_arn empty to use the resource's role, or clear aws_oidc");
  }
  const { partition } = parseRoleArn(input.roleArn ? "role_arn" : "aws_oidc.roleArn", roleArn);
  const chainRoleArn = input.chainRoleArn?.trim() || undefined;
  if (chainRoleArn) parseRoleArn("chain_role_arn", chainRoleArn);
  if (input.chainExternalId && !chainRoleArn) {
    throw new InputError("chain_external_id", "it is set but chain_role_arn is empty", "Fill chain_role_arn, or clear chain_external_id");
  }
  const sessionName = input.sessionName?.trim()
    ? checkSessionName("session_name", input.sessionName.trim())
    : defaultSessionName(process.env.WM_JOB_PATH, process.env.WM_JOB_ID);
  const audience = input.audience?.trim() || DEFAULT_AUDIENCE;
  const mint: MintParams = {
    roleArn,
    region: checkKnownRegion(input.region || !fromResource ? "region" : "aws_oidc.region", region, partition),
    audience,
    sessionName,
    durationSeconds: parseDuration("duration", input.duration ?? 3600),
    sessionPolicy: checkSessionPolicy("session_policy", input.sessionPolicy),
    policyArns: checkPolicyArns("policy_arns", input.policyArns ?? []),
    chainRoleArn,
    chainExternalId: input.chainExternalId || undefined,
  };
  const minRemainingSeconds = parseDuration("min_remaining", input.minRemaining ?? "15m", REFRESH_BEFORE_EXPIRY_MS / 1000, 43_200);
  return { mint, saveTo: checkWindmillPath("save_to", input.saveTo), minRemainingSeconds };
}

export async function assumeRoleAndSave(input: AssumeRoleInput, log: Log = console.log): Promise<AssumeRoleSummary> {
  const { mint, saveTo, minRemainingSeconds } = checkAssumeRoleInput(input);
  const saved = await readSavedResource(saveTo);
  if (saved && !input.force && sameSessionShape(saved.mint, mint)) {
    const left = new Date(saved.expiration).getTime() - Date.now();
    if (left > minRemainingSeconds * 1000) {
      log(`Reusing the session saved at ${saveTo}: ${formatSeconds(Math.floor(left / 1000))} left, more than min_remaining (${formatSeconds(minRemainingSeconds)})`);
      return summary(saveTo, saved, true, 0);
    }
  }
  const { credentials, stsCalls } = await assumeRoleWithWindmillToken(mint, log);
  const written = await saveCredentialsResource(saveTo, credentials, mint);
  log(`Saved ${credentials.assumedRoleArn} (key ${maskAccessKeyId(credentials.accessKeyId)}) to ${saveTo}; secrets are in secret variables`);
  return summary(saveTo, written, false, stsCalls);
}

/**
 * Reads the saved resource WITHOUT resolving its secrets (they stay `$var:` references):
 * only expiry and shape matter here.
 */
async function readSavedResource(path: string): Promise<AwsStsCredentials | undefined> {
  const workspace = wmill.getWorkspace();
  if (!(await wmill.ResourceService.existsResource({ workspace, path }))) return undefined;
  // exists_resource ignores permissions (resources.rs): the read is where a refusal shows, and
  // what this user lacks is write, since it came to save here.
  const resource = await refusedAsPermission(path, "read", () => wmill.ResourceService.getResource({ workspace, path }), "write");
  if (resource.resource_type !== CREDENTIALS_RESOURCE_TYPE) {
    throw new InputError("save_to", `${path} holds a ${resource.resource_type} resource, not ${CREDENTIALS_RESOURCE_TYPE}`,
      "Choose another path for the credentials, e.g. f/aws_oidc/aws_credentials");
  }
  return resource.value as AwsStsCredentials;
}

/** A saved session can stand in for a new one only if it carries the same permissions. */
function sameSessionShape(a: MintParams | undefined, b: MintParams): boolean {
  if (!a) return false;
  const key = (m: MintParams) =>
    JSON.stringify([m.roleArn, m.region, m.audience, m.sessionPolicy ?? null, [...(m.policyArns ?? [])].sort(), m.chainRoleArn ?? null, m.chainExternalId ?? null]);
  return key(a) === key(b);
}

function summary(path: string, s: AwsStsCredentials, reused: boolean, stsCalls: number): AssumeRoleSummary {
  const secondsLeft = Math.max(0, Math.floor((new Date(s.expiration).getTime() - Date.now()) / 1000));
  return {
    resource: path,
    resource_ref: `$res:${path}`,
    reused_saved_session: reused,
    role_arn: s.roleArn,
    assumed_role_arn: s.assumedRoleArn,
    account: s.accountId,
    region: s.region,
    access_key_id: maskAccessKeyId(s.awsAccessKeyId),
    expiration: s.expiration,
    expires_in: formatSeconds(secondsLeft),
    sts_calls: stsCalls,
  };
}
