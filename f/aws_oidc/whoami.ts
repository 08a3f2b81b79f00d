// Shows who AWS says a saved session is (STS GetCallerIdentity) and the claims of this
// job's ID token, to check a role's trust policy against. Never shows a secret.
import { whoAmI } from "./lib/whoAmI.ts";
import type { AwsStsCredentials as AwsStsCredentialsValue } from "./lib/credentialsResource.ts";
import { withDefaults } from "./lib/optionalArgs.ts";

/** Picks an aws_sts_credentials resource in the run form. */
type AwsStsCredentials = AwsStsCredentialsValue;

export async function main(credentials: AwsStsCredentials, audience: string = "sts.amazonaws.com") {
  return await whoAmI(credentials, withDefaults({ audience }, { audience: "sts.amazonaws.com" }).audience);
}
