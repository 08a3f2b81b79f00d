// The credentials resource under concurrency, and the provider's refresh rules, run
// in-process as a job would (real windmill-client and STS client against the stand-ins).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import wmill from "windmill-client";
import { assumeRoleAndSave } from "../../f/aws_oidc/lib/assumeRoleAndSave.ts";
import { awsClientConfig, windmillCredentialsProvider } from "../../f/aws_oidc/lib/credentialsProvider.ts";
import { loadCredentialsResource } from "../../f/aws_oidc/lib/credentialsResource.ts";
import type { MintParams, SessionCredentials } from "../../f/aws_oidc/lib/assumeRole.ts";
import { findLeaks } from "../helpers/leaks.ts";
import { DEMO_ROLE_ARN, REGION, startStack, type Stack } from "../helpers/testStack.ts";
import { auditLeaksThenClose } from "../helpers/leaks.ts";

let stack: Stack;
const quiet = () => {};
beforeAll(async () => {
  stack = await startStack();
  stack.actAsJob("f/aws_oidc/credentials_test");
});
afterAll(async () => {
  await stack.runScript("f/aws_oidc/assume_role", { role_arn: DEMO_ROLE_ARN, region: REGION });
  await auditLeaksThenClose(stack);
});

const MINT: MintParams = { roleArn: DEMO_ROLE_ARN, region: REGION, audience: "sts.amazonaws.com", sessionName: "provider-test", durationSeconds: 3600 };
const stsCalls = async () => (await stack.stsStats()).calls.AssumeRoleWithWebIdentity ?? 0;

async function expectConsistent(path: string): Promise<string> {
  const value = (await wmill.getResource(path)) as Record<string, string>;
  const session = await stack.stsSession(value.awsAccessKeyId);
  expect(session).toBeDefined();
  expect(value.awsSecretAccessKey).toBe(session!.secretAccessKey);
  expect(value.awsSessionToken).toBe(session!.sessionToken);
  return value.awsAccessKeyId;
}

describe("concurrent saves to one resource", () => {
  test("20 concurrent refreshes never leave a torn resource, and every read is usable", async () => {
    const path = "f/aws_oidc/creds_torn";
    await assumeRoleAndSave({ roleArn: DEMO_ROLE_ARN, region: REGION, saveTo: path }, quiet);
    let writing = true;
    const seen = new Set<string>();
    const reader = (async () => {
      let reads = 0;
      while (writing || reads < 5) {
        seen.add(await expectConsistent(path));
        reads++;
      }
      return reads;
    })();
    const writers = Array.from({ length: 20 }, () => assumeRoleAndSave({ roleArn: DEMO_ROLE_ARN, region: REGION, saveTo: path, force: true }, quiet));
    const results = await Promise.all(writers);
    writing = false;
    const reads = await reader;
    expect(reads).toBeGreaterThan(5);
    expect(results.every((r) => r.sts_calls === 1)).toBe(true);
    // The resource ends on one of the written sessions, whole.
    const final = await expectConsistent(path);
    expect(results.map((r) => r.access_key_id)).toContain(`${final.slice(0, 4)}…${final.slice(-4)}`);
    expect(seen.size).toBeGreaterThan(1);
  });

  test("10 concurrent first saves to a new path all succeed and leave one consistent resource", async () => {
    const path = "f/aws_oidc/creds_first_race";
    const saves = Array.from({ length: 10 }, () => assumeRoleAndSave({ roleArn: DEMO_ROLE_ARN, region: REGION, saveTo: path }, quiet));
    const results = await Promise.allSettled(saves);
    expect(results.filter((r) => r.status === "rejected")).toEqual([]);
    await expectConsistent(path);
  });

  test("generations nothing points to are deleted once past the grace period", async () => {
    const path = "f/aws_oidc/creds_gc";
    const workspace = stack.windmill.workspace;
    const stale = [`${path}__secret_access_key__g1000_abc123`, `${path}__session_token__g1000_abc123`];
    for (const p of stale) await wmill.setVariable(p, "old-generation", true);
    await assumeRoleAndSave({ roleArn: DEMO_ROLE_ARN, region: REGION, saveTo: path }, quiet);
    const left = (await wmill.VariableService.listVariable({ workspace, pathStart: `${path}__` })).map((v) => v.path);
    expect(left).toHaveLength(2);
    for (const p of stale) expect(left).not.toContain(p);
    await expectConsistent(path);
  });
});

