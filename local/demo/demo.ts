// `npm run demo`: starts every stand-in, pushes the repo with the real `wmill` CLI, runs
// the s3_csv_to_rds flow through its webhook on generated CSVs, reads the table back
// through the rds_query step and through a native PostgreSQL script on an IAM-backed
// postgresql resource, prints what a person would see in Windmill, and stops.
// `npm run dev`: the same set-up, then keeps running and prints how to call it.
import { S3Client } from "@aws-sdk/client-s3";
import { CREDENTIALS_RESOURCE, DATABASE_RESOURCE, DEMO_BUCKET, DEMO_TABLE, ROLE_RESOURCE, setUpWorkspace, uploadSampleCsvs, useDemoDatabaseInRdsRefresh } from "./demoData.ts";
import { chmod, mkdir } from "node:fs/promises";
import { constants } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { onStopSignal } from "../shared/cli.ts";
import { proxyIsSet } from "../shared/proxy.ts";
import { REPO_ROOT, startLocalStack, type LocalStack, type StackOptions } from "../stack.ts";
import { interpolatedResource, runWaitResult, type RunnableKind } from "../windmill/client.ts";

/** Where the demo writes the IAM-backed postgresql resource (the refresh schedule's save_to). */
const PG_RESOURCE = "f/aws_oidc/orders_db_pg";
/** Small enough to finish in seconds, big enough to show parallel loads. */
const DEMO_OBJECTS = 8;
const DEMO_ROWS_PER_OBJECT = 500;
const DEMO_PREFIX = "incoming/2026-11-22/";

async function webhook(stack: LocalStack, kind: RunnableKind, path: string, args: Record<string, unknown>): Promise<unknown> {
  const { status, result } = await runWaitResult(stack.windmill, kind, path, args);
  if (status < 200 || status > 299) throw new Error(`${path} failed (HTTP ${status}):\n${JSON.stringify(result, null, 2)}`);
  return result;
}

async function stsCalls(stack: LocalStack): Promise<Record<string, number>> {
  return ((await (await fetch(`${stack.sts.url}/_local/stats`)).json()) as { calls: Record<string, number> }).calls;
}

/** The demo's own S3 client, with the credentials the assume_role job saved (read back as a script would). */
async function demoS3(stack: LocalStack): Promise<S3Client> {
  const creds = (await interpolatedResource(stack.windmill, CREDENTIALS_RESOURCE)) as { region: string; awsAccessKeyId: string; awsSecretAccessKey: string; awsSessionToken: string };
  return new S3Client({
    region: creds.region,
    endpoint: stack.s3?.url,
    forcePathStyle: true,
    credentials: { accessKeyId: creds.awsAccessKeyId, secretAccessKey: creds.awsSecretAccessKey, sessionToken: creds.awsSessionToken },
  });
}

function step(title: string, detail: string): void {
  console.log(`\n▶ ${title}\n  ${detail}`);
}

/**
 * Starts the stack. Ctrl-C, a kill or the terminal closing (SIGHUP) stops every stand-in first,
 * also while they are still starting, so no Postgres or s3rver outlives the demo; the exit code
 * is the shell's for that signal (128 + its number).
 */
function startClosedOnSignal(options: StackOptions): Promise<LocalStack> {
  const starting = startLocalStack(options);
  onStopSignal(() => starting.then((stack) => stack.close(), () => {}), (signal) => 128 + constants.signals[signal]);
  return starting;
}

