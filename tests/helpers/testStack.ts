// The local stack plus what tests need on top: running a script as a job, acting as a
// job in this process, and the STS stand-in's inspection and fault endpoints.
import { startLocalStack, type LocalStack, type StackOptions } from "../../local/stack.ts";
import { actAsJob, disableSchedules, runWaitResult } from "../../local/windmill/client.ts";
import type { JobRecord } from "../../local/windmill/state.ts";

export { ACCOUNT_ID, DB_USER, DBI_RESOURCE_ID, DEMO_KMS_KEY_ARN, DEMO_KMS_KEYS, DEMO_ROLE, DEMO_ROLE_ARN, REGION, REPO_ROOT, trustPolicy } from "../../local/stack.ts";
export type { PolicyDocument, RoleConfig, StsConfig } from "../../local/sts/config.ts";

/** A job's JSON result; its shape is whatever the script returns. */
export type JobResult = any;

export interface Stack extends LocalStack {
  /** Runs a script as a Windmill job through the sync webhook endpoint. */
  runScript(path: string, args: Record<string, unknown>): Promise<{ status: number; result: JobResult }>;
  /** Points this process's windmill-client (and AWS SDK env) at the stand-ins as a job at `path` would be. */
  actAsJob(path: string | null, flowPath?: string | null): void;
  /** The jobs started since `jobs.length` was `before`, without the runs of any schedule (and their steps). */
  jobsStartedSince(before: number): JobRecord[];
  stsStats(): Promise<{ calls: Record<string, number> }>;
  stsSession(accessKeyId: string): Promise<{ secretAccessKey: string; sessionToken: string } | undefined>;
  stsFaults(body: Record<string, unknown>): Promise<void>;
}

/** The local stack with the repo pushed and its schedules disabled (tests of schedules create their own). */
export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const local = await startLocalStack(options);
  const { windmill, sts } = local;
  await disableSchedules(windmill);
  const stsJson = async (path: string) => {
    const res = await fetch(`${sts.url}${path}`);
    return res.status === 404 ? undefined : res.json();
  };
  return {
    ...local,
    runScript: (path, args) => runWaitResult(windmill, "p", path, args),
    actAsJob: (path, flowPath = null) => actAsJob(windmill, local.jobEnv, path, flowPath),
    jobsStartedSince: (before) => windmill.jobs.slice(before).filter((j) => j.schedulePath === null),
    stsStats: () => stsJson("/_local/stats"),
    stsSession: (id) => stsJson(`/_local/sessions/${id}`),
    async stsFaults(body) {
      await fetch(`${sts.url}/_local/faults`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    },
  };
}
