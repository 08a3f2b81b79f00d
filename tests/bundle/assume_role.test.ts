// assume_role and whoami end to end: Windmill job runner -> windmill-client -> Windmill
// OIDC issuer -> STS stand-in (JWT checked through the JWKS, trust policy evaluated).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { decodeJwt } from "jose";
import wmill from "windmill-client";
import { ID_TOKEN_LIFETIME_SECONDS } from "../../f/aws_oidc/lib/idToken.ts";
import { startStack, trustPolicy, ACCOUNT_ID, DEMO_ROLE_ARN, REGION, type Stack } from "../helpers/testStack.ts";
import { auditLeaksThenClose } from "../helpers/leaks.ts";

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await auditLeaksThenClose(stack);
});

type JobError = { error: { name: string; message: string } };
const errorOf = (result: unknown) => (result as JobError).error;

async function assumeRole(args: Record<string, unknown>) {
  return stack.runScript("f/aws_oidc/assume_role", { role_arn: DEMO_ROLE_ARN, region: REGION, ...args });
}

describe("assume_role", () => {
  test("saves a typed resource whose secrets live in secret variables", async () => {
    const asked = Date.now();
    const { status, result } = await assumeRole({ save_to: "f/aws_oidc/creds_happy" });
    expect(status).toBe(200);
    expect(result).toMatchObject({
      resource: "f/aws_oidc/creds_happy",
      resource_ref: "$res:f/aws_oidc/creds_happy",
      reused_saved_session: false,
      role_arn: DEMO_ROLE_ARN,
      assumed_role_arn: expect.stringMatching(/^arn:aws:sts::123456789012:assumed-role\/windmill-demo\/wm-f\.aws_oidc\.assume_role-/),
      account: ACCOUNT_ID,
      region: REGION,
      access_key_id: expect.stringMatching(/^ASIA…[A-Z0-9]{4}$/),
      sts_calls: 1,
    });
    // The default 1h, counted from no earlier than the second the job was asked for (STS keeps whole seconds).
    expect(new Date(result.expiration).getTime()).toBeGreaterThanOrEqual(Math.floor(asked / 1000) * 1000 + 3600 * 1000);
    expect(new Date(result.expiration).getTime()).toBeLessThanOrEqual(Date.now() + 3600 * 1000);

    stack.actAsJob("f/aws_oidc/reader");
    const raw = await wmill.ResourceService.getResource({ workspace: stack.windmill.workspace, path: "f/aws_oidc/creds_happy" });
    expect(raw.resource_type).toBe("aws_sts_credentials");
    const value = raw.value as Record<string, string>;
    expect(value.awsSecretAccessKey).toMatch(/^\$var:f\/aws_oidc\/creds_happy__secret_access_key__g\d+_/);
    expect(value.awsSessionToken).toMatch(/^\$var:f\/aws_oidc\/creds_happy__session_token__g\d+_/);
    const variable = await wmill.VariableService.getVariable({ workspace: stack.windmill.workspace, path: value.awsSecretAccessKey.slice(5) });
    expect(variable.is_secret).toBe(true);

    // Another script reads it back with the secrets resolved, and they are STS's.
    const resolved = (await wmill.getResource("f/aws_oidc/creds_happy")) as Record<string, string>;
    const session = await stack.stsSession(resolved.awsAccessKeyId);
    expect(resolved.awsSecretAccessKey).toBe(session!.secretAccessKey);
    expect(resolved.awsSessionToken).toBe(session!.sessionToken);
  });

  test("asks Windmill for a short-lived ID token: the one sent to STS lives at most ID_TOKEN_LIFETIME_SECONDS", async () => {
    const before = stack.windmill.issuedIdTokens.length;
    const { status } = await assumeRole({ save_to: "f/aws_oidc/creds_short_token" });
    expect(status).toBe(200);
    const issued = stack.windmill.issuedIdTokens.slice(before);
    expect(issued.length).toBe(1);
    const { iat, exp } = decodeJwt(issued[0]);
    // Windmill's default would be 48 h: a leaked token must not be replayable for days.
    expect(exp! - iat!).toBe(ID_TOKEN_LIFETIME_SECONDS);
    expect(ID_TOKEN_LIFETIME_SECONDS).toBeLessThanOrEqual(300);
  });

  test("takes the role from an aws_oidc resource and whoami reads the saved one", async () => {
    stack.actAsJob(null);
    await wmill.ResourceService.createResource({
      workspace: stack.windmill.workspace,
      requestBody: { path: "f/aws_oidc/demo_role", value: { roleArn: DEMO_ROLE_ARN, region: REGION }, resource_type: "aws_oidc" },
    });
    const saved = await stack.runScript("f/aws_oidc/assume_role", { aws_oidc: "$res:f/aws_oidc/demo_role", save_to: "f/aws_oidc/creds_from_res" });
    expect(saved.status).toBe(200);

    const { status, result } = await stack.runScript("f/aws_oidc/whoami", { credentials: "$res:f/aws_oidc/creds_from_res" });
    expect(status).toBe(200);
    expect(result).toMatchObject({
      account: ACCOUNT_ID,
      arn: saved.result.assumed_role_arn,
      access_key_id: saved.result.access_key_id,
      id_token_claims: {
        iss: stack.windmill.issuer,
        aud: ["sts.amazonaws.com"],
        sub: `alice@example.com::f/aws_oidc/whoami::no_flow::${stack.windmill.workspace}`,
        email: "alice@example.com",
        path: "f/aws_oidc/whoami",
        flow_path: null,
      },
    });
  });

  test("reuses a saved session with enough time left, and mints again when forced", async () => {
    const first = await assumeRole({ save_to: "f/aws_oidc/creds_reuse" });
    const second = await assumeRole({ save_to: "f/aws_oidc/creds_reuse" });
    expect(second.result).toMatchObject({ reused_saved_session: true, sts_calls: 0, access_key_id: first.result.access_key_id });
    const forced = await assumeRole({ save_to: "f/aws_oidc/creds_reuse", force: true });
    expect(forced.result).toMatchObject({ reused_saved_session: false, sts_calls: 1 });
    expect(forced.result.access_key_id).not.toBe(first.result.access_key_id);
    // A session shorter than min_remaining is not reused.
    const short = await assumeRole({ save_to: "f/aws_oidc/creds_short", duration: "15m" });
    const again = await assumeRole({ save_to: "f/aws_oidc/creds_short", duration: "15m", min_remaining: "20m" });
    expect(again.result.reused_saved_session).toBe(false);
    expect(again.result.access_key_id).not.toBe(short.result.access_key_id);
  });

  test("chains into a second role with an external id, capped at one hour", async () => {
    const chained = await stack.addRole({
      roleName: "chained-reader",
      maxSessionDuration: 43_200,
      assumeRolePolicyDocument: {
        Version: "2012-10-17",
        Statement: [{
          Effect: "Allow", Action: "sts:AssumeRole", Principal: { AWS: DEMO_ROLE_ARN },
          Condition: { StringEquals: { "sts:ExternalId": "ext-42" } },
        }],
      },
      permissionPolicies: [{ Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "s3:GetObject", Resource: "*" }] }],
    });
    const { status, result } = await assumeRole({ save_to: "f/aws_oidc/creds_chained", chain_role_arn: chained, chain_external_id: "ext-42", duration: "4h" });
    expect(status).toBe(200);
    expect(result.assumed_role_arn).toContain(":assumed-role/chained-reader/");
    expect(result.role_arn).toBe(chained);
    expect(result.sts_calls).toBe(2);
    const left = new Date(result.expiration).getTime() - Date.now();
    expect(left).toBeLessThanOrEqual(3600 * 1000);

    const wrongId = await assumeRole({ save_to: "f/aws_oidc/creds_chained2", chain_role_arn: chained, chain_external_id: "nope" });
    expect(wrongId.status).toBe(422);
    expect(errorOf(wrongId.result).message).toContain("AssumeRole");
    expect(errorOf(wrongId.result).message).toContain("sts:ExternalId must match chain_external_id");
  });

  test("a chained role whose trust policy names another role: the fix names the first role as the principal, and when the account form needs sts:AssumeRole", async () => {
    const elsewhere = await stack.addRole({
      roleName: "chained-for-someone-else",
      maxSessionDuration: 3600,
      assumeRolePolicyDocument: { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "sts:AssumeRole", Principal: { AWS: `arn:aws:iam::${ACCOUNT_ID}:role/other` } }] },
      permissionPolicies: [],
    });
    const { status, result } = await assumeRole({ save_to: "f/aws_oidc/creds_chain_refused", chain_role_arn: elsewhere });
    expect(status).toBe(422);
    const { message } = errorOf(result);
    expect(message).toContain("AccessDenied");
    expect(message).toContain(`Fix: the trust policy of ${elsewhere} must allow sts:AssumeRole for Principal {"AWS": "${DEMO_ROLE_ARN}"}`);
    expect(message).toContain(`In one account that is enough; if the trust policy names the account (arn:aws:iam::${ACCOUNT_ID}:root) instead, the first role's permission policy must allow sts:AssumeRole on ${elsewhere} too.`);
  });
});

