// The RDS stand-in's limits and fixed names: what RDS and Postgres allow, and how long we wait.

export const RDS_HOST = "127.0.0.1";
export const DEFAULT_REGION = "us-east-1";
/** RDS creates this role; `GRANT rds_iam TO user` is what switches a user to IAM auth. */
export const RDS_IAM_ROLE = "rds_iam";
/** The superuser adminSql uses; like an RDS master user it logs in with a password. */
export const SUPERUSER = "postgres";
export const ADMIN_DATABASE = "postgres";
/** The SigV4 service name RDS IAM tokens are signed for. */
export const RDS_DB_SERVICE = "rds-db";
/** RDS IAM tokens are good for 15 minutes at most; the SDK's Signer always asks for 900 s. */
export const MAX_TOKEN_LIFETIME_SECONDS = 900;
/** AWS accepts SigV4 dates up to 5 minutes ahead of its clock before calling it skew. */
export const MAX_CLOCK_SKEW_SECONDS = 300;
/** Enough history to see why the last few logins of a test run were refused. */
export const AUTH_FAILURES_KEPT = 50;
/** A hung STS stand-in must not hold a connection attempt forever. */
export const STS_TIMEOUT_MS = 5_000;
/** The gateway's checks, adminSql and the COPY-kill poller share this pool. */
export const ADMIN_POOL_SIZE = 4;
/** Postgres reads COPY data 64 KiB at a time; 1 MiB lands well inside a multi-MB COPY. */
export const DEFAULT_COPY_KILL_AFTER_BYTES = 1024 * 1024;
/** pg_stat_progress_copy is polled this often while a COPY kill is armed (off otherwise). */
export const COPY_KILL_POLL_MS = 2;
/** Another process can grab the free port we picked before Postgres binds it: retry then. */
export const POSTGRES_START_ATTEMPTS = 3;
/** Postgres log lines kept to explain a failed start. */
export const POSTGRES_LOG_KEPT = 40;
/** The certificates are made fresh at every start; a year outlives any dev session. */
export const CERT_VALIDITY_MS = 365 * 24 * 3600 * 1000;
/** Backdating notBefore keeps a client with a slightly slow clock from refusing the cert. */
export const CERT_BACKDATE_MS = 3600 * 1000;
export const RSA_BITS = 2048;

/** Protocol codes the gateway reads itself (everything else is pg-gateway's or Postgres's). */
export const PASSWORD_MESSAGE = 0x70; // 'p'
export const AUTHENTICATION_MESSAGE = 0x52; // 'R'
export const ERROR_MESSAGE = 0x45; // 'E'
export const AUTHENTICATION_OK = 0;
export const CANCEL_REQUEST_CODE = 80877102;
export const CANCEL_REQUEST_LENGTH = 16;
