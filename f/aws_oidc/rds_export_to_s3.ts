// Streams the rows of a query (COPY ... TO STDOUT as CSV) into an S3 object with a
// multipart upload, in constant memory; optional gzip.
import { exportQueryToS3 } from "./lib/s3RdsCopy.ts";
import type { AwsStsCredentials as SavedCredentials } from "./lib/credentialsResource.ts";
import type { AwsRdsIamPostgres as Database } from "./lib/rds.ts";
import { withDefaults } from "./lib/optionalArgs.ts";
import type { Sql } from "windmill-client";

/** Picks an aws_sts_credentials resource saved by assume_role. */
type AwsStsCredentials = SavedCredentials;
/** Picks an aws_rds_iam_postgres resource (host, port, database, user, TLS; no password). */
type AwsRdsIamPostgres = Database;

export async function main(
  credentials: AwsStsCredentials,
  database: AwsRdsIamPostgres,
  query: Sql,
  bucket: string,
  key: string,
  header: boolean = true,
  gzip: boolean = false,
) {
  const optional = withDefaults({ header, gzip }, { header: true, gzip: false });
  return await exportQueryToS3(credentials, database, { query, bucket, key, ...optional });
}
