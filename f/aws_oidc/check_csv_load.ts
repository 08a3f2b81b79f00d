// The check step of s3_csv_to_rds, before it fans out: the database resource works with the
// flow's credentials, the table exists and the IAM user may insert into it and into the load
// ledger, and the first object's header fits the table's columns. An empty prefix fails here
// unless allow_empty is set. A mistake fails once, with one fix, instead of once per object.
import type { AwsStsCredentials as SavedCredentials } from "./lib/credentialsResource.ts";
import { checkCsvLoad } from "./lib/loadPreflight.ts";
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
  keys: string[],
  table: string,
  prefix: string = "",
  header: boolean = true,
  delimiter: string = ",",
  quote: string = "\"",
  ledger_table: string = "aws_oidc_load_ledger",
  allow_empty: boolean = false,
) {
  const o = withDefaults(
    { prefix, header, delimiter, quote, ledger_table, allow_empty },
    { prefix: "", header: true, delimiter: ",", quote: "\"", ledger_table: "aws_oidc_load_ledger", allow_empty: false },
  );
  return await checkCsvLoad(credentials, database, {
    bucket, prefix: o.prefix, keys, table, ledgerTable: o.ledger_table, allowEmpty: o.allow_empty,
    format: { header: o.header, delimiter: o.delimiter, quote: o.quote, nullMarker: "" },
  });
}
