// The doctor: checks an AWS OIDC setup link by link (ID token, trust policy, STS, session
// duration, caller identity, S3, RDS) and returns one row per check, ending with a verdict
// row that names the first broken link and its fix. A check that depends on a failed one is
// marked skipped; independent ones (S3, RDS) still run. Nothing it returns or logs is
// secret: claims, ARNs and AWS's own messages only. The session it mints stays in memory.
import { HeadBucketCommand, ListObjectsV2Command, S3Client, type ListObjectsV2CommandOutput } from "@aws-sdk/client-s3";
import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import { assumeRoleWithWindmillToken, type Log, type MintParams, type SessionCredentials } from "./assumeRole.ts";
import { AwsCallError } from "./awsError.ts";
import { firstFailure, row, type DoctorRow } from "./doctorRow.ts";
import { describeClaims, getWindmillIdToken, readClaims, WindmillOidcError, type IdTokenClaims } from "./idToken.ts";
import { checkDatabase, isIamAuthFailure, pgFailure, withRdsSession, type AwsRdsIamPostgres } from "./rds.ts";
import { checkBucket, explainS3Error } from "./s3Errors.ts";
import { explainStsError } from "./stsErrors.ts";
import { checkTrustPolicy, parseTrustPolicy, TRUST_POLICY_CHECK, type TrustPolicy } from "./trustPolicyCheck.ts";
import { checkKnownRegion } from "./awsRegions.ts";
import { defaultSessionName, formatSeconds, InputError, parseDuration, parseRoleArn } from "./validate.ts";

/** The checks, in the order they run and appear. */
export const CHECKS = {
  idToken: "ID token",
  trustPolicy: TRUST_POLICY_CHECK,
  assumeRole: "AssumeRoleWithWebIdentity",
  duration: "session duration",
  callerIdentity: "GetCallerIdentity",
  headBucket: "S3 HeadBucket",
  listPrefix: "S3 ListObjectsV2 (1 key)",
  rds: "RDS IAM connection",
} as const;
export const VERDICT = "verdict";

/** IAM's lowest MaxSessionDuration: every role grants 1 h, so it is what the doctor retries with. */
const FALLBACK_DURATION_SECONDS = 3600;
const ENTERPRISE_FIX = "run this on a Windmill Enterprise instance with a valid license, as a Windmill job (its run form, a flow step or a schedule), not on a laptop.";

export interface DoctorInput {
  awsOidc: { roleArn?: string; region?: string } | null | undefined;
  audience: string;
  duration: string;
  bucket: string;
  prefix: string;
  database?: AwsRdsIamPostgres | null;
  trustPolicy?: unknown;
}

interface Setup {
  mint: MintParams;
  accountId: string;
  roleName: string;
  bucket: string;
  prefix: string;
  database?: ReturnType<typeof checkDatabase>;
  trustPolicy?: TrustPolicy;
}

/** Malformed inputs are not a broken link: they fail the job before any check, naming the input. */
function checkDoctorInput(input: DoctorInput): Setup {
  if (!input.awsOidc?.roleArn) throw new InputError("aws_oidc", "no role given", "Pick an aws_oidc resource: {roleArn, region}");
  const { accountId, roleName, partition } = parseRoleArn("aws_oidc.roleArn", input.awsOidc.roleArn);
  return {
    mint: {
      roleArn: input.awsOidc.roleArn.trim(),
      region: checkKnownRegion("aws_oidc.region", input.awsOidc.region, partition),
      audience: input.audience.trim() || "sts.amazonaws.com",
      sessionName: defaultSessionName(process.env.WM_JOB_PATH, process.env.WM_JOB_ID),
      durationSeconds: parseDuration("duration", input.duration),
    },
    accountId,
    roleName,
    bucket: input.bucket ? checkBucket("bucket", input.bucket) : "",
    prefix: input.prefix,
    database: input.database ? checkDatabase(input.database) : undefined,
    trustPolicy: input.trustPolicy ? parseTrustPolicy("trust_policy", input.trustPolicy) : undefined,
  };
}

