// The hub-typed `postgresql` resource backed by RDS IAM auth: what
// f/aws_oidc/rds_iam_postgresql_resource writes, so Windmill's own PostgreSQL scripts (and
// anything else that takes a `postgresql` resource) reach RDS with no stored password. Its
// password is a `$var:` reference to a secret variable holding a 15-minute IAM token,
// re-minted by the schedule f/aws_oidc/refresh_rds_postgresql and written torn-proof
// (generationalResource.ts). RDS checks a token only when a connection opens, so a job that
// connected before the token expired keeps its session.
import { awsClientConfig } from "./credentialsProvider.ts";
import type { AwsStsCredentials } from "./credentialsResource.ts";
import { saveGenerationalResource } from "./generationalResource.ts";
import { checkDatabase, rdsSigner } from "./rds.ts";
import { checkWindmillPath, formatSeconds, InputError } from "./validate.ts";

export const POSTGRESQL_RESOURCE_TYPE = "postgresql";
export const REFRESH_SCHEDULE = "f/aws_oidc/refresh_rds_postgresql";
/** RDS IAM tokens are valid for 15 minutes (RDS User Guide, UsingWithRDS.IAMDBAuth.Connecting). */
export const TOKEN_LIFETIME_SECONDS = 15 * 60;

/** The hub's `postgresql` resource type, as Windmill's pg_executor.rs reads it (PgDatabase). */
export interface PostgresqlResource {
  host: string;
  port: number;
  user: string;
  dbname: string;
  sslmode: "verify-full";
  root_certificate_pem: string;
  /** `$var:<path>` of the secret variable holding the current IAM token. */
  password: string;
}

export interface PgResourceSummary {
  resource: string;
  /** Pass as a PostgreSQL script's `database` argument. */
  resource_ref: string;
  host: string;
  port: number;
  user: string;
  dbname: string;
  sslmode: string;
  password_expires_at: string;
  password_expires_in: string;
  refreshed_by: string;
}

/** What a person sees on the resource in Windmill: where its password comes from and what a PAM failure means. */
export function resourceDescription(saveTo: string): string {
  return `RDS IAM auth: the password is a 15-minute IAM token, re-minted every 10 minutes by the schedule ${REFRESH_SCHEDULE} `
    + `(f/aws_oidc/rds_iam_postgresql_resource with save_to ${saveTo}). A script using this resource that fails with `
    + `"PAM authentication failed" got an expired token: check that schedule is enabled and its last runs succeeded.`;
}

/**
 * Windmill's PostgreSQL client checks the server certificate against `host` whenever a root
 * certificate is given (pg_executor.rs connect: native-tls, hostname checks on), so only a
 * verify-full resource whose host is the endpoint itself can be written.
 */
function checkNativeDatabase(database: unknown) {
  const db = checkDatabase(database);
  if (db.tlsMode !== "verify-full") {
    throw new InputError("database.tlsMode", `it is ${db.tlsMode}, but the postgresql resource is written with sslmode verify-full`,
      "Use tlsMode verify-full with caCert: Windmill's PostgreSQL client verifies the certificate and host name whenever root_certificate_pem is set");
  }
  if (db.signingHost !== db.host || db.signingPort !== db.port) {
    throw new InputError("database.signingHost", `the host dialled (${db.host}:${db.port}) is not the endpoint (${db.signingHost}:${db.signingPort})`,
      "Windmill's PostgreSQL client checks the certificate against host, so host must be the instance endpoint; through a tunnel or proxy use f/aws_oidc/rds_query instead");
  }
  if (!db.caCert) {
    throw new InputError("database.caCert", "it is empty, and without root_certificate_pem Windmill's client accepts any certificate",
      "Paste the RDS CA bundle (https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem) into caCert");
  }
  return db;
}

/** Mints a token with the saved credentials and writes it as the `postgresql` resource at `saveTo`. */
export async function saveRdsPostgresqlResource(credentials: AwsStsCredentials | string, database: unknown, saveTo: string): Promise<PgResourceSummary> {
  const resourcePath = checkWindmillPath("save_to", saveTo);
  const db = checkNativeDatabase(database);
  const config = await awsClientConfig(credentials);
  const mintedAt = Date.now();
  const token = await rdsSigner(db, config.credentials, config.region).getAuthToken();
  const expiresAt = new Date(mintedAt + TOKEN_LIFETIME_SECONDS * 1000).toISOString();
  const value = await saveGenerationalResource({
    resourcePath,
    resourceType: POSTGRESQL_RESOURCE_TYPE,
    secrets: { password: token },
    secretDescription: `RDS IAM token for ${db.user}@${db.host}:${db.port}, valid until ${expiresAt} (written by f/aws_oidc/rds_iam_postgresql_resource for ${resourcePath})`,
    resourceDescription: resourceDescription(resourcePath),
    value: (secret): PostgresqlResource => ({
      host: db.host, port: db.port, user: db.user, dbname: db.database,
      sslmode: "verify-full", root_certificate_pem: db.caCert, password: secret.password,
    }),
  });
  return {
    resource: resourcePath,
    resource_ref: `$res:${resourcePath}`,
    host: value.host,
    port: value.port,
    user: value.user,
    dbname: value.dbname,
    sslmode: value.sslmode,
    password_expires_at: expiresAt,
    password_expires_in: formatSeconds(Math.max(0, Math.floor((Date.parse(expiresAt) - Date.now()) / 1000))),
    refreshed_by: REFRESH_SCHEDULE,
  };
}
