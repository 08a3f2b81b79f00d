// Writes a hub-typed `postgresql` resource for an RDS database with IAM auth: its password
// is a fresh 15-minute IAM token in a secret variable, so Windmill's own PostgreSQL scripts
// reach RDS with no stored password. The schedule f/aws_oidc/refresh_rds_postgresql re-runs
// it every 10 minutes.
import { saveRdsPostgresqlResource } from "./lib/pgResource.ts";
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
  save_to: string = "f/aws_oidc/orders_db_pg",
) {
  const o = withDefaults({ save_to }, { save_to: "f/aws_oidc/orders_db_pg" });
  return await saveRdsPostgresqlResource(credentials, database, o.save_to);
}
