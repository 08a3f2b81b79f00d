// `npm run aws:policy -- --account-id 123456789012 --base-url https://windmill.example.com
//   --workspace prod --flow f/aws_oidc/s3_csv_to_rds --bucket data --prefix in/ ...`
// writes trust-policy.json, permission-policy.json and windmill-oidc.json (CloudFormation).
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { setupDocuments } from "../f/aws_oidc/lib/awsSetup.ts";

const { values } = parseArgs({
  options: {
    "account-id": { type: "string" },
    "base-url": { type: "string" },
    workspace: { type: "string" },
    script: { type: "string", multiple: true, default: [] },
    flow: { type: "string", multiple: true, default: [] },
    email: { type: "string", multiple: true, default: [] },
    "role-name": { type: "string", default: "" },
    bucket: { type: "string", default: "" },
    prefix: { type: "string", default: "" },
    "s3-write": { type: "boolean", default: false },
    "kms-key-arn": { type: "string", default: "" },
    "rds-region": { type: "string", default: "" },
    "dbi-resource-id": { type: "string", default: "" },
    "db-user": { type: "string", default: "" },
    audience: { type: "string", default: "sts.amazonaws.com" },
    "max-session-hours": { type: "string", default: "1" },
    out: { type: "string", default: "aws-setup" },
  },
});

try {
  const docs = setupDocuments({
    accountId: values["account-id"] ?? "",
    baseUrl: values["base-url"] ?? "",
    workspace: values.workspace ?? "",
    scripts: values.script,
    flows: values.flow,
    emails: values.email,
    audience: values.audience,
    roleName: values["role-name"],
    maxSessionDuration: Math.round(Number(values["max-session-hours"]) * 3600),
    s3: values.bucket ? { bucket: values.bucket, prefix: values.prefix, write: values["s3-write"] } : null,
    kmsKeyArn: values["kms-key-arn"],
    rds: values["db-user"] ? { region: values["rds-region"], dbiResourceId: values["dbi-resource-id"], dbUser: values["db-user"] } : null,
  });
  await mkdir(values.out, { recursive: true });
  const files: [string, unknown][] = [
    ["trust-policy.json", docs.trust_policy],
    ["permission-policy.json", docs.permission_policy],
    ["windmill-oidc.json", docs.cloudformation],
  ];
  for (const [name, doc] of files) await writeFile(join(values.out, name), `${JSON.stringify(doc, null, 2)}\n`);
  console.log(`OIDC provider URL: ${docs.provider_url}`);
  console.log(`Allowed sub patterns:\n  ${docs.sub_patterns.join("\n  ")}`);
  console.log(`Wrote ${files.map(([n]) => join(values.out, n)).join(", ")}`);
  console.log(`Next:\n  ${docs.next_steps.join("\n  ")}`);
} catch (err) {
  console.error((err as Error).message);
  process.exit(2);
}
