// What the stand-in stands for (a DB instance, an Aurora cluster, an RDS Proxy): the form of
// the resource id rds-db:connect names, and the endpoint names tokens must be signed for.
import { randomBytes } from "node:crypto";
import type { RdsEndpointOption, RdsTopology } from "./types.ts";

/** The endpoints of one topology: the first is the instance's, the cluster writer's or the proxy's. */
export interface TopologyEndpoints {
  endpoints: RdsEndpointOption[];
  /** Aurora's reader endpoint: sessions opened through it are read-only. */
  reader?: RdsEndpointOption;
}

/**
 * RDS User Guide, "Creating and using an IAM policy for IAM database access": the resource
 * id is the instance's DbiResourceId (`db-` and upper-case letters and digits), an Aurora
 * cluster's DbClusterResourceId (`cluster-` and the same) or the proxy's id (`prx-` and
 * lower-case hex, the last part of the proxy's ARN).
 */
const RESOURCE_ID: Record<RdsTopology["kind"], { pattern: RegExp; prefix: string; alphabet: string; length: number }> = {
  instance: { pattern: /^db-[A-Z0-9]+$/, prefix: "db-", alphabet: "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", length: 26 },
  "aurora-cluster": { pattern: /^cluster-[A-Z0-9]+$/, prefix: "cluster-", alphabet: "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", length: 26 },
  proxy: { pattern: /^prx-[a-f0-9]+$/, prefix: "prx-", alphabet: "0123456789abcdef", length: 17 },
};

/** DB cluster and proxy names: a letter, then letters, digits and hyphens (RDS CreateDBCluster / CreateDBProxy). */
const RESOURCE_NAME = /^[A-Za-z][A-Za-z0-9-]{0,62}$/;
/** The per-account, per-Region part of RDS endpoint names, e.g. `abcdefghijkl` in `<name>.cluster-abcdefghijkl.<region>.rds.amazonaws.com`. */
const ENDPOINT_SUFFIX_LENGTH = 12;

function randomString(alphabet: string, length: number): string {
  return Array.from(randomBytes(length), (b) => alphabet[b % alphabet.length]).join("");
}

export function randomResourceId(kind: RdsTopology["kind"]): string {
  const form = RESOURCE_ID[kind];
  return form.prefix + randomString(form.alphabet, form.length);
}

/** A resource id of the wrong form would make rds-db:connect ARNs that no real policy names. */
export function checkResourceId(kind: RdsTopology["kind"], id: string): void {
  const form = RESOURCE_ID[kind];
  if (!form.pattern.test(id)) throw new Error(`RDS stand-in: resource id "${id}" is not of the form ${form.prefix}… that rds-db:connect names for a ${kind}`);
}

/** The endpoint names, from the configured endpoint (an instance) or from the cluster's or proxy's name. */
export function topologyEndpoints(topology: RdsTopology, region: string, endpoint: RdsEndpointOption | undefined): TopologyEndpoints {
  if (topology.kind === "instance") return { endpoints: endpoint ? [endpoint] : [] };
  if (endpoint) throw new Error(`RDS stand-in: a ${topology.kind} has endpoints named after it; give no endpoint`);
  const name = topology.kind === "proxy" ? topology.proxyName : topology.clusterName;
  if (!RESOURCE_NAME.test(name)) throw new Error(`RDS stand-in: "${name}" is not a ${topology.kind} name`);
  const suffix = randomString("abcdefghijklmnopqrstuvwxyz0123456789", ENDPOINT_SUFFIX_LENGTH);
  const host = (kind: string) => `${name.toLowerCase()}.${kind}-${suffix}.${region}.rds.amazonaws.com`;
  if (topology.kind === "proxy") return { endpoints: [{ host: host("proxy") }] };
  const reader = { host: host("cluster-ro") };
  return { endpoints: [{ host: host("cluster") }, reader], reader };
}