async function demo(options: StackOptions): Promise<void> {
  const started = Date.now();
  const stack = await startClosedOnSignal(options);
  try {
    await setUpWorkspace(stack);
    console.log(`Stand-ins up and the repo pushed with wmill sync push: Windmill ${stack.windmill.url}, STS ${stack.sts.url}, S3 ${stack.s3!.url}, RDS ${stack.rds!.host}:${stack.rds!.port}`);

    step("assume_role", `Windmill OIDC token -> STS AssumeRoleWithWebIdentity -> resource ${CREDENTIALS_RESOURCE}`);
    console.log(JSON.stringify(await webhook(stack, "p", "f/aws_oidc/assume_role", { aws_oidc: `$res:${ROLE_RESOURCE}` }), null, 2));

    const rows = await uploadSampleCsvs(await demoS3(stack), DEMO_BUCKET, DEMO_PREFIX, DEMO_OBJECTS, DEMO_ROWS_PER_OBJECT);
    step("sample data", `${DEMO_OBJECTS} CSV objects, ${rows} rows (quotes, embedded newlines, unicode, NULLs) in s3://${DEMO_BUCKET}/${DEMO_PREFIX}`);

    const before = (await stsCalls(stack)).AssumeRoleWithWebIdentity ?? 0;
    step("s3_csv_to_rds", `flow webhook: POST /api/w/${stack.windmill.workspace}/jobs/run_wait_result/f/f/aws_oidc/s3_csv_to_rds`);
    const summary = (await webhook(stack, "f", "f/aws_oidc/s3_csv_to_rds", {
      aws_oidc: `$res:${ROLE_RESOURCE}`, database: `$res:${DATABASE_RESOURCE}`, bucket: DEMO_BUCKET, prefix: DEMO_PREFIX, table: DEMO_TABLE,
    })) as Record<string, unknown>[];
    console.table(summary);
    const flowCalls = ((await stsCalls(stack)).AssumeRoleWithWebIdentity ?? 0) - before;

    step("rds_query", "the table read back through the RDS step (IAM token per connection, TLS verified)");
    const query = (await webhook(stack, "p", "f/aws_oidc/rds_query", {
      credentials: `$res:${CREDENTIALS_RESOURCE}`, database: `$res:${DATABASE_RESOURCE}`,
      sql: `select country, count(*)::int as orders, sum(amount)::text as amount from ${DEMO_TABLE} group by country order by country nulls last`,
    })) as Record<string, unknown>[];
    console.table(query);

    step("rds_iam_postgresql_resource + orders_by_country", `a postgresql resource whose password is an IAM token (${PG_RESOURCE}), then Windmill's own PostgreSQL script on it`);
    console.log(JSON.stringify(await webhook(stack, "p", "f/aws_oidc/rds_iam_postgresql_resource", {
      credentials: `$res:${CREDENTIALS_RESOURCE}`, database: `$res:${DATABASE_RESOURCE}`, save_to: PG_RESOURCE,
    }), null, 2));
    console.table(await webhook(stack, "p", "f/aws_oidc/orders_by_country", { database: `$res:${PG_RESOURCE}`, min_orders: 1 }));

    const loaded = query.reduce((n, r) => n + Number(r.orders), 0);
    console.log(`\nLoaded ${loaded} of ${rows} rows. STS AssumeRoleWithWebIdentity calls by the flow: ${flowCalls} (the saved session served every step).`);
    console.log(`All STS calls: ${JSON.stringify(await stsCalls(stack))}. Done in ${((Date.now() - started) / 1000).toFixed(1)} s.`);
    if (loaded !== rows) throw new Error(`expected ${rows} rows in ${DEMO_TABLE}, found ${loaded}`);
  } finally {
    await stack.close();
  }
}

/** The label of the webhook token `npm run dev` creates, so a restart finds it again. */
const SCOPED_TOKEN_LABEL = "s3_csv_to_rds webhook (npm run dev)";
const SCOPED_FLOW = "f/aws_oidc/s3_csv_to_rds";

/** A token that may only run the load flow, created through Windmill's token API as a user creates one. */
async function scopedWebhookToken(stack: LocalStack): Promise<string> {
  const saved = stack.windmill.savedToken(SCOPED_TOKEN_LABEL);
  if (saved) return saved;
  const res = await fetch(`${stack.windmill.url}/api/users/tokens/create`, {
    method: "POST",
    headers: { authorization: `Bearer ${stack.windmill.adminToken}`, "content-type": "application/json" },
    body: JSON.stringify({ label: SCOPED_TOKEN_LABEL, scopes: [`jobs:run:flows:${SCOPED_FLOW}`] }),
  });
  if (res.status !== 201) throw new Error(`creating the scoped webhook token failed: HTTP ${res.status} ${await res.text()}`);
  return await res.text();
}

/** The state folder: only its owner may enter it (it holds tokens). */
async function prepareStateDir(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  return join(dir, "windmill-tokens.json");
}

