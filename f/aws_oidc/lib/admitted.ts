// What a generated trust policy admits, and why. By default: every flow, every schedule's
// target and the doctor this bundle ships, so nothing pushed with it is refused by AWS.
// A Windmill job cannot read the repo, so the list is written out here; a metadata test
// (tests/bundle/aws_policy_cli.test.ts) checks it equals what the repo ships.

export type RunnableKind = "script" | "flow";

export interface AdmittedRunnable {
  path: string;
  kind: RunnableKind;
  /** Why it is admitted, e.g. "target of schedule f/aws_oidc/refresh_credentials". */
  why: string;
}

/** Every flow, schedule target and the doctor in f/ and u/ of this repo, sorted by path. */
export const SHIPPED_RUNNABLES: AdmittedRunnable[] = [
  { path: "f/aws_oidc/assume_role", kind: "script", why: "target of schedule f/aws_oidc/refresh_credentials" },
  { path: "f/aws_oidc/doctor", kind: "script", why: "the doctor, to check the setup" },
  { path: "f/aws_oidc/rds_iam_postgresql_resource", kind: "script", why: "target of schedule f/aws_oidc/refresh_rds_postgresql" },
  { path: "f/aws_oidc/rds_to_s3_export", kind: "flow", why: "flow shipped in this bundle" },
  { path: "f/aws_oidc/s3_csv_to_rds", kind: "flow", why: "flow shipped in this bundle" },
];

export interface AdmissionChoice {
  /** The flows and scripts asked for instead of the shipped set (empty: the shipped set). */
  flows: string[];
  scripts: string[];
  /** Flows and scripts admitted on top of the set above. */
  addFlows: string[];
  addScripts: string[];
  /** How the user names each list, for the printed reasons: e.g. "--flow" or "allowed_flows". */
  names: { flows: string; scripts: string; addFlows: string; addScripts: string };
}

/**
 * The set to admit: the given flows and scripts when any is given (they replace the shipped
 * set), else the shipped set; then the added ones. One entry per path and kind.
 */
export function admittedRunnables(choice: AdmissionChoice, shipped: AdmittedRunnable[] = SHIPPED_RUNNABLES): AdmittedRunnable[] {
  const listed = (paths: string[], kind: RunnableKind, name: string) => paths.map((path) => ({ path, kind, why: `given with ${name}` }));
  const base = choice.flows.length + choice.scripts.length
    ? [...listed(choice.flows, "flow", choice.names.flows), ...listed(choice.scripts, "script", choice.names.scripts)]
    : shipped;
  const all = [...base, ...listed(choice.addFlows, "flow", choice.names.addFlows), ...listed(choice.addScripts, "script", choice.names.addScripts)];
  const seen = new Set<string>();
  return all.filter((r) => {
    const key = `${r.kind} ${r.path}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** One line per admitted runnable: `f/aws_oidc/assume_role  script  target of schedule …`. */
export function describeAdmitted(admitted: AdmittedRunnable[]): string[] {
  const width = Math.max(0, ...admitted.map((r) => r.path.length));
  return admitted.map((r) => `${r.path.padEnd(width)}  ${r.kind.padEnd(6)}  ${r.why}`);
}