export async function runDoctor(input: DoctorInput, log: Log = console.log): Promise<DoctorRow[]> {
  const setup = checkDoctorInput(input);
  const rows: DoctorRow[] = [];
  let blockedBy: string = CHECKS.idToken;
  const claims = await idTokenCheck(setup, rows);
  if (claims) {
    blockedBy = CHECKS.assumeRole;
    const policyRow = setup.trustPolicy
      ? checkTrustPolicy(setup.trustPolicy, claims, setup.accountId)
      : row(CHECKS.trustPolicy, "skipped", "no trust_policy given", `paste the role's trust policy (IAM > Roles > ${setup.roleName} > Trust relationships) into trust_policy to see which condition refuses a token.`);
    rows.push(policyRow);
    const session = await assumeRoleCheck(setup, policyRow, rows, log);
    if (session) {
      await callerIdentityCheck(setup, session, rows);
      await s3Checks(setup, session, rows);
      await rdsCheck(setup, session, rows);
    }
  }
  const table = withSkippedAndVerdict(rows, blockedBy);
  for (const r of table) log(`${r.check}: ${r.result}`);
  return table;
}

async function idTokenCheck(setup: Setup, rows: DoctorRow[]): Promise<IdTokenClaims | undefined> {
  try {
    const claims = readClaims(await getWindmillIdToken(setup.mint.audience));
    rows.push(row(CHECKS.idToken, "ok", `claims (the token itself is never shown): ${JSON.stringify(describeClaims(claims))}`));
    return claims;
  } catch (err) {
    rows.push(row(CHECKS.idToken, "failed", (err as Error).message, err instanceof WindmillOidcError ? ENTERPRISE_FIX : ""));
    return undefined;
  }
}

function failureRow(check: string, err: unknown): DoctorRow {
  if (err instanceof AwsCallError) return row(check, "failed", err.problem, err.fix);
  if (err instanceof WindmillOidcError) return row(check, "failed", err.message, ENTERPRISE_FIX);
  return row(check, "failed", (err as Error).message ?? String(err));
}

function isMaxDurationRefusal(err: unknown): err is AwsCallError {
  return err instanceof AwsCallError && err.code === "ValidationError" && err.problem.includes("MaxSessionDuration");
}

async function assumeRoleCheck(setup: Setup, policyRow: DoctorRow, rows: DoctorRow[], log: Log): Promise<SessionCredentials | undefined> {
  const asked = setup.mint.durationSeconds;
  let session: SessionCredentials;
  try {
    session = (await assumeRoleWithWindmillToken(setup.mint, log)).credentials;
    rows.push(row(CHECKS.assumeRole, "ok", `assumed ${session.assumedRoleArn} until ${session.expiration.toISOString()}`));
    rows.push(row(CHECKS.duration, "ok", `STS granted the ${formatSeconds(asked)} asked for: within the role's maximum session duration`));
  } catch (err) {
    if (!isMaxDurationRefusal(err) || asked <= FALLBACK_DURATION_SECONDS) {
      rows.push(accessDeniedDespitePolicy(failureRow(CHECKS.assumeRole, err), policyRow));
      return undefined;
    }
    try {
      session = (await assumeRoleWithWindmillToken({ ...setup.mint, durationSeconds: FALLBACK_DURATION_SECONDS }, log)).credentials;
    } catch (retryErr) {
      rows.push(failureRow(CHECKS.assumeRole, retryErr));
      return undefined;
    }
    rows.push(row(CHECKS.assumeRole, "ok", `assumed ${session.assumedRoleArn} with a 1h session (the ${formatSeconds(asked)} asked for was refused: see session duration)`));
    rows.push(row(CHECKS.duration, "failed",
      `${err.problem} 1h was granted, so the role's maximum session duration lies between 1h and ${formatSeconds(asked)}.`,
      `ask for at most the role's maximum (assume_role's duration input; 1h always works), or raise it to ${formatSeconds(asked)} or more (up to 12h): IAM > Roles > ${setup.roleName} > Edit > Maximum session duration.`));
  }
  if (policyRow.result === "failed") {
    // STS is the authority: a pasted policy that refuses a token STS accepts is not the role's.
    Object.assign(policyRow, {
      result: "warning",
      detail: `STS accepted this job's token, so the pasted policy is not the role's current trust policy. In the pasted one: ${policyRow.detail}`,
      fix: `paste the current policy from IAM > Roles > ${setup.roleName} > Trust relationships to check it.`,
    });
  }
  return session;
}