/** `value` as one shell word: as it is when it holds nothing the shell reads, else single-quoted. */
function shellWord(value: string): string {
  return /^[\w.,:/@%+=*-]+$/.test(value) ? value : `'${value.replaceAll("'", `'\\''`)}'`;
}

async function dev(options: StackOptions, stateDir: string): Promise<void> {
  const stack = await startClosedOnSignal({ ...options, savedTokensFile: await prepareStateDir(stateDir) });
  await setUpWorkspace(stack);
  // Kept running: the RDS refresh schedule keeps f/aws_oidc/orders_db_pg's token fresh.
  await useDemoDatabaseInRdsRefresh(stack, true);
  await webhook(stack, "p", "f/aws_oidc/assume_role", { aws_oidc: `$res:${ROLE_RESOURCE}` });
  await uploadSampleCsvs(await demoS3(stack), DEMO_BUCKET, DEMO_PREFIX, DEMO_OBJECTS, DEMO_ROWS_PER_OBJECT);
  const scopedToken = await scopedWebhookToken(stack);
  const { url, workspace, adminToken } = stack.windmill;
  const curl = (kind: string, path: string, token: string, args: object) =>
    `  curl -s -X POST "$WM/api/w/$WS/jobs/run_wait_result/${kind}/${path}" \\\n    -H "Authorization: Bearer ${token}" -H "Content-Type: application/json" \\\n    -d '${JSON.stringify(args)}'`;
  const port = new URL(url).port;
  // Pasted behind a proxy, curl would send the calls to the proxy, which cannot reach this
  // loopback; starting the stand-ins set both variables to the same list (proxy.ts).
  const bypass = shellWord(process.env.NO_PROXY ?? "");
  const noProxy = proxyIsSet(process.env) ? ` NO_PROXY=${bypass} no_proxy=${bypass}` : "";
  console.log(`
Windmill stand-in  ${url}   (workspace ${workspace}, OIDC issuer ${stack.windmill.issuer})
STS stand-in       ${stack.sts.url}
S3 stand-in        ${stack.s3!.url}   (bucket ${DEMO_BUCKET}, ${DEMO_OBJECTS} CSVs under ${DEMO_PREFIX})
RDS stand-in       ${stack.rds!.host}:${stack.rds!.port}   (TLS CA ${stack.rds!.caCertPath}, table ${DEMO_TABLE}, IAM user app_user)
Resources          ${ROLE_RESOURCE} (aws_oidc), ${DATABASE_RESOURCE} (aws_rds_iam_postgres), ${CREDENTIALS_RESOURCE} (a saved session)

Paste into your shell (TOKEN: admin; SCOPED_TOKEN: may only run ${SCOPED_FLOW}):
export WM=${url} WS=${workspace} TOKEN=${adminToken} SCOPED_TOKEN=${scopedToken}${noProxy}

The tokens are kept in ${stateDir}: started again with --windmill-port ${port}, the same
URL and tokens work, so a saved wmill profile does too (delete the folder for new tokens).

Push your changes:   npx wmill workspace add dev "$WS" "$WM/" --token "$TOKEN" && npx wmill sync push --yes

Load the CSVs into the table (flow webhook, scoped token):
${curl("f", SCOPED_FLOW, "$SCOPED_TOKEN", { aws_oidc: `$res:${ROLE_RESOURCE}`, database: `$res:${DATABASE_RESOURCE}`, bucket: DEMO_BUCKET, prefix: DEMO_PREFIX, table: DEMO_TABLE })}

Query it:
${curl("p", "f/aws_oidc/rds_query", "$TOKEN", { credentials: `$res:${CREDENTIALS_RESOURCE}`, database: `$res:${DATABASE_RESOURCE}`, sql: `select count(*) from ${DEMO_TABLE}` })}

Check who AWS thinks a job is:
${curl("p", "f/aws_oidc/whoami", "$TOKEN", { credentials: `$res:${CREDENTIALS_RESOURCE}` })}

Running; Ctrl-C (or closing this terminal) stops every stand-in.`);
}

const USAGE = "usage: bun local/demo/demo.ts demo|dev [--windmill-port N] [--sts-port N] [--s3-port N] [--rds-port N] [--state-dir DIR]";
/** Where `npm run dev` keeps its tokens unless told otherwise: in the clone, git-ignored. */
const DEFAULT_STATE_DIR = join(REPO_ROOT, ".dev-state");

function parseCommandLine(): { mode: "demo" | "dev"; options: StackOptions; stateDir: string } {
  const portFlag = { type: "string" } as const;
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: { "windmill-port": portFlag, "sts-port": portFlag, "s3-port": portFlag, "rds-port": portFlag, "state-dir": { type: "string" } },
  });
  const mode = positionals[0] ?? "demo";
  if (mode !== "demo" && mode !== "dev") throw new Error(USAGE);
  const port = (flag: keyof typeof values) => {
    const text = values[flag];
    if (text === undefined) return undefined;
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1 || n > 65_535) throw new Error(`--${flag} must be a port number from 1 to 65535, got "${text}"\n${USAGE}`);
    return n;
  };
  const ports = { windmill: port("windmill-port"), sts: port("sts-port"), s3: port("s3-port"), rds: port("rds-port") };
  return { mode, options: { s3: true, rds: true, ports }, stateDir: resolve(values["state-dir"] ?? DEFAULT_STATE_DIR) };
}

let commandLine: ReturnType<typeof parseCommandLine>;
try {
  commandLine = parseCommandLine();
} catch (err) {
  console.error((err as Error).message);
  process.exit(2);
}
await (commandLine.mode === "dev" ? dev(commandLine.options, commandLine.stateDir) : demo(commandLine.options)).catch((err: unknown) => {
  console.error(`\n✖ ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
