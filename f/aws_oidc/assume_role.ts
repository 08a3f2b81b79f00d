// Exchanges this job's Windmill OIDC ID token for temporary AWS credentials and saves
// them as an aws_sts_credentials resource that later steps take as `$res:<save_to>`.
import { assumeRoleAndSave } from "./lib/assumeRoleAndSave.ts";
import { withDefaults } from "./lib/optionalArgs.ts";

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
  const o = withDefaults(
    { role_arn, region, audience, session_name, duration, session_policy, policy_arns, chain_role_arn, chain_external_id, save_to, min_remaining, force },
    {
      role_arn: "", region: "", audience: "sts.amazonaws.com", session_name: "", duration: "1h", session_policy: "", policy_arns: [],
      chain_role_arn: "", chain_external_id: "", save_to: "f/aws_oidc/aws_credentials", min_remaining: "15m", force: false,
    },
  );
  return await assumeRoleAndSave({
    awsOidc: aws_oidc ?? undefined,
    roleArn: o.role_arn,
    region: o.region,
    audience: o.audience,
    sessionName: o.session_name,
    duration: o.duration,
    sessionPolicy: o.session_policy,
    policyArns: o.policy_arns,
    chainRoleArn: o.chain_role_arn,
    chainExternalId: o.chain_external_id,
    saveTo: o.save_to,
    minRemaining: o.min_remaining,
    force: o.force,
  });
}
