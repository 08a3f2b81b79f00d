// The stand-ins as the benchmark uses them: the demo's workspace set-up, this process
// acting as a Windmill job (so the product's library runs here as in a job), jobs and
// flows started through their webhooks, STS call counts, and admin SQL on Postgres.
import { CreateBucketCommand, type S3Client } from "@aws-sdk/client-s3";
import { assumeRoleAndSave } from "../f/aws_oidc/lib/assumeRoleAndSave.ts";
import { loadCredentialsResource } from "../f/aws_oidc/lib/credentialsResource.ts";
import { s3Client } from "../f/aws_oidc/lib/s3.ts";
import { setUpWorkspace } from "../local/demo/demoData.ts";
import { DB_USER, DEMO_ROLE_ARN, REGION, startLocalStack, type LocalStack } from "../local/stack.ts";
import { actAsJob, disableSchedules, pollResult, runAsync, type RunnableKind } from "../local/windmill/client.ts";
import type { JobRecord } from "../local/windmill/state.ts";
import { tableDdl } from "./csv_data.ts";
import { killJobProcesses } from "./processes.ts";

export const BENCH_TABLE = "bench_rows";
export const BENCH_BUCKET = "bench-data";
/** The benchmark's own session, used by its direct jobs and clients. */
export const BENCH_CREDENTIALS = "f/aws_oidc/bench_credentials";
/** The job path this process poses as (a job token is tied to a path). */
const BENCH_JOB_PATH = "f/aws_oidc/bench";
/** Outlives any run (the 1 GiB default takes minutes), so no refresh lands inside a measurement. */
const BENCH_SESSION_DURATION = "3h";
/** A result poll every 50 ms adds at most 1% to a 5-second job. */
const JOB_POLL_MS = 50;
/** After its processes are killed, a hung job's record settles (failure) within this long. */
const ABANDON_WAIT_MS = 30_000;
const quiet = () => {};

export interface BenchStack {
  local: LocalStack;
  /** An S3 client on the benchmark's session (the product's own factory). */
  s3: S3Client;
  /** The session's keys, for clients in other processes. */
  awsEnv: Record<string, string>;
  close(): Promise<void>;
}

/** A job that gave no result in its time: its processes were killed (the run can go on). */
export class HungJobError extends Error {}

export interface JobRun {
  id: string;
  success: boolean;
  result: unknown;
  /** From the webhook call to the result being available. */
  seconds: number;
}

/** `workspaceDir`: the checkout whose f/ and u/ are pushed and run (this repo by default). */
export async function startBenchStack(workspaceDir?: string): Promise<BenchStack> {
  const local = await startLocalStack({ s3: true, rds: true, workspaceDir });
  try {
    // The pushed schedules' wall-clock runs would add STS calls and CPU to whatever step runs then.
    await disableSchedules(local.windmill);
    await setUpWorkspace(local);
    actAsJob(local.windmill, local.jobEnv, BENCH_JOB_PATH);
    await assumeRoleAndSave({ roleArn: DEMO_ROLE_ARN, region: REGION, saveTo: BENCH_CREDENTIALS, duration: BENCH_SESSION_DURATION }, quiet);
    const { s3 } = await s3Client(BENCH_CREDENTIALS);
    await s3.send(new CreateBucketCommand({ Bucket: BENCH_BUCKET }));
    // Export and its psql twin must read rows in the same order: a synchronized seq scan
    // would start the second one where the first left off.
    await local.rds!.adminSql(`
      ${tableDdl(BENCH_TABLE)};
      grant select, insert on ${BENCH_TABLE} to ${DB_USER};
      alter role ${DB_USER} set synchronize_seqscans = off;`);
    const session = await loadCredentialsResource(BENCH_CREDENTIALS);
    const awsEnv = {
      AWS_ACCESS_KEY_ID: session.awsAccessKeyId, AWS_SECRET_ACCESS_KEY: session.awsSecretAccessKey,
      AWS_SESSION_TOKEN: session.awsSessionToken, ...local.jobEnv,
    };
    return { local, s3, awsEnv, close: () => local.close() };
  } catch (err) {
    await local.close();
    throw err;
  }
}

/** Starts a script (`p`) or flow (`f`) through its async webhook and waits for its result. */
export async function runJob(stack: BenchStack, kind: RunnableKind, path: string, args: Record<string, unknown>, timeoutMs: number): Promise<JobRun> {
  const started = performance.now();
  const id = await runAsync(stack.local.windmill, kind, path, args);
  const done = await pollResult(stack.local.windmill, id, JOB_POLL_MS, started + timeoutMs);
  if (!done) {
    await abandonJob(stack, id);
    throw new HungJobError(`${path} (job ${id}) gave no result within ${timeoutMs / 1000} s; its processes were killed`);
  }
  return { id, success: done.success === true, result: done.result, seconds: (performance.now() - started) / 1000 };
}

/** Kills a hung job's processes (a flow may start more steps meanwhile) until its record settles. */
async function abandonJob(stack: BenchStack, id: string): Promise<void> {
  const deadline = performance.now() + ABANDON_WAIT_MS;
  const record = stack.local.windmill.jobs.find((j) => j.id === id);
  while (record?.status === "running" && performance.now() < deadline) {
    await killJobProcesses(id);
    await Bun.sleep(JOB_POLL_MS);
  }
}

/** Like runJob, but a failed job is an error carrying the job's own message. */
export async function runJobOk(stack: BenchStack, kind: RunnableKind, path: string, args: Record<string, unknown>, timeoutMs: number): Promise<JobRun> {
  const run = await runJob(stack, kind, path, args, timeoutMs);
  if (!run.success) throw new Error(`${path} (job ${run.id}) failed: ${JSON.stringify(run.result).slice(0, 2000)}`);
  return run;
}

/** The jobs a flow run started for one of its steps. */
export function stepJobs(stack: BenchStack, flowJobId: string, stepId: string): JobRecord[] {
  return stack.local.windmill.jobs.filter((j) => j.rootJobId === flowJobId && j.stepId === stepId);
}

export async function assumeRoleCalls(stack: BenchStack): Promise<number> {
  const stats = (await (await fetch(`${stack.local.sts.url}/_local/stats`)).json()) as { calls: Record<string, number> };
  return stats.calls.AssumeRoleWithWebIdentity ?? 0;
}

export async function countRows(stack: BenchStack, table: string): Promise<number> {
  const [row] = (await stack.local.rds!.adminSql(`select count(*)::float8 as n from ${table}`)) as { n: number }[];
  return row?.n ?? 0;
}

export async function truncate(stack: BenchStack, table: string): Promise<void> {
  await stack.local.rds!.adminSql(`truncate ${table}`);
}

export async function serverVersion(stack: BenchStack): Promise<string> {
  const [row] = (await stack.local.rds!.adminSql("show server_version")) as { server_version: string }[];
  return row?.server_version ?? "?";
}
