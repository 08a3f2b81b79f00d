// Checks a setup end to end: who AWS thinks the saved session is, and what this job's
// ID token would show a trust policy (its claims, never the token).
import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import { awsClientConfig } from "./credentialsProvider.ts";
import type { AwsStsCredentials } from "./credentialsResource.ts";
import { maskAccessKeyId } from "./credentialsResource.ts";
import { describeClaims, getWindmillIdToken, readClaims } from "./idToken.ts";
import { formatSeconds } from "./validate.ts";
import { explainStsError } from "./stsErrors.ts";

export interface WhoAmI {
  account: string;
  arn: string;
  user_id: string;
  access_key_id: string;
  expiration: string;
  expires_in: string;
  /** What this job's token carries for the trust policy's conditions. */
  id_token_claims: Record<string, unknown>;
}

export async function whoAmI(credentials: AwsStsCredentials | string, audience: string): Promise<WhoAmI> {
  const config = await awsClientConfig(credentials);
  const sts = new STSClient({ region: config.region, credentials: config.credentials });
  const identity = await sts.send(new GetCallerIdentityCommand({})).catch((err: unknown) => {
    throw explainStsError(err, { operation: "GetCallerIdentity", roleArn: config.resource.roleArn, region: config.region });
  });
  const claims = readClaims(await getWindmillIdToken(audience));
  const current = await config.credentials();
  const expiration = current.expiration;
  return {
    account: identity.Account ?? "",
    arn: identity.Arn ?? "",
    user_id: identity.UserId ?? "",
    access_key_id: maskAccessKeyId(current.accessKeyId),
    expiration: expiration.toISOString(),
    expires_in: formatSeconds(Math.max(0, Math.floor((expiration.getTime() - Date.now()) / 1000))),
    id_token_claims: describeClaims(claims),
  };
}
