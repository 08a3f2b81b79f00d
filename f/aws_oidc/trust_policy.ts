// Writes the least-privilege AWS side of this bundle: the role's trust policy (this
// workspace's listed scripts/flows only), its permission policy (one bucket prefix, one
// database user) and a CloudFormation template creating the OIDC provider and the role.
import { setupDocuments } from "./lib/awsSetup.ts";

export async function main(
  account_id: string,
  windmill_base_url: string,
  workspace: string,
  allowed_scripts: string[] = [],
  allowed_flows: string[] = ["f/aws_oidc/s3_csv_to_rds", "f/aws_oidc/rds_to_s3_export"],
  allowed_emails: string[] = [],
  role_name: string = "windmill-aws-oidc",
  bucket: string = "",
  prefix: string = "",
  s3_write: boolean = false,
  rds_region: string = "",
  dbi_resource_id: string = "",
  db_user: string = "",
  audience: string = "sts.amazonaws.com",
  max_session_hours: number = 1,
) {
  return setupDocuments({
    accountId: account_id,
    baseUrl: windmill_base_url,
    workspace,
    scripts: allowed_scripts,
    flows: allowed_flows,
    emails: allowed_emails,
    audience,
    roleName: role_name,
    maxSessionDuration: Math.round(max_session_hours * 3600),
    s3: bucket ? { bucket, prefix, write: s3_write } : null,
    rds: db_user ? { region: rds_region, dbiResourceId: dbi_resource_id, dbUser: db_user } : null,
  });
}
