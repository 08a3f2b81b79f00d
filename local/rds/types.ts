// The RDS stand-in's public shapes that its modules share: the endpoint name, refused logins, COPY kills, faults.

/**
 * The instance's endpoint: the name (and port) RDS tokens must be signed for and the
 * server certificate names, whatever address the client dials (a tunnel, a proxy, a CNAME).
 */
export interface RdsEndpoint {
  host: string;
  port: number;
}

/**
 * What the stand-in stands for. rds-db:connect names a DB instance by its DbiResourceId
 * (`db-…`), an Aurora cluster by its DbClusterResourceId (`cluster-…`) and an RDS Proxy by its
 * id (`prx-…`) (RDS User Guide, "Creating and using an IAM policy for IAM database access").
 * An Aurora cluster answers on its writer endpoint `<name>.cluster-<suffix>.<region>.rds.amazonaws.com`
 * and its reader endpoint `<name>.cluster-ro-<suffix>…` (Aurora User Guide, "Amazon Aurora
 * endpoint connections"); a proxy on `<name>.proxy-<suffix>.<region>.rds.amazonaws.com`
 * (RDS User Guide, "Connecting to a database through RDS Proxy"), which needs TLS for IAM auth.
 */
export type RdsTopology =
  | { kind: "instance" }
  | { kind: "aurora-cluster"; clusterName: string }
  | { kind: "proxy"; proxyName: string };

/** An endpoint as configured: without a port, the gateway's own. */
export interface RdsEndpointOption {
  host: string;
  port?: number;
}

export interface AuthFailure {
  at: Date;
  user: string;
  database: string;
  /** Why the login was refused; never contains the token. */
  reason: string;
}

export interface CopyKill {
  pid: number;
  /** How much COPY data the backend had read when it was terminated. */
  bytesProcessed: number;
}

export interface RdsFaults {
  /** Accepted connections to close at once, before any byte is exchanged; counts down. */
  dropNextConnections: number;
  /**
   * Arms a kill of the next COPY FROM STDIN: once its backend has read `afterBytes`, it is
   * terminated (pg_terminate_backend, as an RDS failover or an operator would). Resolves
   * after the kill. Nothing watches the data path: Postgres's own progress view is polled.
   */
  killBackendOnNextCopy(options?: { afterBytes?: number }): Promise<CopyKill>;
  /** Reboots the gateway: drops every open connection, then listens on the same port again. */
  restart(): Promise<void>;
}