/** STS refused, although the pasted policy admits the token: the policy pasted is not the one STS read. */
function accessDeniedDespitePolicy(failure: DoctorRow, policyRow: DoctorRow): DoctorRow {
  if (policyRow.result !== "ok" || !failure.detail.includes("AccessDenied")) return failure;
  return {
    ...failure,
    fix: `${failure.fix} The pasted trust policy admits this token, so either it is not the role's current one, or aws_oidc.roleArn names another role (AWS answers AccessDenied for a role that does not exist too).`,
  };
}

async function callerIdentityCheck(setup: Setup, session: SessionCredentials, rows: DoctorRow[]): Promise<void> {
  const sts = new STSClient({ region: setup.mint.region, credentials: session });
  try {
    const identity = await sts.send(new GetCallerIdentityCommand({}));
    rows.push(row(CHECKS.callerIdentity, "ok", `${identity.Arn} (account ${identity.Account})`));
  } catch (err) {
    rows.push(failureRow(CHECKS.callerIdentity, explainStsError(err, { operation: "GetCallerIdentity", roleArn: setup.mint.roleArn, region: setup.mint.region })));
  }
}

function isForbidden(err: unknown): boolean {
  return (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 403;
}

async function s3Checks(setup: Setup, session: SessionCredentials, rows: DoctorRow[]): Promise<void> {
  const { bucket, prefix } = setup;
  if (!bucket) {
    rows.push(row(CHECKS.headBucket, "skipped", "no bucket given", "give bucket (and prefix) to check S3 access."));
    rows.push(row(CHECKS.listPrefix, "skipped", "no bucket given"));
    return;
  }
  const s3 = new S3Client({ region: setup.mint.region, credentials: session });
  const headError = await s3.send(new HeadBucketCommand({ Bucket: bucket })).then(() => undefined, (err: unknown) => err ?? new Error("HeadBucket failed"));
  if (headError && !isForbidden(headError)) {
    rows.push(failureRow(CHECKS.headBucket, explainS3Error(headError, { operation: "HeadBucket", bucket })));
    rows.push(row(CHECKS.listPrefix, "skipped", `not run: ${CHECKS.headBucket} failed`));
    return;
  }
  let listed: ListObjectsV2CommandOutput | undefined;
  let listError: unknown;
  try {
    listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix || undefined, MaxKeys: 1 }));
  } catch (err) {
    listError = err ?? new Error("ListObjectsV2 failed");
  }
  const where = `s3://${bucket}/${prefix}`;
  if (!headError) rows.push(row(CHECKS.headBucket, "ok", `s3://${bucket} exists and the role may list it (s3:ListBucket)`));
  else if (!listError) {
    rows.push(row(CHECKS.headBucket, "ok",
      `HeadBucket is refused (403) but listing ${where} works: the role's s3:ListBucket is limited by an s3:prefix condition (as f/aws_oidc/trust_policy writes it), which HeadBucket never satisfies. The bucket is reachable.`));
  } else rows.push(failureRow(CHECKS.headBucket, explainS3Error(headError, { operation: "HeadBucket", bucket })));
  if (listError) {
    const failure = failureRow(CHECKS.listPrefix, explainS3Error(listError, { operation: "ListObjectsV2", bucket, key: prefix }));
    const scoped = prefix && isForbidden(listError) ? ` To keep it to the prefix, give that statement the condition {"StringLike": {"s3:prefix": ["${prefix}*"]}}.` : "";
    rows.push({ ...failure, fix: `${failure.fix}${scoped}` });
  } else if (!listed?.Contents?.length) {
    rows.push(row(CHECKS.listPrefix, "warning", `the role may list ${where}, but no object is there`, "if objects should be there, check prefix: keys are case-sensitive, and a folder's prefix ends in /."));
  } else {
    rows.push(row(CHECKS.listPrefix, "ok", `the role may list ${where}; first key: ${listed.Contents[0].Key}`));
  }
}

