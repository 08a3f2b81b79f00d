// The command-line tools run as a user runs them (`bun tools/<tool>.ts ...`): usage on --help,
// one line plus the usage and exit 2 on bad usage, never a stack trace; what aws:policy admits
// by default equals what the repo ships, and the list the Windmill script carries too.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SHIPPED_RUNNABLES } from "../../f/aws_oidc/lib/admitted.ts";
import { REPO_ROOT } from "../../local/stack.ts";
import { readShippedRunnables } from "../../tools/shippedRunnables.ts";

const out = await mkdtemp(join(tmpdir(), "aws-policy-cli-"));
afterAll(() => rm(out, { recursive: true, force: true }));

async function tool(name: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const proc = Bun.spawn([process.execPath, join("tools", `${name}.ts`), ...args], { cwd: REPO_ROOT, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

const REQUIRED = ["--account-id", "123456789012", "--base-url", "https://windmill.example.com", "--workspace", "prod", "--bucket", "data-lake"];
const policy = (...args: string[]) => tool("aws_policy", [...REQUIRED, "--out", out, ...args]);

/** A Bun or Node stack trace: `at main (file:line)` or the source excerpt Bun prints. */
const STACK_TRACE = /\n\s+at |\^\n|TypeError|error: /;

describe("aws:policy and aws:doctor as command-line tools", () => {
  test.each([["aws_policy"], ["aws_doctor"], ["generate_metadata"]])("%s --help prints the usage and exits 0", async (name) => {
    const run = await tool(name, ["--help"]);
    expect(run.code).toBe(0);
    expect(run.stdout).toStartWith("usage: npm run ");
    expect(run.stderr).toBe("");
  });

  test.each([
    ["aws_policy", [...REQUIRED, "--fow", "f/aws_oidc/x"], "unknown option --fow"],
    ["aws_policy", [...REQUIRED, "--flow"], "--flow needs a value"],
    ["aws_policy", ["--flow", "--bucket", "data-lake"], "--flow needs a value"],
    ["aws_policy", [...REQUIRED, "--max-session-hours", "abc"], '--max-session-hours takes a number, got "abc"'],
    ["aws_policy", ["--account-id", "123456789012"], "--base-url is missing"],
    ["aws_doctor", ["--help-me"], "unknown option --help-me"],
    ["aws_doctor", ["--trust-policy"], "--trust-policy needs a value"],
    ["aws_doctor", ["--trust-policy", "x.json"], "--sub is missing"],
    ["generate_metadata", ["--yes"], "unknown option --yes"],
  ] as const)("%s %p: one line naming it, the usage, exit 2", async (name, args, line) => {
    const run = await tool(name, [...args]);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe("");
    expect(run.stderr.split("\n")[0]).toBe(line);
    expect(run.stderr.split("\n")[1]).toStartWith("usage: npm run ");
    expect(run.stderr).not.toMatch(STACK_TRACE);
  });

  test("a malformed --sub is called malformed, not a policy that refuses it", async () => {
    await policy();
    for (const sub of ["alice@example.com::f/aws_oidc/assume_role::prod", "f/aws_oidc/assume_role", "a::b::::prod"]) {
      const run = await tool("aws_doctor", ["--trust-policy", join(out, "trust-policy.json"), "--sub", sub]);
      expect(run.code).toBe(2);
      expect(run.stderr.split("\n")[0]).toContain(`--sub ${JSON.stringify(sub)} is malformed`);
      expect(run.stderr).toContain("<email>::<script path or no_path>::<flow path or no_flow>::<workspace>");
      expect(run.stdout).not.toContain("add ");
    }
  });

  test("a base URL ending in /api/oidc (with or without the slash) is refused with the URL to give instead", async () => {
    for (const baseUrl of ["https://windmill.example.com/api/oidc/", "https://windmill.example.com/api/oidc"]) {
      const run = await tool("aws_policy", [...REQUIRED.slice(0, 2), ...["--base-url", baseUrl], ...REQUIRED.slice(4), "--out", out]);
      expect(run.code).toBe(2);
      expect(run.stderr).toContain(`Invalid input "base_url": "${baseUrl}" ends in /api/oidc`);
      expect(run.stderr).toContain("Give Windmill's base URL without it: https://windmill.example.com");
      expect(run.stderr).not.toMatch(STACK_TRACE);
    }
  });
});

describe("what aws:policy admits", () => {
  test("by default: every flow, schedule target and the doctor the repo ships, one line each with why", async () => {
    const run = await policy();
    expect(run.code).toBe(0);
    const admitted = run.stdout.split("Admitted (default: what this repo ships):\n")[1].split("\nAllowed sub patterns:")[0];
    expect(admitted.split("\n").map((l) => l.trim().split(/\s{2,}/))).toEqual([
      ["f/aws_oidc/assume_role", "script", "target of schedule f/aws_oidc/refresh_credentials"],
      ["f/aws_oidc/doctor", "script", "the doctor, to check the setup"],
      ["f/aws_oidc/rds_iam_postgresql_resource", "script", "target of schedule f/aws_oidc/refresh_rds_postgresql"],
      ["f/aws_oidc/rds_to_s3_export", "flow", "flow shipped in this bundle"],
      ["f/aws_oidc/s3_csv_to_rds", "flow", "flow shipped in this bundle"],
    ]);
    const trust = JSON.parse(await readFile(join(out, "trust-policy.json"), "utf8"));
    const subs = trust.Statement[0].Condition.StringLike["windmill.example.com/api/oidc/:sub"];
    expect(subs).toContain("*::f/aws_oidc/assume_role::no_flow::prod");
    expect(subs).toContain("*::*::f/aws_oidc/s3_csv_to_rds/forloop-*::prod");
  });

  test("--flow/--script replace the default set, --add-flow/--add-script extend it", async () => {
    const only = await policy("--flow", "f/aws_oidc/s3_csv_to_rds");
    expect(only.stdout).toContain("Admitted (as given):\n  f/aws_oidc/s3_csv_to_rds  flow    given with --flow\nAllowed");
    const more = await policy("--add-script", "f/aws_oidc/whoami");
    expect(more.stdout).toContain("f/aws_oidc/whoami                       script  given with --add-script");
    expect(more.stdout).toContain("f/aws_oidc/assume_role                  script  target of schedule f/aws_oidc/refresh_credentials");
  });

  test("the printed next steps name the template where it was written, and save a session before whoami reads it", async () => {
    const run = await policy();
    const next = run.stdout.split("Next:\n")[1].split("\n").map((l) => l.trim());
    expect(next[0]).toStartWith(`Deploy: aws cloudformation deploy --template-file ${join(out, "windmill-oidc.json")} `);
    expect(await Bun.file(join(out, "windmill-oidc.json")).exists()).toBe(true);
    const at = (text: string) => next.findIndex((l) => l.includes(text));
    expect(at("create the aws_oidc resource f/aws_oidc/aws_role")).toBeGreaterThan(0);
    expect(at("run f/aws_oidc/assume_role")).toBeGreaterThan(at("create the aws_oidc resource"));
    expect(at("run f/aws_oidc/whoami")).toBeGreaterThan(at("run f/aws_oidc/assume_role"));
    // A policy that admits no script saving a session on its own never sends the user to whoami.
    const flowOnly = await policy("--flow", "f/aws_oidc/s3_csv_to_rds");
    expect(flowOnly.stdout).not.toContain("whoami");
    expect(flowOnly.stdout).toContain("Run an admitted flow (f/aws_oidc/s3_csv_to_rds) with aws_oidc = $res:f/aws_oidc/aws_role");
  });

  test("the default output folder aws-setup/ is ignored by git", async () => {
    const proc = Bun.spawn(["git", "check-ignore", "-q", "aws-setup/trust-policy.json"], { cwd: REPO_ROOT });
    expect(await proc.exited).toBe(0);
  });

  // f/aws_oidc/trust_policy runs in a workspace and cannot read the repo: it carries the list.
  test("the list the trust_policy script carries equals what the repo ships", async () => {
    expect(SHIPPED_RUNNABLES).toEqual(await readShippedRunnables(REPO_ROOT));
  });
});
