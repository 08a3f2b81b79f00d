// The Postgres cluster behind the gateway: data directory, pg_hba rules, the admin pool, COPY kills.
import postgres, { type Sql } from "postgres";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { ADMIN_DATABASE, ADMIN_POOL_SIZE, COPY_KILL_POLL_MS, POSTGRES_LOG_KEPT, POSTGRES_START_ATTEMPTS, RDS_HOST, RDS_IAM_ROLE, SUPERUSER } from "./limits.ts";
import type { CopyKill } from "./types.ts";
import { initdb, startPostgres, type PostgresProcess } from "./postgresProcess.ts";
import { POSTGRES_OS_USER, PostgresSetupError, postgresBinaries, unreachableFolder, type PostgresBinaries } from "./postgresBinaries.ts";


export interface Cluster {
  /** TCP port on loopback; only password logins work there (see PG_HBA). */
  port: number;
  /** The Unix socket the gateway opens IAM users' sessions on. */
  socketPath: string;
  password: string;
  admin: Sql;
  stop(): Promise<void>;
}

// Replaces initdb's pg_hba.conf at every start. First match wins.
export const PG_HBA = `# Written by local/rds/cluster.ts.
# The superuser always needs its password.
local all ${SUPERUSER} scram-sha-256
host  all ${SUPERUSER} ${RDS_HOST}/32 scram-sha-256
# The gateway opens IAM users' sessions over the Unix socket after it has verified their
# token. The socket lives in the data directory (0700, unix_socket_permissions 0700): only
# this process's user (and root) can reach it.
local all all trust
# Direct TCP logins need a password, which IAM users do not have: as on RDS, the only way
# in for them is the token, through the gateway.
host  all all ${RDS_HOST}/32 scram-sha-256
`;

export async function startCluster(dir: string): Promise<Cluster> {
  const pgdata = join(dir, "pgdata");
  const passwordFile = join(dir, "superuser-password");
  const binaries = await postgresBinaries();
  await mkdir(dir, { recursive: true });
  if (binaries.runAs) {
    // As root, Postgres runs as the `postgres` OS user, which must reach the data directory.
    await chmod(dir, 0o755);
    const blocked = await unreachableFolder(dir, binaries.runAs);
    if (blocked) {
      throw new PostgresSetupError(
        `the "${POSTGRES_OS_USER}" OS user Postgres runs as cannot reach the data directory ${dir} (${blocked} is closed to it)`,
        "set TMPDIR to a folder every user can traverse (e.g. TMPDIR=/tmp), or give a data directory outside private folders",
      );
    }
  }
  const postgresLog: string[] = [];
  const keepLog = (message: string) => {
    postgresLog.push(message.trimEnd());
    if (postgresLog.length > POSTGRES_LOG_KEPT) postgresLog.shift();
  };
  const fresh = !existsSync(join(pgdata, "PG_VERSION"));
  const password = fresh ? randomBytes(24).toString("base64url") : (await readFile(passwordFile, "utf8")).trim();
  if (fresh) {
    // RDS databases are UTF8; without --encoding an unset LANG gives SQL_ASCII. --no-sync
    // saves a second of fsyncs on a cluster that lives for one test run.
    await initdb(binaries, pgdata, { superuser: SUPERUSER, password, flags: ["--encoding=UTF8", "--locale=C", "--no-sync"], onLog: keepLog });
    await writeFile(passwordFile, password, { mode: 0o600 });
  }
  await writeFile(join(pgdata, "pg_hba.conf"), PG_HBA);
  const { pg, port } = await startPostgresOnFreePort(binaries, pgdata, postgresLog, keepLog);
  const socketPath = join(pgdata, `.s.PGSQL.${port}`);
  const admin = postgres({
    path: socketPath, user: SUPERUSER, password, database: ADMIN_DATABASE, max: ADMIN_POOL_SIZE,
    onnotice: () => {},
  });
  try {
    await ensureRdsIamRole(admin);
  } catch (err) {
    await admin.end({ timeout: 0 });
    await pg.stop();
    throw err;
  }
  return {
    port, socketPath, password, admin,
    async stop() {
      await admin.end({ timeout: 1 });
      await pg.stop();
    },
  };
}

/** Another process can grab the free port we picked before Postgres binds it: retry then. */
export async function startPostgresOnFreePort(binaries: PostgresBinaries, pgdata: string, postgresLog: string[], keepLog: (line: string) => void): Promise<{ pg: PostgresProcess; port: number }> {
  const flags = [
    "-c", `listen_addresses=${RDS_HOST}`,
    "-c", `unix_socket_directories=${pgdata}`,
    "-c", "unix_socket_permissions=0700",
  ];
  for (let attempt = 1; ; attempt++) {
    const port = await freeLoopbackPort();
    try {
      return { pg: await startPostgres(binaries, pgdata, port, flags, keepLog), port };
    } catch (err) {
      const portTaken = postgresLog.some((line) => line.includes("Address already in use"));
      if (portTaken && attempt < POSTGRES_START_ATTEMPTS) {
        postgresLog.length = 0;
        continue;
      }
      if (err instanceof PostgresSetupError) throw err;
      throw new Error(`${(err as Error).message}. Its log:\n${postgresLog.join("\n")}`);
    }
  }
}

export async function ensureRdsIamRole(admin: Sql): Promise<void> {
  await admin.unsafe(`do $$ begin create role ${RDS_IAM_ROLE}; exception when duplicate_object then null; end $$`);
}

export async function freeLoopbackPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, RDS_HOST, resolve);
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export async function killNextCopy(cluster: Cluster, afterBytes: number): Promise<CopyKill> {
  for (;;) {
    // type PIPE = FROM STDIN; bytes_processed is int8, which postgres.js returns as a string.
    const [copy] = await cluster.admin<{ pid: number; bytes: number }[]>`
      select pid, bytes_processed::float8 as bytes from pg_stat_progress_copy
      where command = 'COPY FROM' and type = 'PIPE' and bytes_processed >= ${afterBytes}
      limit 1`;
    if (copy) {
      await cluster.admin`select pg_terminate_backend(${copy.pid})`;
      return { pid: copy.pid, bytesProcessed: copy.bytes };
    }
    await sleep(COPY_KILL_POLL_MS);
  }
}

