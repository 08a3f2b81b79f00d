// Streams a CSV object from S3 into a table with COPY, in one transaction: either every
// row lands or none. A ledger table records each object loaded (same transaction), so a
// re-run skips it unless forced. gzip objects are decompressed on the fly. `range` loads
// one slice of a big object (bytes=first-last, cut between records by plan_csv_loads), so
// a flow can load one object in parallel iterations; `etag` refuses an object that changed
// since those slices were planned.
import { loadCsvFromS3 } from "./lib/s3RdsCopy.ts";
import type { AwsStsCredentials as SavedCredentials } from "./lib/credentialsResource.ts";
import type { AwsRdsIamPostgres as Database } from "./lib/rds.ts";
import { withDefaults } from "./lib/optionalArgs.ts";

/** Picks an aws_sts_credentials resource saved by assume_role. */
type AwsStsCredentials = SavedCredentials;
/** Picks an aws_rds_iam_postgres resource (host, port, database, user, TLS; no password). */
type AwsRdsIamPostgres = Database;

export async function main(
  credentials: AwsStsCredentials,
  database: AwsRdsIamPostgres,
  bucket: string,
  key: string,
  table: string,
  range: string = "",
  etag: string = "",
  columns: string[] = [],
  header: boolean = true,
  delimiter: string = ",",
  quote: string = "\"",
  null_marker: string = "",
  gzip: "auto" | "yes" | "no" = "auto",
  ledger_table: string = "aws_oidc_load_ledger",
  force: boolean = false,
) {
  const o = withDefaults(
    { range, etag, columns, header, delimiter, quote, null_marker, gzip, ledger_table, force },
    { range: "", etag: "", columns: [], header: true, delimiter: ",", quote: "\"", null_marker: "", gzip: "auto", ledger_table: "aws_oidc_load_ledger", force: false },
  );
  return await loadCsvFromS3(credentials, database, {
    bucket, key, table, range: o.range, etag: o.etag, columns: o.columns, gzip: o.gzip, ledgerTable: o.ledger_table, force: o.force,
    format: { header: o.header, delimiter: o.delimiter, quote: o.quote, nullMarker: o.null_marker },
  });
}
