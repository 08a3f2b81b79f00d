// `npm run aws:policy -- --account-id 123456789012 --base-url https://windmill.example.com
//   --workspace prod --bucket data --prefix in/ ...` writes trust-policy.json,
// permission-policy.json and windmill-oidc.json (CloudFormation) into --out (aws-setup/).
// By default the trust policy admits every flow, schedule target and the doctor this repo
// ships (read from f/ and u/); --flow/--script replace that set, --add-flow/--add-script extend it.
import { mkdir, writeFile } from "node:fs/promises";
import type { ParseArgsOptionsConfig } from "node:util";
import { join, resolve } from "node:path";
import { admittedRunnables, describeAdmitted } from "../f/aws_oidc/lib/admitted.ts";
import { setupDocuments } from "../f/aws_oidc/lib/awsSetup.ts";
import { numberFlag, parseCommandLine, runTool, UsageError } from "./cli.ts";
import { readShippedRunnables } from "./shippedRunnables.ts";

const REPO_ROOT = resolve(import.meta.dir, "..");

const USAGE = `usage: npm run aws:policy -- --account-id <12 digits> --base-url https://<windmill host> --workspace <id> [options]

  --account-id ID          the AWS account the role lives in
  --base-url URL           Windmill's public base URL, without /api/oidc (e.g. https://windmill.example.com)
  --workspace ID           the workspace whose jobs may assume the role
  --flow PATH              admit only these flows and --script paths (repeatable), instead of the default set
  --script PATH            admit only these scripts run on their own and --flow paths (repeatable)
  --add-flow PATH          admit this flow on top of the set (repeatable)
  --add-script PATH        admit this script on top of the set (repeatable)
                           default set: every flow, schedule target and the doctor this repo ships
  --email ADDRESS          only jobs of these users (repeatable)
  --role-name NAME         the role's name (default windmill-<workspace>)
  --bucket NAME            the bucket the role may use; --prefix P limits it to keys under P
  --s3-write               allow writes and deletes in it too
  --kms-key-arn ARN        the KMS key of the bucket's SSE-KMS objects
  --db-user USER           the database user the role may connect as, with --dbi-resource-id db-... and --rds-region
  --audience AUD           the ID tokens' audience (default sts.amazonaws.com)
  --max-session-hours N    the role's maximum session, 1 to 12 (default 1)
  --out DIR                where to write the files (default aws-setup)
  --help                   this text`;

const OPTIONS = {
  "account-id": { type: "string" },
  "base-url": { type: "string" },
  workspace: { type: "string" },
  script: { type: "string", multiple: true, default: [] as string[] },
  flow: { type: "string", multiple: true, default: [] as string[] },
  "add-script": { type: "string", multiple: true, default: [] as string[] },
  "add-flow": { type: "string", multiple: true, default: [] as string[] },
  email: { type: "string", multiple: true, default: [] as string[] },
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
} satisfies ParseArgsOptionsConfig;

async function main(): Promise<number> {
  const values = parseCommandLine(USAGE, OPTIONS);
  for (const flag of ["account-id", "base-url", "workspace"] as const) {
    if (!values[flag]) throw new UsageError(`--${flag} is missing`);
  }
  const admitted = admittedRunnables({
    flows: values.flow, scripts: values.script, addFlows: values["add-flow"], addScripts: values["add-script"],
    names: { flows: "--flow", scripts: "--script", addFlows: "--add-flow", addScripts: "--add-script" },
  }, await readShippedRunnables(REPO_ROOT));
  const templatePath = join(values.out, "windmill-oidc.json");
  const docs = setupDocuments({
    accountId: values["account-id"] ?? "",
    baseUrl: values["base-url"] ?? "",
    workspace: values.workspace ?? "",
    scripts: admitted.filter((r) => r.kind === "script").map((r) => r.path),
    flows: admitted.filter((r) => r.kind === "flow").map((r) => r.path),
    admitted,
    templatePath,
    emails: values.email,
    audience: values.audience,
    roleName: values["role-name"],
    maxSessionDuration: Math.round(numberFlag("max-session-hours", values["max-session-hours"]) * 3600),
    s3: values.bucket ? { bucket: values.bucket, prefix: values.prefix, write: values["s3-write"] } : null,
    kmsKeyArn: values["kms-key-arn"],
    rds: values["db-user"] ? { region: values["rds-region"], dbiResourceId: values["dbi-resource-id"], dbUser: values["db-user"] } : null,
  });
  await mkdir(values.out, { recursive: true });
  const files: [string, unknown][] = [
    [join(values.out, "trust-policy.json"), docs.trust_policy],
    [join(values.out, "permission-policy.json"), docs.permission_policy],
    [templatePath, docs.cloudformation],
  ];
  for (const [path, doc] of files) await writeFile(path, `${JSON.stringify(doc, null, 2)}\n`);
  console.log(`OIDC provider URL: ${docs.provider_url}`);
  console.log(`Admitted (${values.flow.length + values.script.length ? "as given" : "default: what this repo ships"}):\n  ${describeAdmitted(docs.admitted).join("\n  ")}`);
  console.log(`Allowed sub patterns:\n  ${docs.sub_patterns.join("\n  ")}`);
  console.log(`Wrote ${files.map(([path]) => path).join(", ")}`);
  console.log(`Next:\n  ${docs.next_steps.join("\n  ")}`);
  return 0;
}

await runTool(USAGE, main);