/** A failure the RDS check explains itself (the pool's explain hook hands it back). */
class RdsCheckFailure extends Error {
  constructor(readonly problem: string, readonly fix: string) {
    super(problem);
  }
}

function rdsFailure(err: unknown, where: string, setup: Setup, session: SessionCredentials): RdsCheckFailure {
  const { code, problem, fix } = pgFailure(err, where);
  const db = setup.database!;
  if (!isIamAuthFailure(code, (err as Error).message ?? "")) return new RdsCheckFailure(problem, fix);
  const arn = `arn:aws:rds-db:${db.region ?? setup.mint.region}:${session.accountId}:dbuser:<DbiResourceId>/${db.user}`;
  return new RdsCheckFailure(problem,
    `RDS refused the IAM token for user "${db.user}" (it gives the same answer for each cause). Check, in order: ` +
    `(1) in the database, as the master user, the user exists and is switched to IAM auth: CREATE USER "${db.user}"; GRANT rds_iam TO "${db.user}"; ` +
    `(2) the role's permission policy allows rds-db:connect on ${arn}: the user at its end must be "${db.user}", the user of this resource (the DbiResourceId, db-…, is in the RDS console > Configuration > Resource ID); ` +
    "(3) host, port and region are the instance's own endpoint (the token is signed for them).");
}

async function rdsCheck(setup: Setup, session: SessionCredentials, rows: DoctorRow[]): Promise<void> {
  const db = setup.database;
  if (!db) {
    rows.push(row(CHECKS.rds, "skipped", "no database given", "pick an aws_rds_iam_postgres resource in database to check the RDS connection."));
    return;
  }
  try {
    const seen = await withRdsSession(async () => session, setup.mint.region, db, async (rds) => {
      const [answer] = await rds.sql<{ current_user: string; version: string }[]>`select current_user, version()`;
      return { ...answer, warnings: rds.warnings, describe: rds.describe };
    }, (err, where) => rdsFailure(err, where, setup, session));
    const detail = `connected as ${seen.current_user} to ${seen.describe} with IAM auth over TLS ${db.tlsMode}: ${seen.version.split(",")[0]}`;
    rows.push(seen.warnings.length
      ? row(CHECKS.rds, "warning", `${detail}. ${seen.warnings.join(" ")}`, "set tlsMode verify-full and caCert to the RDS CA bundle.")
      : row(CHECKS.rds, "ok", detail));
  } catch (err) {
    rows.push(err instanceof RdsCheckFailure ? row(CHECKS.rds, "failed", err.problem, err.fix) : failureRow(CHECKS.rds, err));
  }
}

/** Marks the checks that could not run (after `blockedBy` failed) as skipped, then adds the verdict: the first broken link and its fix. */
function withSkippedAndVerdict(rows: DoctorRow[], blockedBy: string): DoctorRow[] {
  const failed = firstFailure(rows);
  const seen = new Set(rows.map((r) => r.check));
  const table = [...rows, ...Object.values(CHECKS).filter((c) => !seen.has(c)).map((c) => row(c, "skipped", `not run: ${blockedBy} failed`))];
  if (failed) return [...table, row(VERDICT, "failed", `first broken link: ${failed.check}`, failed.fix)];
  const warnings = table.filter((r) => r.result === "warning").map((r) => r.check);
  const skipped = table.filter((r) => r.result === "skipped").map((r) => r.check);
  const notRun = skipped.length ? ` (not checked: ${skipped.join(", ")})` : "";
  if (warnings.length) return [...table, row(VERDICT, "warning", `no broken link; warnings: ${warnings.join(", ")}${notRun}`, "see the warning rows.")];
  return [...table, row(VERDICT, "ok", `every check passed${notRun}`)];
}