describe("refusals are reported with what to fix", () => {
  test("a sub the trust policy does not allow: AccessDenied beside the token's claims", async () => {
    const narrow = await stack.addRole({
      roleName: "only-etl-flow",
      maxSessionDuration: 3600,
      assumeRolePolicyDocument: trustPolicy(stack.provider, ACCOUNT_ID, `*::*::f/etl/nightly::${stack.windmill.workspace}`),
      permissionPolicies: [],
    });
    const { status, result } = await assumeRole({ role_arn: narrow, save_to: "f/aws_oidc/creds_denied" });
    expect(status).toBe(422);
    const { message } = errorOf(result);
    expect(message).toContain("AccessDenied");
    expect(message).toContain("Not authorized to perform sts:AssumeRoleWithWebIdentity");
    expect(message).toContain(`"sub":"alice@example.com::f/aws_oidc/assume_role::no_flow::${stack.windmill.workspace}"`);
    expect(message).toContain(`${stack.provider}:sub`);
  });

  test("a wrong audience: InvalidIdentityToken naming the provider's audiences", async () => {
    const { status, result } = await assumeRole({ audience: "not-sts", save_to: "f/aws_oidc/creds_aud" });
    expect(status).toBe(422);
    const { message } = errorOf(result);
    expect(message).toContain("InvalidIdentityToken");
    expect(message).toContain("audience");
    expect(message).toContain('["not-sts"]');
  });

  const issuerFaults: [string, () => void, string, string][] = [
    ["a token signed with a key not in the JWKS", () => (stack.windmill.faults.signWithUnknownKey = true), "InvalidIdentityToken", "OIDC provider URL must be exactly"],
    ["an expired token (Windmill's clock 49 h behind)", () => (stack.windmill.faults.clockSkewSeconds = -49 * 3600), "ExpiredToken", "check NTP"],
    ["a token from a foreign issuer", () => (stack.windmill.faults.issuerOverride = "https://evil.example.com/api/oidc/"), "InvalidIdentityToken", "evil.example.com"],
  ];
  for (const [name, breakIssuer, code, hint] of issuerFaults) {
    test(name, async () => {
      breakIssuer();
      try {
        const { status, result } = await assumeRole({ save_to: "f/aws_oidc/creds_fault" });
        expect(status).toBe(422);
        expect(errorOf(result).message).toContain(code);
        expect(errorOf(result).message).toContain(hint);
      } finally {
        Object.assign(stack.windmill.faults, { signWithUnknownKey: false, clockSkewSeconds: 0, issuerOverride: null });
      }
    });
  }

  test("a duration above the role's MaxSessionDuration", async () => {
    const short = await stack.addRole({
      roleName: "one-hour",
      maxSessionDuration: 3600,
      assumeRolePolicyDocument: trustPolicy(stack.provider, ACCOUNT_ID, `*::*::*::${stack.windmill.workspace}`),
      permissionPolicies: [],
    });
    const { result } = await assumeRole({ role_arn: short, duration: "2h", save_to: "f/aws_oidc/creds_long" });
    expect(errorOf(result).message).toContain("ValidationError");
    expect(errorOf(result).message).toContain("MaxSessionDuration");
    expect(errorOf(result).message).toContain("Maximum session duration");
  });

  test("a session policy STS finds malformed", async () => {
    const policy = JSON.stringify({ Version: "2012-10-17", Statement: [{ Effect: "Perhaps", Action: "s3:*", Resource: "*" }] });
    const { result } = await assumeRole({ session_policy: policy, save_to: "f/aws_oidc/creds_policy" });
    expect(errorOf(result).message).toContain("MalformedPolicyDocument");
    expect(errorOf(result).message).toContain("session_policy");
  });

  test("bad input fails before any STS call, naming the input", async () => {
    const before = (await stack.stsStats()).calls.AssumeRoleWithWebIdentity ?? 0;
    const { status, result } = await assumeRole({ region: "mars-1", save_to: "f/aws_oidc/creds_bad" });
    expect(status).toBe(422);
    expect(errorOf(result)).toMatchObject({ name: "InputError", message: expect.stringContaining('Invalid input "region"') });
    expect((await stack.stsStats()).calls.AssumeRoleWithWebIdentity ?? 0).toBe(before);
  });

  test("a save_to holding another type of resource is refused", async () => {
    const { result } = await assumeRole({ save_to: "f/aws_oidc/demo_role" });
    expect(errorOf(result).message).toContain('Invalid input "save_to": f/aws_oidc/demo_role holds a aws_oidc resource');
  });
});

describe("transient STS errors", () => {
  test("throttling and IdP hiccups are retried, with the retries in the logs", async () => {
    await stack.stsFaults({ action: "AssumeRoleWithWebIdentity", code: "Throttling", count: 1 });
    await stack.stsFaults({ action: "AssumeRoleWithWebIdentity", code: "IDPCommunicationError", count: 1 });
    const { status, result } = await assumeRole({ save_to: "f/aws_oidc/creds_retry" });
    expect(status).toBe(200);
    expect(result.sts_calls).toBe(3);
    const job = stack.windmill.jobs.at(-1)!;
    expect(job.logs).toMatch(/transient (Throttling|IDPCommunicationError); retrying in \d+ ms \(attempt 2 of 4\)/);
  });

  test("a fault that outlasts the retry budget fails with the code", async () => {
    await stack.stsFaults({ action: "AssumeRoleWithWebIdentity", code: "Throttling", count: 10 });
    try {
      const { status, result } = await assumeRole({ save_to: "f/aws_oidc/creds_retry2" });
      expect(status).toBe(422);
      expect(errorOf(result).message).toContain("failed with Throttling");
    } finally {
      await fetch(`${stack.sts.url}/_local/faults`, { method: "DELETE" });
    }
  });
});
