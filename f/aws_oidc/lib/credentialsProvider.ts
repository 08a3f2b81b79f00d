// An AWS SDK credentials provider backed by Windmill OIDC. Unlike the SDK's
// fromWebToken (which keeps one fixed token and fails to refresh once it expires), it
// asks Windmill for a fresh ID token on every mint. One provider per source is shared
// by every client in the job, so an S3 client and an RDS signer refresh once, together.
import { assumeRoleWithWindmillToken, type Log, type MintParams, type SessionCredentials } from "./assumeRole.ts";
import {
  checkCredentials,
  loadCredentialsResource,
  saveCredentialsResource,
  sessionFromResource,
  type AwsStsCredentials,
} from "./credentialsResource.ts";

/** Refresh this long before expiry: the SDK's own providers use the same 5-minute window. */
export const REFRESH_BEFORE_EXPIRY_MS = 5 * 60 * 1000;

/** What every AWS SDK v3 client here takes as `credentials` (a session is an AwsCredentialIdentity). */
export type CredentialsProvider = () => Promise<SessionCredentials>;

export interface ProviderSource {
  mint: MintParams;
  /** Credentials already in hand (from a saved resource); used until they near expiry. */
  initial?: SessionCredentials;
  /** Where refreshed credentials are saved back, so later steps reuse them. */
  resourcePath?: string;
}

export function needsRefresh(expiration: Date, now = Date.now()): boolean {
  return expiration.getTime() - now <= REFRESH_BEFORE_EXPIRY_MS;
}

export function windmillCredentialsProvider(source: ProviderSource, log: Log = console.log): CredentialsProvider {
  let current = source.initial;
  let pending: Promise<SessionCredentials> | undefined;

  async function refresh(): Promise<SessionCredentials> {
    if (source.resourcePath) {
      // Another step may have refreshed the shared resource already: reuse its session.
      const saved = sessionFromResource(await loadCredentialsResource(source.resourcePath));
      if (!needsRefresh(saved.expiration)) return saved;
    }
    const { credentials } = await assumeRoleWithWindmillToken(source.mint, log);
    if (source.resourcePath) await saveCredentialsResource(source.resourcePath, credentials, source.mint);
    return credentials;
  }

  return async () => {
    if (!current || needsRefresh(current.expiration)) {
      pending ??= refresh().finally(() => (pending = undefined));
      current = await pending;
    }
    return current;
  };
}

const sharedProviders = new Map<string, CredentialsProvider>();

export interface AwsClientConfig {
  region: string;
  credentials: CredentialsProvider;
  /** The resource as loaded (secrets included): for reading expiration, role and account. */
  resource: AwsStsCredentials;
}

/**
 * Client config for any AWS SDK v3 client from a saved credentials resource, given as
 * its path ("f/aws_oidc/aws_credentials" or "$res:...") or as the resolved value.
 * Calls with the same resource share one provider, so one job refreshes at most once.
 */
export async function awsClientConfig(credentials: AwsStsCredentials | string, log: Log = console.log): Promise<AwsClientConfig> {
  const resourcePath = typeof credentials === "string" ? credentials.replace(/^\$res:/, "") : credentials.resourcePath;
  const resource = typeof credentials === "string" ? await loadCredentialsResource(resourcePath as string) : checkCredentials("credentials", credentials);
  const key = resourcePath ?? resource.awsAccessKeyId;
  let provider = sharedProviders.get(key);
  if (!provider) {
    provider = windmillCredentialsProvider({ mint: resource.mint, initial: sessionFromResource(resource), resourcePath }, log);
    sharedProviders.set(key, provider);
  }
  return { region: resource.region, credentials: provider, resource };
}
