// Deletes a list of keys or everything under a prefix, 1000 keys per request, with
// per-key failures reported. Try it with dry_run first.
import { deleteObjects, s3Client } from "./lib/s3.ts";
import type { AwsStsCredentials as SavedCredentials } from "./lib/credentialsResource.ts";
import { withDefaults } from "./lib/optionalArgs.ts";

/** Picks an aws_sts_credentials resource saved by assume_role. */
type AwsStsCredentials = SavedCredentials;

export async function main(
  credentials: AwsStsCredentials,
  bucket: string,
  keys: string[] = [],
  prefix: string = "",
  dry_run: boolean = true,
) {
  const o = withDefaults({ keys, prefix, dry_run }, { keys: [], prefix: "", dry_run: true });
  const { s3 } = await s3Client(credentials);
  return await deleteObjects(s3, { bucket, keys: o.keys, prefix: o.prefix, dryRun: o.dry_run });
}
