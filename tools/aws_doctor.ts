// `npm run aws:doctor -- --trust-policy trust.json --sub '<sub>' [--aud sts.amazonaws.com]
//   [--email x] [--issuer https://host/api/oidc/]`: the doctor's trust-policy check, offline.
// Prints the same rows f/aws_oidc/doctor returns, as a table; exits 1 when a check failed.
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { row, type DoctorRow } from "../f/aws_oidc/lib/doctorRow.ts";
import { checkTrustPolicy, parseTrustPolicy, type TrustPolicy } from "../f/aws_oidc/lib/trustPolicyCheck.ts";
import { InputError } from "../f/aws_oidc/lib/validate.ts";

const USAGE = "usage: npm run aws:doctor -- --trust-policy file.json --sub '<email>::<script>::<flow>::<workspace>' [--aud sts.amazonaws.com] [--email x] [--issuer https://host/api/oidc/]";
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
  const { values } = parseArgs({
    options: {
      "trust-policy": { type: "string" },
      sub: { type: "string" },
      aud: { type: "string", multiple: true, default: [] },
      email: { type: "string" },
      issuer: { type: "string" },
      "account-id": { type: "string", default: "*" },
    },
  });
  if (!values["trust-policy"] || !values.sub) throw new InputError(values.sub ? "trust-policy" : "sub", "it is missing", USAGE);
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

try {
  process.exitCode = await main();
} catch (err) {
  console.error((err as Error).message);
  process.exitCode = 2;
}
