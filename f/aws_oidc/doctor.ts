// Checks an AWS OIDC setup end to end and names the first broken link with its fix: the
// job's ID token and its claims, the pasted trust policy evaluated against them, STS
// AssumeRoleWithWebIdentity and GetCallerIdentity, the session duration, S3 (HeadBucket and
// a one-key list under the prefix) and RDS (IAM auth over verify-full TLS). One row per check.
import { runDoctor } from "./lib/doctor.ts";
import type { AwsRdsIamPostgres as Database } from "./lib/rds.ts";
import { withDefaults } from "./lib/optionalArgs.ts";

/** The hub's aws_oidc resource type: the role to assume and the STS region. */
type AwsOidc = { roleArn: string; region: string };
/** Picks an aws_rds_iam_postgres resource (host, port, database, user, TLS; no password). */
type AwsRdsIamPostgres = Database;

export async function main(
  aws_oidc: AwsOidc,
  bucket: string = "",
  prefix: string = "",
  database: AwsRdsIamPostgres | undefined = undefined,
  trust_policy: string | object = "",
  audience: string = "sts.amazonaws.com",
  duration: string = "1h",
) {
  const o = withDefaults(
    { bucket, prefix, trust_policy, audience, duration },
    { bucket: "", prefix: "", trust_policy: "", audience: "sts.amazonaws.com", duration: "1h" },
  );
  return await runDoctor({
    awsOidc: aws_oidc,
    bucket: o.bucket,
    prefix: o.prefix,
    database: database ?? undefined,
    trustPolicy: o.trust_policy,
    audience: o.audience,
    duration: o.duration,
  });
}