describe("credentials provider", () => {
  function expiringIn(ms: number): SessionCredentials {
    return {
      accessKeyId: "ASIAEXPIRINGSOON0000", secretAccessKey: "x".repeat(40), sessionToken: "y".repeat(100),
      expiration: new Date(Date.now() + ms), roleArn: DEMO_ROLE_ARN, assumedRoleArn: DEMO_ROLE_ARN, accountId: "123456789012", region: REGION,
    };
  }

  test("uses credentials in hand while more than 5 minutes are left", async () => {
    const before = await stsCalls();
    const provider = windmillCredentialsProvider({ mint: MINT, initial: expiringIn(6 * 60 * 1000) }, quiet);
    expect((await provider()).accessKeyId).toBe("ASIAEXPIRINGSOON0000");
    expect(await stsCalls()).toBe(before);
  });

  test("mints once, with a fresh ID token, when within 5 minutes of expiry, however many callers", async () => {
    const before = await stsCalls();
    const tokensBefore = stack.windmill.issuedIdTokens.length;
    const provider = windmillCredentialsProvider({ mint: MINT, initial: expiringIn(4 * 60 * 1000) }, quiet);
    const all = await Promise.all(Array.from({ length: 10 }, () => provider()));
    expect(new Set(all.map((c) => c.accessKeyId)).size).toBe(1);
    expect(all[0].accessKeyId).not.toBe("ASIAEXPIRINGSOON0000");
    expect(await stsCalls()).toBe(before + 1);
    expect(stack.windmill.issuedIdTokens.length).toBe(tokensBefore + 1);
    await provider();
    expect(await stsCalls()).toBe(before + 1);
  });

  test("every mint asks Windmill for a new ID token (never a fixed one)", async () => {
    const tokensBefore = stack.windmill.issuedIdTokens.length;
    const provider = windmillCredentialsProvider({ mint: MINT, initial: expiringIn(0) }, quiet);
    await provider();
    const second = windmillCredentialsProvider({ mint: MINT, initial: expiringIn(0) }, quiet);
    await second();
    // Two mints, two requests to Windmill's token endpoint: nothing held a token across them.
    expect(stack.windmill.issuedIdTokens.length - tokensBefore).toBe(2);
  });

  test("a refresh is saved back to the resource, and a step that finds it refreshed skips STS", async () => {
    const path = "f/aws_oidc/creds_refresh";
    await assumeRoleAndSave({ roleArn: DEMO_ROLE_ARN, region: REGION, saveTo: path }, quiet);
    const saved = await loadCredentialsResource(path);
    const before = await stsCalls();
    const stepA = windmillCredentialsProvider({ mint: saved.mint, initial: expiringIn(60 * 1000), resourcePath: path }, quiet);
    // The saved session is still fresh: it is reused, no STS call.
    expect((await stepA()).accessKeyId).toBe(saved.awsAccessKeyId);
    expect(await stsCalls()).toBe(before);

    // Make the saved one near expiry too: the next refresh mints and saves back.
    const raw = await wmill.ResourceService.getResourceValue({ workspace: stack.windmill.workspace, path });
    await wmill.setResource({ ...(raw as object), expiration: new Date(Date.now() + 60 * 1000).toISOString() }, path);
    const stepB = windmillCredentialsProvider({ mint: saved.mint, initial: expiringIn(60 * 1000), resourcePath: path }, quiet);
    const fresh = await stepB();
    expect(await stsCalls()).toBe(before + 1);
    expect((await loadCredentialsResource(path)).awsAccessKeyId).toBe(fresh.accessKeyId);
  });

  test("clients of one job share one provider per resource", async () => {
    const path = "f/aws_oidc/creds_shared";
    await assumeRoleAndSave({ roleArn: DEMO_ROLE_ARN, region: REGION, saveTo: path }, quiet);
    const a = await awsClientConfig(path, quiet);
    const b = await awsClientConfig(`$res:${path}`, quiet);
    const c = await awsClientConfig(await loadCredentialsResource(path), quiet);
    expect(a.credentials).toBe(b.credentials);
    expect(a.credentials).toBe(c.credentials);
    expect(a.region).toBe(REGION);
  });

  test("a resource of another shape is refused with the fix", async () => {
    await expect(awsClientConfig({ region: "us-east-1" } as never, quiet)).rejects.toThrow(/not an aws_sts_credentials resource \(missing awsAccessKeyId/);
    await expect(awsClientConfig("f/aws_oidc/does_not_exist", quiet)).rejects.toThrow(/no resource at f\/aws_oidc\/does_not_exist.*Run f\/aws_oidc\/assume_role/s);
  });
});

test("the leak audit catches a secret in a job's logs", () => {
  const jobs = [{ id: "j1", path: "f/x", args: {}, success: true, result: { ok: 1 }, logs: "token=abcdefghijklmnopqrstuvwxyz", progress: null, startedAt: "", durationMs: 0 }];
  expect(findLeaks(jobs, new Map([["abcdefghijklmnopqrstuvwxyz", "session token"]]))).toEqual([{ jobId: "j1", path: "f/x", kind: "session token" }]);
  expect(findLeaks(jobs, new Map([["not-there-at-all-0000", "session token"]]))).toEqual([]);
  // Only a presigned URL's own token parameter is exempt.
  const presigned = [{ ...jobs[0], logs: "https://s3/x?X-Amz-Security-Token=abcdefghijklmnopqrstuvwxyz&X-Amz-Signature=1" }];
  expect(findLeaks(presigned, new Map([["abcdefghijklmnopqrstuvwxyz", "session token"]]))).toEqual([]);
});
