// `npm run aws:doctor -- --trust-policy trust.json --sub '<sub>' [--aud sts.amazonaws.com]
//   [--email x] [--issuer https://host/api/oidc/]`: the doctor's trust-policy check, offline.
// Prints the same rows f/aws_oidc/doctor returns, as a table; exits 1 when a check failed.
import { readFile } from "node:fs/promises";
import { row, type DoctorRow } from "../f/aws_oidc/lib/doctorRow.ts";
import { checkTrustPolicy, parseTrustPolicy, type TrustPolicy } from "../f/aws_oidc/lib/trustPolicyCheck.ts";
import { InputError } from "../f/aws_oidc/lib/validate.ts";
import { parseCommandLine, runTool, UsageError } from "./cli.ts";

const USAGE = `usage: npm run aws:doctor -- --trust-policy <file.json> --sub '<email>::<script>::<flow>::<workspace>' [options]

  --trust-policy FILE   the role's trust policy (JSON; aws iam get-role output works too)
  --sub SUB             the token's sub: <email>::<script path or no_path>::<flow path or no_flow>::<workspace>
  --aud AUD             the token's audience (repeatable; default sts.amazonaws.com)
  --email ADDRESS       the token's email claim
  --issuer URL          the issuer (default: the provider the policy's Principal names, https://<host>/api/oidc/)
  --account-id ID       the account the provider must be in (default: any)
  --help                this text

Exit status: 0 the policy admits the token, 1 it refuses it, 2 a bad argument.`;
/** Windmill's sub: <email>::<script path>::<flow path>::<workspace> (no_path / no_flow when absent). */
const SUB_FIELDS = 4;
const COLUMN_WIDTH = { detail: 60, fix: 60 };

/** The issuer a trust policy names in its Federated principal: arn:aws:iam::<account>:oidc-provider/<host/path>. */
function issuerOf(policy: TrustPolicy): string | undefined {
  const statements = Array.isArray(policy.Statement) ? policy.Statement : [policy.Statement];
  for (const statement of statements) {
    const federated = typeof statement.Principal === "object" ? statement.Principal.Federated : undefined;
    for (const id of Array.isArray(federated) ? federated : federated ? [federated] : []) {
      const provider = /:oidc-provider\/(.+)$/.exec(id)?.[1];
      if (provider) return `https://${provider}`;
    }
  }
  return undefined;
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter(Boolean)) {
    for (let rest = word; rest; ) {
      const room = line ? width - line.length - 1 : width;
      if (rest.length <= room) {
        line = line ? `${line} ${rest}` : rest;
        rest = "";
      } else if (line && rest.length <= width) {
        lines.push(line);
        line = "";
      } else {
        // A word longer than the column (a sub, an ARN) is cut where the column ends.
        const cut = line ? room : width;
        lines.push(line ? `${line} ${rest.slice(0, cut)}` : rest.slice(0, cut));
        line = "";
        rest = rest.slice(cut);
      }
    }
  }
  return line ? [...lines, line] : lines.length ? lines : [""];
}

/** The rows as a text table: check | result | detail | fix, long cells wrapped. */
function formatTable(rows: DoctorRow[]): string {
  const checkWidth = Math.max(5, ...rows.map((r) => r.check.length));
  const resultWidth = Math.max(6, ...rows.map((r) => r.result.length));
  const line = (cells: string[]) => [cells[0].padEnd(checkWidth), cells[1].padEnd(resultWidth), cells[2].padEnd(COLUMN_WIDTH.detail), cells[3]].join(" | ").trimEnd();
  const out = [line(["check", "result", "detail", "fix"]), line(["-".repeat(checkWidth), "-".repeat(resultWidth), "-".repeat(COLUMN_WIDTH.detail), "-".repeat(COLUMN_WIDTH.fix)])];
  for (const r of rows) {
    const detail = wrap(r.detail, COLUMN_WIDTH.detail);
    const fix = wrap(r.fix, COLUMN_WIDTH.fix);
    for (let i = 0; i < Math.max(detail.length, fix.length); i++) {
      out.push(line([i ? "" : r.check, i ? "" : r.result, detail[i] ?? "", fix[i] ?? ""]));
    }
  }
  return out.join("\n");
}

async function main(): Promise<number> {
  const values = parseCommandLine(USAGE, {
    "trust-policy": { type: "string" },
    sub: { type: "string" },
    aud: { type: "string", multiple: true, default: [] },
    email: { type: "string" },
    issuer: { type: "string" },
    "account-id": { type: "string", default: "*" },
  });
  if (!values["trust-policy"]) throw new UsageError("--trust-policy is missing");
  if (!values.sub) throw new UsageError("--sub is missing");
  const fields = values.sub.split("::");
  if (fields.length !== SUB_FIELDS || fields.some((f) => f === "")) {
    throw new UsageError(`--sub ${JSON.stringify(values.sub)} is malformed: it has ${fields.length} "::"-separated field${fields.length === 1 ? "" : "s"}${fields.includes("") ? ", some empty," : ""} where Windmill's sub has ${SUB_FIELDS}, <email>::<script path or no_path>::<flow path or no_flow>::<workspace>, e.g. alice@example.com::f/aws_oidc/assume_role::no_flow::prod`);
  }
  const policy = parseTrustPolicy("trust-policy", await readFile(values["trust-policy"], "utf8"));
  const issuer = values.issuer ?? issuerOf(policy);
  if (!issuer) throw new InputError("issuer", "the policy names no OIDC provider in Principal.Federated", "Give --issuer https://<windmill host>/api/oidc/");
  const claims = { iss: issuer, aud: values.aud.length ? values.aud : ["sts.amazonaws.com"], sub: values.sub, email: values.email };
  const rows = [
    row("token claims (given)", "ok", JSON.stringify(claims)),
    checkTrustPolicy(policy, claims, values["account-id"]),
  ];
  console.log(formatTable(rows));
  return rows.some((r) => r.result === "failed") ? 1 : 0;
}

await runTool(USAGE, main);
