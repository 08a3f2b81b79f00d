// Writes the least-privilege AWS side of this bundle: the role's trust policy (this
// workspace's scripts/flows only: by default every flow, schedule target and the doctor the
// bundle ships), its permission policy (one bucket prefix and its KMS key, one database user)
// and a CloudFormation template creating the role, and the OIDC provider unless the account
// has it already (a second workspace of the instance). `admitted` says what is let in and why.
import { admittedRunnables } from "./lib/admitted.ts";
import { setupDocuments } from "./lib/awsSetup.ts";
import { withDefaults } from "./lib/optionalArgs.ts";

export async function main(
  account_id: string,
  windmill_base_url: string,
  workspace: string,
  allowed_scripts: string[] = [],
  allowed_flows: string[] = [],
  add_scripts: string[] = [],
  add_flows: string[] = [],
  allowed_emails: string[] = [],
  role_name: string = "",
  bucket: string = "",
  prefix: string = "",
  s3_write: boolean = false,
  kms_key_arn: string = "",
  rds_region: string = "",
  dbi_resource_id: string = "",
  db_user: string = "",
  audience: string = "sts.amazonaws.com",
  max_session_hours: number = 1,
) {
  const o = withDefaults(
    { allowed_scripts, allowed_flows, add_scripts, add_flows, allowed_emails, role_name, bucket, prefix, s3_write, kms_key_arn, rds_region, dbi_resource_id, db_user, audience, max_session_hours },
    {
      allowed_scripts: [], allowed_flows: [], add_scripts: [], add_flows: [], allowed_emails: [], role_name: "",
      bucket: "", prefix: "", s3_write: false, kms_key_arn: "", rds_region: "", dbi_resource_id: "", db_user: "", audience: "sts.amazonaws.com", max_session_hours: 1,
    },
  );
  const admitted = admittedRunnables({
    flows: o.allowed_flows, scripts: o.allowed_scripts, addFlows: o.add_flows, addScripts: o.add_scripts,
    names: { flows: "allowed_flows", scripts: "allowed_scripts", addFlows: "add_flows", addScripts: "add_scripts" },
  });
  return setupDocuments({
    accountId: account_id,
    baseUrl: windmill_base_url,
    workspace,
    scripts: admitted.filter((r) => r.kind === "script").map((r) => r.path),
    flows: admitted.filter((r) => r.kind === "flow").map((r) => r.path),
    admitted,
    emails: o.allowed_emails,
    audience: o.audience,
    roleName: o.role_name,
    maxSessionDuration: Math.round(o.max_session_hours * 3600),
    s3: o.bucket ? { bucket: o.bucket, prefix: o.prefix, write: o.s3_write } : null,
    kmsKeyArn: o.kms_key_arn,
    rds: o.db_user ? { region: o.rds_region, dbiResourceId: o.dbi_resource_id, dbUser: o.db_user } : null,
  });
}
