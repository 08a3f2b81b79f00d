// The planning step of s3_csv_to_rds: one load per object, or per slice of an object
// bigger than split_mib (cut between records), for the for-loop to run in parallel.
import type { AwsStsCredentials as SavedCredentials } from "./lib/credentialsResource.ts";
import { planCsvLoads } from "./lib/csvSlices.ts";
import { s3Client } from "./lib/s3.ts";
import { withDefaults } from "./lib/optionalArgs.ts";

/** Picks an aws_sts_credentials resource saved by assume_role. */
type AwsStsCredentials = SavedCredentials;

export async function main(credentials: AwsStsCredentials, bucket: string, keys: string[], split_mib: number = 0, quote: string = "\"") {
  const optional = withDefaults({ split_mib, quote }, { split_mib: 0, quote: "\"" });
  const { s3 } = await s3Client(credentials);
  return await planCsvLoads(s3, { bucket, keys, splitMib: optional.split_mib, quote: optional.quote });
}
