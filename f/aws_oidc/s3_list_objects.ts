// Lists objects under a prefix as a table: key, size, last modified, ETag, storage class.
import { listObjects, s3Client } from "./lib/s3.ts";
import { withDefaults } from "./lib/optionalArgs.ts";
import type { AwsStsCredentials as SavedCredentials } from "./lib/credentialsResource.ts";

/** Picks an aws_sts_credentials resource saved by assume_role. */
type AwsStsCredentials = SavedCredentials;

export async function main(
  credentials: AwsStsCredentials,
  bucket: string,
  prefix: string = "",
  delimiter: string = "",
  limit: number = 0,
) {
  const o = withDefaults({ prefix, delimiter, limit }, { prefix: "", delimiter: "", limit: 0 });
  const { s3 } = await s3Client(credentials);
  return await listObjects(s3, { bucket, ...o });
}
