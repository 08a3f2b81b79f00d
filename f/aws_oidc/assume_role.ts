// Exchanges this job's Windmill OIDC ID token for temporary AWS credentials and saves
// them as an aws_sts_credentials resource that later steps take as `$res:<save_to>`.
import { assumeRoleAndSave } from "./lib/assumeRoleAndSave.ts";

/** The hub's aws_oidc resource type: the role to assume and the STS region. */
type AwsOidc = { roleArn: string; region: string };

export async function main(
  aws_oidc: AwsOidc | undefined = undefined,
  role_arn: string = "",
  region: string = "",
  audience: string = "sts.amazonaws.com",
  session_name: string = "",
  duration: string = "1h",
  session_policy: string = "",
  policy_arns: string[] = [],
  chain_role_arn: string = "",
  chain_external_id: string = "",
  save_to: string = "f/aws_oidc/aws_credentials",
  min_remaining: string = "15m",
  force: boolean = false,
) {
  return await assumeRoleAndSave({
    awsOidc: aws_oidc,
    roleArn: role_arn,
    region,
    audience,
    sessionName: session_name,
    duration,
    sessionPolicy: session_policy,
    policyArns: policy_arns,
    chainRoleArn: chain_role_arn,
    chainExternalId: chain_external_id,
    saveTo: save_to,
    minRemaining: min_remaining,
    force,
  });
}
