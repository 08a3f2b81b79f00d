// Credentials: AssumeRoleWithWebIdentity calls per flow run for flows of other shapes
// (the big flow's own count is measured with its load), and what getting credentials
// costs a step, in this process with the real windmill-client and awsClientConfig as a
// job runs them: from a fresh saved resource (no STS round trip) and from an expired one.
import { awsClientConfig } from "../f/aws_oidc/lib/credentialsProvider.ts";
import { loadCredentialsResource, saveCredentialsResource, sessionFromResource, type AwsStsCredentials } from "../f/aws_oidc/lib/credentialsResource.ts";
import { DATABASE_RESOURCE, DEMO_TABLE, ROLE_RESOURCE, uploadSampleCsvs } from "../local/demo/demoData.ts";
import { atMost, check, exactly, stepTimeoutMs, type BenchContext } from "./context.ts";
import { assumeRoleCalls, BENCH_BUCKET, BENCH_CREDENTIALS, runJobOk } from "./benchStack.ts";

/** Target from the brief: a step with a fresh saved resource gets credentials this fast (no STS). */
const FRESH_CREDENTIALS_MAX_MS = 5;
const SMALL_FLOW_OBJECTS = 2;
const SMALL_FLOW_ROWS_PER_OBJECT = 100;
const quiet = () => {};

async function flowStsCalls(ctx: BenchContext, path: string, args: Record<string, unknown>): Promise<{ calls: number; seconds: number }> {
  const before = await assumeRoleCalls(ctx.stack);
  const run = await runJobOk(ctx.stack, "f", path, args, stepTimeoutMs(0));
  return { calls: (await assumeRoleCalls(ctx.stack)) - before, seconds: run.seconds };
}

async function measureOtherFlows(ctx: BenchContext): Promise<void> {
  ctx.log(`▶ flow s3_csv_to_rds with ${SMALL_FLOW_OBJECTS} objects, and flow rds_to_s3_export: STS calls`);
  const prefix = "bench/small/";
  await uploadSampleCsvs(ctx.stack.s3, BENCH_BUCKET, prefix, SMALL_FLOW_OBJECTS, SMALL_FLOW_ROWS_PER_OBJECT);
  const common = { aws_oidc: `$res:${ROLE_RESOURCE}`, database: `$res:${DATABASE_RESOURCE}`, bucket: BENCH_BUCKET };
  const small = await flowStsCalls(ctx, "f/aws_oidc/s3_csv_to_rds", { ...common, prefix, table: DEMO_TABLE, credentials_path: "f/aws_oidc/bench_small_flow_credentials" });
  const exported = await flowStsCalls(ctx, "f/aws_oidc/rds_to_s3_export", {
    ...common, key: "bench/flow-export.csv", query: `select * from ${DEMO_TABLE}`, credentials_path: "f/aws_oidc/bench_export_flow_credentials",
  });
  check(ctx, `flow s3_csv_to_rds, ${SMALL_FLOW_OBJECTS} objects: AssumeRoleWithWebIdentity calls`, 1, small.calls);
  check(ctx, "flow rds_to_s3_export: AssumeRoleWithWebIdentity calls", 1, exported.calls);
  ctx.measurements.push(
    { section: "credentials", name: `flow s3_csv_to_rds: 5 steps, ${SMALL_FLOW_OBJECTS} parallel iterations, first run`, seconds: small.seconds, value: `${small.calls} STS call(s)`, targets: [exactly("1 AssumeRoleWithWebIdentity per run", small.calls, 1)] },
    { section: "credentials", name: "flow rds_to_s3_export: 3 steps, no loop, first run", seconds: exported.seconds, value: `${exported.calls} STS call(s)`, targets: [exactly("1 AssumeRoleWithWebIdentity per run", exported.calls, 1)] },
  );
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Saves the benchmark's session again at `path`, with its expiry moved to `expiration`. */
async function savedCopy(session: AwsStsCredentials, path: string, expiration: Date): Promise<AwsStsCredentials> {
  await saveCredentialsResource(path, { ...sessionFromResource(session), expiration }, session.mint);
  return loadCredentialsResource(path);
}

/**
 * What a step spends from its resolved `$res:` argument (or its path) to usable
 * credentials. Each sample uses its own resource path, because a job process is new
 * each time and awsClientConfig shares providers per path within a process.
 */
async function timeCredentials(ctx: BenchContext, kind: "fresh" | "fresh-by-path" | "expired"): Promise<{ ms: number[]; stsCalls: number }> {
  const session = await loadCredentialsResource(BENCH_CREDENTIALS);
  const ms: number[] = [];
  const before = await assumeRoleCalls(ctx.stack);
  for (let i = 0; i < ctx.bounds.credentialSamples; i++) {
    const path = `f/aws_oidc/bench_${kind.replace(/-/g, "_")}_${i}`;
    const expiration = kind === "expired" ? new Date(Date.now() - 1000) : new Date(session.expiration);
    // Windmill resolves a `$res:` argument before the job starts: not part of the step's time.
    const resolved = await savedCopy(session, path, expiration);
    const started = performance.now();
    const config = await awsClientConfig(kind === "fresh-by-path" ? path : resolved, quiet);
    await config.credentials();
    ms.push(performance.now() - started);
  }
  return { ms, stsCalls: (await assumeRoleCalls(ctx.stack)) - before };
}

async function measureCredentialTimes(ctx: BenchContext): Promise<void> {
  ctx.log(`▶ credentials for a step: fresh vs expired saved resource (${ctx.bounds.credentialSamples} samples each)`);
  const fresh = await timeCredentials(ctx, "fresh");
  const byPath = await timeCredentials(ctx, "fresh-by-path");
  const expired = await timeCredentials(ctx, "expired");
  check(ctx, "credentials from a fresh resource: STS calls", 0, fresh.stsCalls);
  check(ctx, "credentials from a fresh resource path: STS calls", 0, byPath.stsCalls);
  check(ctx, "credentials from an expired resource: STS calls (one per step)", ctx.bounds.credentialSamples, expired.stsCalls);
  const row = (name: string, t: { ms: number[]; stsCalls: number }, max?: number) => ({
    section: "credentials" as const,
    name,
    value: `median ${median(t.ms).toFixed(2)} ms (max ${Math.max(...t.ms).toFixed(2)}), ${t.stsCalls} STS calls in ${t.ms.length} steps`,
    // The slowest sample, not the median: every step should be this fast.
    targets: max === undefined ? [] : [atMost(`≤ ${max} ms (slowest of ${t.ms.length})`, Math.max(...t.ms), max, "ms"), exactly("no STS call", t.stsCalls, 0)],
  });
  ctx.measurements.push(
    row("credentials from a fresh saved resource ($res: argument, as flows pass it)", fresh, FRESH_CREDENTIALS_MAX_MS),
    row("credentials from a fresh saved resource given by path (one Windmill GET)", byPath, FRESH_CREDENTIALS_MAX_MS),
    row("credentials from an expired saved resource (re-read, ID token, STS, save back)", expired),
  );
}

export async function measureCredentials(ctx: BenchContext): Promise<void> {
  await measureOtherFlows(ctx);
  await measureCredentialTimes(ctx);
}
