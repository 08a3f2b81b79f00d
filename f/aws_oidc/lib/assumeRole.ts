// Windmill OIDC ID token -> STS AssumeRoleWithWebIdentity (-> optional AssumeRole chain).
import {
  AssumeRoleCommand,
  AssumeRoleWithWebIdentityCommand,
  STSClient,
  type Credentials,
} from "@aws-sdk/client-sts";
import type { AwsCredentialIdentity } from "@aws-sdk/types";
import { getWindmillIdToken, readClaims, WindmillOidcError, type IdTokenClaims } from "./idToken.ts";
import { withRetries } from "./retry.ts";
import { explainStsError, isTransientStsError, stsErrorCode, type StsCallContext } from "./stsErrors.ts";

/** STS caps sessions of a role assumed by another role's session at one hour. */
export const CHAINED_SESSION_MAX_SECONDS = 3600;
/**
 * Retry budget for transient STS errors: 4 attempts with full-jitter backoff from 200 ms
 * up to 2 s keeps a throttled burst of jobs under ~4 s of waiting each.
 */
export const STS_RETRY = { attempts: 4, baseDelayMs: 200, maxDelayMs: 2000 };

/** Everything needed to mint a session again; nothing here is secret. */
export interface MintParams {
  roleArn: string;
  region: string;
  audience: string;
  sessionName: string;
  durationSeconds: number;
  sessionPolicy?: string;
  policyArns?: string[];
  chainRoleArn?: string;
  chainExternalId?: string;
}

/**
 * A live STS session in memory: what the SDK clients take as credentials, with whose
 * session it is. The saved resource (AwsStsCredentials) is its form at rest.
 */
export interface SessionCredentials extends AwsCredentialIdentity {
  sessionToken: string;
  expiration: Date;
  /** The role whose permissions the session carries (the chained one, when chaining). */
  roleArn: string;
  assumedRoleArn: string;
  accountId: string;
  region: string;
}

export interface MintResult {
  credentials: SessionCredentials;
  /** STS calls this mint made, retries included. */
  stsCalls: number;
  claims: IdTokenClaims;
}

export type Log = (line: string) => void;

export async function assumeRoleWithWindmillToken(params: MintParams, log: Log = console.log): Promise<MintResult> {
  const client = new STSClient({ region: params.region, maxAttempts: 1 });
  const counter = { calls: 0 };
  let claims: IdTokenClaims | undefined;
  const ctx = (): StsCallContext => ({ operation: "AssumeRoleWithWebIdentity", roleArn: params.roleArn, region: params.region, claims });
  log(`Assuming ${params.roleArn} in ${params.region} as session ${params.sessionName} for ${params.durationSeconds} s (ID token audience ${params.audience})`);
  const response = await callSts(ctx, counter, log, async () => {
    // A fresh token on every attempt: a retried call must not reuse one that may have expired.
    const idToken = await getWindmillIdToken(params.audience);
    claims = readClaims(idToken);
    return client.send(
      new AssumeRoleWithWebIdentityCommand({
        RoleArn: params.roleArn,
        RoleSessionName: params.sessionName,
        WebIdentityToken: idToken,
        DurationSeconds: params.durationSeconds,
        Policy: params.sessionPolicy,
        PolicyArns: params.policyArns?.map((arn) => ({ arn })),
      }),
    );
  });
  let credentials = toSession(response.Credentials, response.AssumedRoleUser?.Arn, params.roleArn, params.region);
  if (params.chainRoleArn) credentials = await chainRole(params, credentials, counter, log);
  return { credentials, stsCalls: counter.calls, claims: claims as IdTokenClaims };
}

async function chainRole(params: MintParams, first: SessionCredentials, counter: { calls: number }, log: Log): Promise<SessionCredentials> {
  const roleArn = params.chainRoleArn as string;
  const duration = Math.min(params.durationSeconds, CHAINED_SESSION_MAX_SECONDS);
  log(`Chaining into ${roleArn} for ${duration} s (role chaining caps sessions at 1 h)`);
  const client = new STSClient({
    region: params.region,
    maxAttempts: 1,
    credentials: first,
  });
  const ctx = (): StsCallContext => ({ operation: "AssumeRole", roleArn, region: params.region, callerRoleArn: first.roleArn });
  const response = await callSts(ctx, counter, log, () =>
    client.send(
      new AssumeRoleCommand({
        RoleArn: roleArn,
        RoleSessionName: params.sessionName,
        DurationSeconds: duration,
        ExternalId: params.chainExternalId || undefined,
      }),
    ),
  );
  return toSession(response.Credentials, response.AssumedRoleUser?.Arn, roleArn, params.region);
}

async function callSts<T>(ctx: () => StsCallContext, counter: { calls: number }, log: Log, call: () => Promise<T>): Promise<T> {
  try {
    return await withRetries(
      () => {
        counter.calls++;
        return call();
      },
      {
        ...STS_RETRY,
        isRetryable: isTransientStsError,
        onRetry: (err, attempt, delayMs) =>
          log(`STS ${ctx().operation} hit a transient ${stsErrorCode(err)}; retrying in ${delayMs} ms (attempt ${attempt + 1} of ${STS_RETRY.attempts})`),
      },
    );
  } catch (err) {
    if (err instanceof WindmillOidcError) throw err;
    throw explainStsError(err, ctx());
  }
}

/** The one conversion from an STS answer to a session. */
function toSession(creds: Credentials | undefined, assumedRoleArn: string | undefined, roleArn: string, region: string): SessionCredentials {
  if (!creds?.AccessKeyId || !creds.SecretAccessKey || !creds.SessionToken || !creds.Expiration) {
    throw new Error(`STS answered without complete credentials for ${roleArn}`);
  }
  return {
    accessKeyId: creds.AccessKeyId,
    secretAccessKey: creds.SecretAccessKey,
    sessionToken: creds.SessionToken,
    expiration: new Date(creds.Expiration),
    roleArn,
    assumedRoleArn: assumedRoleArn ?? roleArn,
    accountId: roleArn.split(":")[4],
    region,
  };
}
