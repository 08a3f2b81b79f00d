// The reference client: psql's \copy, connected the way a person connects to RDS with IAM
// auth (an IAM token from @aws-sdk/rds-signer as PGPASSWORD, verify-full TLS against the
// CA), or straight to Postgres for the no-gateway diagnostic. Where psql is missing, the
// `postgres` client does the same COPY from bench/worker.ts.
import { Signer } from "@aws-sdk/rds-signer";
import { runChild, runWorker, type ChildOutcome } from "./children.ts";
import type { BenchStack } from "./benchStack.ts";
import { DB_USER, REGION } from "../local/stack.ts";
import type { CopyResult } from "./worker_tasks.ts";

export const PSQL = Bun.which("psql");

export type PgEnv = Record<"PGHOST" | "PGPORT" | "PGUSER" | "PGDATABASE" | "PGPASSWORD" | "PGSSLMODE", string> & { PGSSLROOTCERT?: string };

/** Through the TLS IAM gateway as the IAM user, with a fresh 15-minute token. */
export async function gatewayEnv(stack: BenchStack): Promise<PgEnv> {
  const rds = stack.local.rds!;
  const signer = new Signer({
    hostname: rds.host, port: rds.port, username: DB_USER, region: REGION,
    credentials: { accessKeyId: stack.awsEnv.AWS_ACCESS_KEY_ID!, secretAccessKey: stack.awsEnv.AWS_SECRET_ACCESS_KEY!, sessionToken: stack.awsEnv.AWS_SESSION_TOKEN },
  });
  return {
    PGHOST: rds.host, PGPORT: String(rds.port), PGUSER: DB_USER, PGDATABASE: "postgres",
    PGPASSWORD: await signer.getAuthToken(), PGSSLMODE: "verify-full", PGSSLROOTCERT: rds.caCertPath,
  };
}

/** Postgres itself: no gateway, no TLS (the superuser's password login on loopback). */
export function directEnv(stack: BenchStack): PgEnv {
  const backend = stack.local.rds!.backend;
  return {
    PGHOST: backend.host, PGPORT: String(backend.port), PGUSER: backend.user, PGDATABASE: backend.database,
    PGPASSWORD: backend.password, PGSSLMODE: "disable",
  };
}

/** psql's \copy takes the path in single quotes. */
function quotePath(path: string): string {
  return `'${path.replace(/'/g, "''")}'`;
}

export interface CopyRun extends ChildOutcome {
  /** Which client did it: psql, or the postgres client where psql is missing. */
  client: string;
}

export async function copyFromFile(env: PgEnv, table: string, file: string, timeoutMs: number): Promise<CopyRun> {
  if (!PSQL) return { ...(await runWorker<CopyResult>({ kind: "copy-in", file, table }, env, timeoutMs)), client: "postgres COPY FROM STDIN" };
  const run = await runChild([PSQL, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", `\\copy ${table} from ${quotePath(file)} csv header`], env, timeoutMs);
  return { ...run, client: "psql \\copy" };
}

export async function copyToFile(env: PgEnv, query: string, file: string, timeoutMs: number): Promise<CopyRun> {
  if (!PSQL) return { ...(await runWorker<CopyResult>({ kind: "copy-out", file, query }, env, timeoutMs)), client: "postgres COPY TO STDOUT" };
  const run = await runChild([PSQL, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", `\\copy (${query}) to ${quotePath(file)} csv header`], env, timeoutMs);
  return { ...run, client: "psql \\copy" };
}

export async function psqlVersion(): Promise<string> {
  if (!PSQL) return "not installed (postgres client's COPY used instead)";
  return (await runChild([PSQL, "--version"], {}, 10_000)).stdout.trim();
}
