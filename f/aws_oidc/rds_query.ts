// Runs one parameterised SQL statement on RDS PostgreSQL with IAM authentication and
// returns the rows themselves, which Windmill shows as a table. Values go in args ($1, $2,
// ...), never into the SQL text.
import { runQuery } from "./lib/rdsQuery.ts";
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
  sql: Sql,
  args: (string | number | boolean | null)[] = [],
  row_limit: number = 1000,
  statement_timeout: string = "30s",
) {
  const o = withDefaults({ args, row_limit, statement_timeout }, { args: [], row_limit: 1000, statement_timeout: "30s" });
  return await runQuery(credentials, database, { sql, args: o.args, rowLimit: o.row_limit, statementTimeout: o.statement_timeout });
}
