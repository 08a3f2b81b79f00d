// The STS stand-in driven through the real @aws-sdk/client-sts (awsQuery protocol), against
// a tiny OIDC issuer started here. Every refusal is checked for the error name the SDK
// parses and for the part of AWS's message that tells a person what went wrong.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import {
  AssumeRoleCommand,
  AssumeRoleWithWebIdentityCommand,
  GetCallerIdentityCommand,
  STSClient,
  type AssumeRoleWithWebIdentityCommandInput,
  type Credentials,
} from "@aws-sdk/client-sts";
import { Hash } from "@smithy/hash-node";
import { SignatureV4 } from "@smithy/signature-v4";
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from "jose";
import type { PolicyDocument, PolicyStatement } from "../../local/sts/iamPolicy.ts";
import type { StsConfig } from "../../local/sts/config.ts";
import { startSts, type StsStandIn } from "../../local/sts/server.ts";

const ACCOUNT_ID = "123456789012";
const REGION = "us-east-1";
const AUDIENCE = "sts.amazonaws.com";
const WORKSPACE = "demo";
const SUB = `alice@example.com::f/aws_oidc/assume_role::no_flow::${WORKSPACE}`;
const DEMO_ROLE_ARN = `arn:aws:iam::${ACCOUNT_ID}:role/windmill-demo`;
const CHAINED_ROLE_ARN = `arn:aws:iam::${ACCOUNT_ID}:role/chained-reader`;
const READ_ONLY_ARN = `arn:aws:iam::${ACCOUNT_ID}:policy/read-only-s3`;

// ---------------------------------------------------------------------------------------
// Fixtures: an OIDC issuer shaped like Windmill's, and the stand-in's config file

interface Issuer {
  base: string;
  /** `<base>/api/oidc/`: Windmill's issuer, trailing slash included. */
  url: string;
  /** An issuer on the same host whose JWKS URL answers 404. */
  brokenUrl: string;
  sign(claims?: Record<string, unknown>, key?: CryptoKey): Promise<string>;
  close(): Promise<void>;
}

async function startIssuer(): Promise<Issuer> {
  const { publicKey, privateKey } = await generateKeyPair("RS256");
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: "windmill", alg: "RS256", use: "sig" };
  let base = "";
  const server: Server = createServer((req, res) => {
    const json = (body: unknown) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body));
    if (req.url === "/api/oidc/.well-known/openid-configuration") return json({ issuer: `${base}/api/oidc/`, jwks_uri: `${base}/api/oidc/jwks` });
    if (req.url === "/api/oidc/jwks") return json({ keys: [jwk] });
    if (req.url === "/broken/.well-known/openid-configuration") return json({ issuer: `${base}/broken/`, jwks_uri: `${base}/broken/jwks` });
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const url = `${base}/api/oidc/`;
  return {
    base,
    url,
    brokenUrl: `${base}/broken/`,
    async sign(claims = {}, key = privateKey) {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ iss: url, aud: [AUDIENCE], sub: SUB, email: "alice@example.com", iat: now, exp: now + 3600, ...claims })
        .setProtectedHeader({ alg: "RS256", kid: "windmill", typ: "JWT" })
        .sign(key);
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A port nothing listens on: an identity provider STS cannot reach. */
async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function webIdentityTrust(providerKey: string, sub: string): PolicyDocument & { Statement: PolicyStatement[] } {
  return {
    Version: "2012-10-17",
    Statement: [{
      Effect: "Allow",
      Action: "sts:AssumeRoleWithWebIdentity",
      Principal: { Federated: `arn:aws:iam::${ACCOUNT_ID}:oidc-provider/${providerKey}` },
      Condition: { StringEquals: { [`${providerKey}:aud`]: AUDIENCE }, StringLike: { [`${providerKey}:sub`]: sub } },
    }],
  };
}

function buildConfig(issuer: Issuer, unreachableUrl: string): StsConfig {
  const key = issuer.url.replace(/^http:\/\//, "");
  const anyProviderTrust: PolicyDocument = {
    Version: "2012-10-17",
    Statement: [{
      Effect: "Allow",
      Action: "sts:AssumeRoleWithWebIdentity",
      Principal: { Federated: [issuer.brokenUrl, unreachableUrl].map((u) => `arn:aws:iam::${ACCOUNT_ID}:oidc-provider/${u.replace(/^http:\/\//, "")}`) },
    }],
  };
  return {
    accountId: ACCOUNT_ID,
    oidcProviders: [
      { url: issuer.url, clientIdList: [AUDIENCE] },
      { url: issuer.brokenUrl, clientIdList: [AUDIENCE] },
      { url: unreachableUrl, clientIdList: [AUDIENCE] },
    ],
    roles: [
      {
        roleName: "windmill-demo",
        maxSessionDuration: 7200,
        assumeRolePolicyDocument: webIdentityTrust(key, `*::f/aws_oidc/*::*::${WORKSPACE}`),
        permissionPolicies: [{
          Version: "2012-10-17",
          Statement: [
            { Sid: "Bucket", Effect: "Allow", Action: ["s3:Get*", "s3:List*", "s3:PutObject"], Resource: ["arn:aws:s3:::demo-bucket", "arn:aws:s3:::demo-bucket/*"] },
            { Sid: "NoSecrets", Effect: "Deny", Action: "s3:*", Resource: "arn:aws:s3:::demo-bucket/secret/*" },
            { Sid: "Chain", Effect: "Allow", Action: "sts:AssumeRole", Resource: `arn:aws:iam::${ACCOUNT_ID}:role/chained-*` },
            { Sid: "Db", Effect: "Allow", Action: "rds-db:connect", Resource: `arn:aws:rds-db:${REGION}:${ACCOUNT_ID}:dbuser:db-ABC/app_?ser` },
          ],
        }, {
          Version: "2012-10-17",
          Statement: [{ Sid: "EverythingElse", Effect: "Allow", NotAction: ["s3:*", "sts:*", "iam:*", "rds-db:*"], Resource: "*" }],
        }],
      },
      {
        roleName: "chained-reader",
        maxSessionDuration: 43_200,
        assumeRolePolicyDocument: {
          Version: "2012-10-17",
          Statement: [{ Effect: "Allow", Action: "sts:AssumeRole", Principal: { AWS: DEMO_ROLE_ARN }, Condition: { StringEquals: { "sts:ExternalId": "ext-42" } } }],
        },
        permissionPolicies: [{ Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "s3:GetObject", Resource: "*" }] }],
      },
      {
        roleName: "chained-by-account",
        maxSessionDuration: 3600,
        assumeRolePolicyDocument: {
          Version: "2012-10-17",
          Statement: [{ Effect: "Allow", Action: "sts:AssumeRole", Principal: { AWS: `arn:aws:iam::${ACCOUNT_ID}:root` } }],
        },
        permissionPolicies: [],
      },
      {
        // Its trust policy lets the demo role in, but the demo role holds no sts:AssumeRole on it.
        roleName: "not-granted",
        maxSessionDuration: 3600,
        assumeRolePolicyDocument: { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "sts:AssumeRole", Principal: { AWS: DEMO_ROLE_ARN } }] },
        permissionPolicies: [],
      },
      {
        roleName: "deny-wins",
        maxSessionDuration: 3600,
        assumeRolePolicyDocument: {
          Version: "2012-10-17",
          Statement: [
            ...webIdentityTrust(key, "*").Statement,
            { Effect: "Deny", Action: "sts:*", Principal: "*", Condition: { StringLike: { [`${key}:sub`]: "*::f/aws_oidc/assume_role::*" } } },
          ],
        },
        permissionPolicies: [],
      },
      { roleName: "other-providers", maxSessionDuration: 3600, assumeRolePolicyDocument: anyProviderTrust, permissionPolicies: [] },
    ],
    managedPolicies: [
      { arn: READ_ONLY_ARN, document: { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: ["s3:Get*", "s3:List*"], Resource: "*" }] } },
    ],
  };
}

let issuer: Issuer;
let sts: StsStandIn;
let dir: string;
let configPath: string;
let config: StsConfig;
let unreachableUrl: string;

beforeAll(async () => {
  issuer = await startIssuer();
  unreachableUrl = `http://127.0.0.1:${await deadPort()}/api/oidc/`;
  dir = await mkdtemp(join(tmpdir(), "sts-standin-"));
  configPath = join(dir, "sts.json");
  config = buildConfig(issuer, unreachableUrl);
  await writeFile(configPath, JSON.stringify(config, null, 2));
  sts = await startSts({ configPath });
});

afterAll(async () => {
  await sts.close();
  await issuer.close();
  await rm(dir, { recursive: true, force: true });
});

beforeEach(async () => {
  await fetch(`${sts.url}/_local/faults`, { method: "DELETE" });
});

// ---------------------------------------------------------------------------------------
// Helpers

/** One attempt per call, so a refused call is one STS call and faults are consumed one by one. */
function client(credentials?: Credentials): STSClient {
  return new STSClient({
    region: REGION,
    endpoint: sts.url,
    maxAttempts: 1,
    ...(credentials && {
      credentials: { accessKeyId: credentials.AccessKeyId!, secretAccessKey: credentials.SecretAccessKey!, sessionToken: credentials.SessionToken! },
    }),
  });
}

async function assumeWithToken(overrides: Partial<AssumeRoleWithWebIdentityCommandInput> = {}, token?: string) {
  return client().send(new AssumeRoleWithWebIdentityCommand({
    RoleArn: DEMO_ROLE_ARN,
    RoleSessionName: "wm-test",
    WebIdentityToken: token ?? (await issuer.sign()),
    ...overrides,
  }));
}

async function demoCredentials(overrides: Partial<AssumeRoleWithWebIdentityCommandInput> = {}): Promise<Credentials> {
  return (await assumeWithToken(overrides)).Credentials!;
}

interface SdkError {
  name: string;
  message: string;
  $fault?: string;
  $metadata?: { httpStatusCode?: number };
}

async function refusal(promise: Promise<unknown>): Promise<SdkError> {
  const outcome = await promise.then(() => undefined, (err: unknown) => err as SdkError);
  if (!outcome) throw new Error("expected STS to refuse the call, but it succeeded");
  return outcome;
}

async function expectRefused(promise: Promise<unknown>, name: string, message: string): Promise<SdkError> {
  const err = await refusal(promise);
  expect(err.name).toBe(name);
  expect(err.message).toContain(message);
  return err;
}

async function localJson(path: string, init?: { method?: string; body?: unknown }): Promise<{ status: number; body: any }> {
  const res = await fetch(`${sts.url}/_local/${path}`, {
    method: init?.method ?? (init?.body === undefined ? "GET" : "POST"),
    headers: { "content-type": "application/json" },
    body: init?.body === undefined ? undefined : JSON.stringify(init.body),
  });
  return { status: res.status, body: await res.json() };
}

const authorize = async (accessKeyId: string, action: string, resource: string, context?: Record<string, string | string[]>) =>
  (await localJson("authorize", { body: { accessKeyId, action, resource, context } })).body as { allowed: boolean; reason: string };

/** Signs `signedBody` with the SDK's signer, then sends `sentBody`: what a tampering proxy or a skewed client would send. */
async function rawSignedCall(c: Credentials, signedBody: string, opts: { sentBody?: string; signingDate?: Date; service?: string } = {}) {
  const url = new URL(sts.url);
  const signer = new SignatureV4({
    service: opts.service ?? "sts",
    region: REGION,
    credentials: { accessKeyId: c.AccessKeyId!, secretAccessKey: c.SecretAccessKey!, sessionToken: c.SessionToken! },
    sha256: Hash.bind(null, "sha256"),
    // Without x-amz-content-sha256 only the signature itself can catch a changed body.
    applyChecksum: false,
  });
  const signed = await signer.sign({
    method: "POST", protocol: "http:", hostname: url.hostname, port: Number(url.port), path: "/", query: {},
    headers: { host: url.host, "content-type": "application/x-www-form-urlencoded" },
    body: signedBody,
  }, { signingDate: opts.signingDate });
  const res = await fetch(sts.url, { method: "POST", headers: signed.headers, body: opts.sentBody ?? signedBody });
  return { status: res.status, text: await res.text() };
}

const addFault = (body: Record<string, unknown>) => localJson("faults", { body });

async function writeConfig(next: StsConfig): Promise<void> {
  config = next;
  await writeFile(configPath, JSON.stringify(next, null, 2));
}

// ---------------------------------------------------------------------------------------
// AssumeRoleWithWebIdentity

describe("AssumeRoleWithWebIdentity", () => {
  test("exchanges a valid ID token for temporary credentials in AWS's response shape", async () => {
    const before = Date.now();
    const result = await assumeWithToken();
    const c = result.Credentials!;
    expect(c.AccessKeyId).toMatch(/^ASIA[A-Z0-9]{16}$/);
    expect(c.SecretAccessKey).toHaveLength(40);
    expect(c.SessionToken!.length).toBeGreaterThan(100);
    expect(c.Expiration).toBeInstanceOf(Date);
    expect(c.Expiration!.getTime()).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 + 3600_000);
    expect(c.Expiration!.getTime()).toBeLessThanOrEqual(Date.now() + 3600_000);
    expect(result.AssumedRoleUser).toEqual({
      Arn: `arn:aws:sts::${ACCOUNT_ID}:assumed-role/windmill-demo/wm-test`,
      AssumedRoleId: expect.stringMatching(/^AROA[A-Z0-9]{17}:wm-test$/),
    });
    expect(result.SubjectFromWebIdentityToken).toBe(SUB);
    expect(result.Audience).toBe(AUDIENCE);
    expect(result.Provider).toBe(`arn:aws:iam::${ACCOUNT_ID}:oidc-provider/${issuer.url.replace("http://", "")}`);
    expect(result.PackedPolicySize).toBeUndefined();

    const session = await localJson(`sessions/${c.AccessKeyId}`);
    expect(session.body).toMatchObject({
      accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken,
      roleArn: DEMO_ROLE_ARN, assumedRoleArn: result.AssumedRoleUser!.Arn, accountId: ACCOUNT_ID,
    });
    expect(new Date(session.body.expiration).getTime()).toBe(c.Expiration!.getTime());
    const secrets = (await localJson("secrets")).body;
    expect(secrets.secretAccessKeys).toContain(c.SecretAccessKey);
    expect(secrets.sessionTokens).toContain(c.SessionToken);
  });

  test("the role id is stable across sessions, as AWS's is", async () => {
    const [a, b] = await Promise.all([assumeWithToken({ RoleSessionName: "one" }), assumeWithToken({ RoleSessionName: "two" })]);
    expect(a.AssumedRoleUser!.AssumedRoleId!.split(":")[0]).toBe(b.AssumedRoleUser!.AssumedRoleId!.split(":")[0]);
    expect(a.Credentials!.AccessKeyId).not.toBe(b.Credentials!.AccessKeyId);
  });

  test("answers with the exact XML STS sends", async () => {
    const token = await issuer.sign();
    const form = new URLSearchParams({ Action: "AssumeRoleWithWebIdentity", Version: "2011-06-15", RoleArn: DEMO_ROLE_ARN, RoleSessionName: "raw", WebIdentityToken: token });
    const res = await fetch(sts.url, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: form });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/xml");
    const xml = await res.text();
    expect(xml).toStartWith('<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIA');
    expect(xml).toMatch(/<Expiration>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ<\/Expiration>/);
    expect(xml).toMatch(/<ResponseMetadata><RequestId>[0-9a-f-]{36}<\/RequestId><\/ResponseMetadata><\/AssumeRoleWithWebIdentityResponse>$/);

    const bad = await fetch(sts.url, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams({ Action: "AssumeRoleWithWebIdentity", Version: "2011-06-15", RoleArn: DEMO_ROLE_ARN, RoleSessionName: "a&<b>", WebIdentityToken: token }) });
    expect(bad.status).toBe(400);
    const error = await bad.text();
    expect(error).toMatch(/^<ErrorResponse xmlns="https:\/\/sts.amazonaws.com\/doc\/2011-06-15\/"><Error><Type>Sender<\/Type><Code>ValidationError<\/Code><Message>/);
    expect(error).toContain("Value &apos;a&amp;&lt;b&gt;&apos; at &apos;roleSessionName&apos;");
    expect(error).toMatch(/<RequestId>[0-9a-f-]{36}<\/RequestId><\/ErrorResponse>$/);
  });

  test("refuses an unknown action or API version the way STS does", async () => {
    const post = (form: Record<string, string>) =>
      fetch(sts.url, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams(form) });
    const unknown = await post({ Action: "GetSessionToken", Version: "2011-06-15" });
    expect(unknown.status).toBe(400);
    expect(await unknown.text()).toContain("<Code>InvalidAction</Code><Message>Could not find operation GetSessionToken for version 2011-06-15</Message>");
    expect(await (await post({ Action: "GetCallerIdentity" })).text()).toContain("for version NO_VERSION_SPECIFIED");
    expect(await (await post({})).text()).toContain("<Code>MissingAction</Code>");
  });

  test("a wrong audience is an InvalidIdentityToken", async () => {
    await expectRefused(assumeWithToken({}, await issuer.sign({ aud: ["not-sts"] })), "InvalidIdentityTokenException", "Incorrect token audience");
  });

  test("aud may also be a plain string", async () => {
    const result = await assumeWithToken({}, await issuer.sign({ aud: AUDIENCE }));
    expect(result.Audience).toBe(AUDIENCE);
  });

  test("a sub outside the trust policy's StringLike is AccessDenied", async () => {
    const token = await issuer.sign({ sub: `alice@example.com::u/alice/script::no_flow::${WORKSPACE}` });
    await expectRefused(assumeWithToken({}, token), "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity");
    const otherWorkspace = await issuer.sign({ sub: "alice@example.com::f/aws_oidc/assume_role::no_flow::prod" });
    await expectRefused(assumeWithToken({}, otherWorkspace), "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity");
  });

  test("an explicit Deny in the trust policy beats its Allow", async () => {
    await expectRefused(assumeWithToken({ RoleArn: `arn:aws:iam::${ACCOUNT_ID}:role/deny-wins` }), "AccessDenied", "Not authorized");
    const other = await issuer.sign({ sub: `alice@example.com::f/aws_oidc/other::no_flow::${WORKSPACE}` });
    expect((await assumeWithToken({ RoleArn: `arn:aws:iam::${ACCOUNT_ID}:role/deny-wins` }, other)).Credentials).toBeDefined();
  });

  test("a role that does not exist is refused exactly like one that does not trust you", async () => {
    await expectRefused(assumeWithToken({ RoleArn: `arn:aws:iam::${ACCOUNT_ID}:role/nope` }), "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity");
    await expectRefused(assumeWithToken({ RoleArn: "arn:aws:iam::999999999999:role/windmill-demo" }), "AccessDenied", "Not authorized");
    await expectRefused(assumeWithToken({ RoleArn: "arn:aws:s3:::not-a-role-at-all" }), "ValidationError", "Request ARN is invalid");
  });

  test("a token signed by a key outside the JWKS is an InvalidIdentityToken", async () => {
    const { privateKey } = await generateKeyPair("RS256");
    await expectRefused(assumeWithToken({}, await issuer.sign({}, privateKey)), "InvalidIdentityTokenException", "signature");
  });

  test("a token that is not a JWT is an InvalidIdentityToken", async () => {
    await expectRefused(assumeWithToken({}, "not.a.jwt"), "InvalidIdentityTokenException", "not a valid JWT");
  });

  test("a token whose iat or nbf lies beyond the 5-minute skew is an InvalidIdentityToken; within it, accepted", async () => {
    const now = Math.floor(Date.now() / 1000);
    await expectRefused(assumeWithToken({}, await issuer.sign({ iat: now + 600, exp: now + 1200 })), "InvalidIdentityTokenException", "iat");
    await expectRefused(assumeWithToken({}, await issuer.sign({ iat: now, nbf: now + 600, exp: now + 1200 })), "InvalidIdentityTokenException", "nbf");
    const slightlyAhead = await assumeWithToken({}, await issuer.sign({ iat: now + 60, nbf: now + 60, exp: now + 900 }));
    expect(slightlyAhead.Credentials?.AccessKeyId).toBeTruthy();
  });

  test("an expired token is an ExpiredTokenException giving both times", async () => {
    const exp = Math.floor(Date.now() / 1000) - 60;
    const err = await expectRefused(assumeWithToken({}, await issuer.sign({ iat: exp - 3600, exp })), "ExpiredTokenException", "Token expired: current date/time");
    expect(err.message).toContain(`must be before the expiration date/time ${exp}`);
  });

  test("a token from an issuer with no OIDC provider in the account is an InvalidIdentityToken", async () => {
    const token = await issuer.sign({ iss: "https://evil.example.com/api/oidc/" });
    await expectRefused(assumeWithToken({}, token), "InvalidIdentityTokenException", "No OpenIDConnect provider found in your account for https://evil.example.com/api/oidc/");
    // The issuer must match the provider URL exactly, trailing slash included.
    await expectRefused(assumeWithToken({}, await issuer.sign({ iss: issuer.url.slice(0, -1) })), "InvalidIdentityTokenException", "No OpenIDConnect provider found");
  });

  // AWS answers an issuer whose keys it cannot fetch with InvalidIdentityToken, not IDPCommunicationError.
  test("an identity provider STS cannot reach is an InvalidIdentityToken \"Couldn't retrieve verification key\"", async () => {
    const token = await issuer.sign({ iss: unreachableUrl });
    const err = await expectRefused(
      assumeWithToken({ RoleArn: `arn:aws:iam::${ACCOUNT_ID}:role/other-providers` }, token),
      "InvalidIdentityTokenException",
      "Couldn't retrieve verification key from your identity provider, please reference AssumeRoleWithWebIdentity documentation for requirements",
    );
    expect(err.$metadata?.httpStatusCode).toBe(400);
  });

  test("an identity provider whose JWKS is missing is an InvalidIdentityToken", async () => {
    const token = await issuer.sign({ iss: issuer.brokenUrl });
    await expectRefused(
      assumeWithToken({ RoleArn: `arn:aws:iam::${ACCOUNT_ID}:role/other-providers` }, token),
      "InvalidIdentityTokenException",
      "Couldn't retrieve verification key from your identity provider",
    );
  });

  test("RoleSessionName is held to AWS's length and character set", async () => {
    await expectRefused(assumeWithToken({ RoleSessionName: "bad name!" }), "ValidationError",
      "1 validation error detected: Value 'bad name!' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*");
    await expectRefused(assumeWithToken({ RoleSessionName: "a" }), "ValidationError", "Member must have length greater than or equal to 2");
    await expectRefused(assumeWithToken({ RoleSessionName: "x".repeat(65) }), "ValidationError", "Member must have length less than or equal to 64");
    const both = await expectRefused(assumeWithToken({ RoleSessionName: "a", DurationSeconds: 60 }), "ValidationError", "2 validation errors detected");
    expect(both.message).toContain("Value '60' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900");
    expect((await assumeWithToken({ RoleSessionName: "wm-f.aws_oidc.x=1,y@z+w_v" })).AssumedRoleUser!.Arn).toEndWith("/wm-f.aws_oidc.x=1,y@z+w_v");
  });

  test("a refused token is never echoed back in a message", async () => {
    const err = await expectRefused(assumeWithToken({}, "abc"), "ValidationError", "at 'webIdentityToken'");
    expect(err.message).toContain("*** Sensitive Data Redacted ***");
    expect(err.message).not.toContain("'abc'");
  });

  test("DurationSeconds must fit 900..43200 and the role's MaxSessionDuration", async () => {
    await expectRefused(assumeWithToken({ DurationSeconds: 10_800 }), "ValidationError", "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.");
    await expectRefused(assumeWithToken({ DurationSeconds: 50_000 }), "ValidationError", "Member must have value less than or equal to 43200");
    const before = Date.now();
    const ok = await assumeWithToken({ DurationSeconds: 7200 });
    expect(ok.Credentials!.Expiration!.getTime()).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 + 7200_000);
    expect(ok.Credentials!.Expiration!.getTime()).toBeLessThanOrEqual(Date.now() + 7200_000);
  });

  test("session policies: malformed, oversized, too large once packed, unknown ARNs", async () => {
    await expectRefused(assumeWithToken({ Policy: "{not json" }), "MalformedPolicyDocumentException", "The policy is not in the valid JSON format.");
    const perhaps = JSON.stringify({ Version: "2012-10-17", Statement: [{ Effect: "Perhaps", Action: "s3:*", Resource: "*" }] });
    await expectRefused(assumeWithToken({ Policy: perhaps }), "MalformedPolicyDocumentException", 'Effect must be "Allow" or "Deny"');
    const withPrincipal = JSON.stringify({ Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "s3:*", Resource: "*", Principal: "*" }] });
    await expectRefused(assumeWithToken({ Policy: withPrincipal }), "MalformedPolicyDocumentException", "Policy document should not specify a principal.");
    const noResource = JSON.stringify({ Statement: [{ Effect: "Allow", Action: "s3:*" }] });
    await expectRefused(assumeWithToken({ Policy: noResource }), "MalformedPolicyDocumentException", "needs exactly one of Resource or NotResource");

    const long = JSON.stringify({ Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "s3:GetObject", Resource: `arn:aws:s3:::${"a".repeat(2100)}` }] });
    await expectRefused(assumeWithToken({ Policy: long }), "ValidationError", "at 'policy' failed to satisfy constraint: Member must have length less than or equal to 2048");
    // High-entropy resource names barely compress: under 2048 characters, yet over the packed budget.
    const noisy = Array.from({ length: 36 }, () => `arn:aws:s3:::${randomBytes(27).toString("base64url")}`);
    const packed = JSON.stringify({ Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "s3:GetObject", Resource: noisy }] });
    expect(packed.length).toBeLessThanOrEqual(2048);
    await expectRefused(assumeWithToken({ Policy: packed }), "PackedPolicyTooLargeException", "Packed policy consumes");

    await expectRefused(assumeWithToken({ PolicyArns: [{ arn: `arn:aws:iam::${ACCOUNT_ID}:policy/missing` }] }), "MalformedPolicyDocumentException",
      `Policy arn:aws:iam::${ACCOUNT_ID}:policy/missing does not exist or is not attachable.`);
    const eleven = Array.from({ length: 11 }, () => ({ arn: READ_ONLY_ARN }));
    await expectRefused(assumeWithToken({ PolicyArns: eleven }), "ValidationError", "at 'policyArns' failed to satisfy constraint: Member must have length less than or equal to 10");

    const small = JSON.stringify({ Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "s3:GetObject", Resource: "*" }] });
    const granted = await assumeWithToken({ Policy: small, PolicyArns: [{ arn: READ_ONLY_ARN }] });
    expect(granted.PackedPolicySize).toBeGreaterThan(0);
    expect(granted.PackedPolicySize).toBeLessThan(50);
  });

  test("a trust policy on aws:SourceIp sees the caller's address (loopback here)", async () => {
    const key = issuer.url.replace("http://", "");
    const from = (cidrs: string[]): PolicyDocument => {
      const trust = webIdentityTrust(key, "*");
      return { ...trust, Statement: trust.Statement.map((s) => ({ ...s, Condition: { ...s.Condition, IpAddress: { "aws:SourceIp": cidrs } } })) };
    };
    const original = config;
    await writeConfig({
      ...config,
      roles: [
        ...config.roles,
        { roleName: "loopback-only", maxSessionDuration: 3600, assumeRolePolicyDocument: from(["127.0.0.0/8", "::1/128"]), permissionPolicies: [] },
        { roleName: "office-only", maxSessionDuration: 3600, assumeRolePolicyDocument: from(["203.0.113.0/24"]), permissionPolicies: [] },
      ],
    });
    try {
      expect((await assumeWithToken({ RoleArn: `arn:aws:iam::${ACCOUNT_ID}:role/loopback-only` })).Credentials).toBeDefined();
      await expectRefused(assumeWithToken({ RoleArn: `arn:aws:iam::${ACCOUNT_ID}:role/office-only` }), "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity");
    } finally {
      await writeConfig(original);
    }
  });

  test("a role added by rewriting the config file works without a restart", async () => {
    const key = issuer.url.replace("http://", "");
    const original = config;
    await writeConfig({
      ...config,
      roles: [...config.roles, { roleName: "added-later", maxSessionDuration: 3600, assumeRolePolicyDocument: webIdentityTrust(key, "*"), permissionPolicies: [] }],
    });
    try {
      const result = await assumeWithToken({ RoleArn: `arn:aws:iam::${ACCOUNT_ID}:role/added-later` });
      expect(result.AssumedRoleUser!.Arn).toContain(":assumed-role/added-later/");
    } finally {
      await writeConfig(original);
    }
  });

  test("a broken config file fails loudly instead of denying quietly", async () => {
    const original = config;
    const broken = structuredClone(config);
    (broken.roles[0]!.assumeRolePolicyDocument.Statement as PolicyStatement[])[0]!.Condition = { StringMaybe: { a: "b" } };
    await writeConfig(broken);
    try {
      const err = await expectRefused(assumeWithToken(), "InternalFailure", "condition operator StringMaybe is not supported");
      expect(err.$metadata?.httpStatusCode).toBe(500);
    } finally {
      await writeConfig(original);
    }
  });
});

// ---------------------------------------------------------------------------------------
// Signed calls: GetCallerIdentity and AssumeRole (role chaining)

describe("signed calls", () => {
  test("GetCallerIdentity names the session", async () => {
    const web = await assumeWithToken({ RoleSessionName: "whoami" });
    const identity = await client(web.Credentials).send(new GetCallerIdentityCommand({}));
    expect(identity).toMatchObject({
      Account: ACCOUNT_ID,
      Arn: `arn:aws:sts::${ACCOUNT_ID}:assumed-role/windmill-demo/whoami`,
      UserId: web.AssumedRoleUser!.AssumedRoleId,
    });
  });

  test("a signature made with the wrong secret is SignatureDoesNotMatch", async () => {
    const c = await demoCredentials();
    const tampered = { ...c, SecretAccessKey: `${c.SecretAccessKey!.slice(0, -1)}${c.SecretAccessKey!.endsWith("A") ? "B" : "A"}` };
    const err = await expectRefused(client(tampered).send(new GetCallerIdentityCommand({})), "SignatureDoesNotMatch", "The request signature we calculated does not match");
    expect(err.$metadata?.httpStatusCode).toBe(403);
  });

  test("an unknown key or a session token that is not the key's is InvalidClientTokenId", async () => {
    const c = await demoCredentials();
    const other = await demoCredentials();
    await expectRefused(client({ ...c, AccessKeyId: "ASIAAAAAAAAAAAAAAAAA" }).send(new GetCallerIdentityCommand({})), "InvalidClientTokenId",
      "The security token included in the request is invalid.");
    await expectRefused(client({ ...c, SessionToken: other.SessionToken }).send(new GetCallerIdentityCommand({})), "InvalidClientTokenId", "security token");
  });

  test("a session token that differs only in its last byte is InvalidClientTokenId", async () => {
    const c = await demoCredentials();
    const last = c.SessionToken!.at(-1);
    const altered = { ...c, SessionToken: `${c.SessionToken!.slice(0, -1)}${last === "A" ? "B" : "A"}` };
    // Signed with the altered token: only comparing it with the session's token refuses it.
    const err = await expectRefused(client(altered).send(new GetCallerIdentityCommand({})), "InvalidClientTokenId", "The security token included in the request is invalid.");
    expect(err.$metadata?.httpStatusCode).toBe(403);
  });

  test("the SDK's signer is accepted; a changed body, a skewed clock or another service's scope are not", async () => {
    const c = await demoCredentials();
    const whoami = "Action=GetCallerIdentity&Version=2011-06-15";
    const ok = await rawSignedCall(c, whoami);
    expect(ok.status).toBe(200);
    expect(ok.text).toContain("<GetCallerIdentityResult><Arn>arn:aws:sts::123456789012:assumed-role/windmill-demo/wm-test</Arn>");

    const swapped = await rawSignedCall(c, whoami, { sentBody: `Action=AssumeRole&Version=2011-06-15&RoleArn=${encodeURIComponent(CHAINED_ROLE_ARN)}&RoleSessionName=evil&ExternalId=ext-42` });
    expect(swapped.status).toBe(403);
    expect(swapped.text).toContain("<Code>SignatureDoesNotMatch</Code>");

    const stale = await rawSignedCall(c, whoami, { signingDate: new Date(Date.now() - 20 * 60_000) });
    expect(stale.status).toBe(403);
    expect(stale.text).toContain("Signature expired: ");

    const s3Scope = await rawSignedCall(c, whoami, { service: "s3" });
    expect(s3Scope.text).toContain("Credential should be scoped to correct service: &apos;sts&apos;.");
  });

  test("an unsigned call is MissingAuthenticationToken", async () => {
    const res = await fetch(sts.url, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "Action=GetCallerIdentity&Version=2011-06-15" });
    expect(res.status).toBe(403);
    expect(await res.text()).toContain("<Code>MissingAuthenticationToken</Code>");
  });

  test("an expired session is ExpiredToken", async () => {
    const c = await demoCredentials();
    expect((await localJson(`sessions/${c.AccessKeyId}/expire`, { method: "POST" })).status).toBe(200);
    await expectRefused(client(c).send(new GetCallerIdentityCommand({})), "ExpiredToken", "The security token included in the request is expired");
    expect((await authorize(c.AccessKeyId!, "s3:GetObject", "arn:aws:s3:::demo-bucket/a")).allowed).toBe(false);
  });

  test("AssumeRole chains into a role that trusts the caller, with the external id it requires", async () => {
    const web = await demoCredentials();
    const chained = await client(web).send(new AssumeRoleCommand({ RoleArn: CHAINED_ROLE_ARN, RoleSessionName: "chain", ExternalId: "ext-42" }));
    expect(chained.AssumedRoleUser!.Arn).toBe(`arn:aws:sts::${ACCOUNT_ID}:assumed-role/chained-reader/chain`);
    expect(chained.Credentials!.AccessKeyId).toMatch(/^ASIA/);
    expect(chained.Credentials!.Expiration!.getTime() - Date.now()).toBeLessThanOrEqual(3600_000);
    const identity = await client(chained.Credentials).send(new GetCallerIdentityCommand({}));
    expect(identity.Arn).toBe(chained.AssumedRoleUser!.Arn);
    // The chained session has the target role's permissions, not the caller's.
    expect((await authorize(chained.Credentials!.AccessKeyId!, "s3:GetObject", "arn:aws:s3:::any/thing")).allowed).toBe(true);
    expect((await authorize(chained.Credentials!.AccessKeyId!, "s3:PutObject", "arn:aws:s3:::demo-bucket/x")).allowed).toBe(false);
  });

  test("AssumeRole refuses a wrong or missing external id", async () => {
    const web = await demoCredentials();
    const message = `is not authorized to perform: sts:AssumeRole on resource: ${CHAINED_ROLE_ARN}`;
    await expectRefused(client(web).send(new AssumeRoleCommand({ RoleArn: CHAINED_ROLE_ARN, RoleSessionName: "chain", ExternalId: "nope" })), "AccessDenied", message);
    const err = await expectRefused(client(web).send(new AssumeRoleCommand({ RoleArn: CHAINED_ROLE_ARN, RoleSessionName: "chain" })), "AccessDenied", message);
    expect(err.message).toStartWith(`User: arn:aws:sts::${ACCOUNT_ID}:assumed-role/windmill-demo/wm-test`);
    expect(err.$metadata?.httpStatusCode).toBe(403);
  });

  test("AssumeRole caps role chaining at one hour", async () => {
    const web = await demoCredentials();
    await expectRefused(
      client(web).send(new AssumeRoleCommand({ RoleArn: CHAINED_ROLE_ARN, RoleSessionName: "chain", ExternalId: "ext-42", DurationSeconds: 3601 })),
      "ValidationError",
      "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.",
    );
    const hour = await client(web).send(new AssumeRoleCommand({ RoleArn: CHAINED_ROLE_ARN, RoleSessionName: "chain", ExternalId: "ext-42", DurationSeconds: 3600 }));
    expect(hour.Credentials).toBeDefined();
  });

  test("AssumeRole needs both the target's trust and the caller's sts:AssumeRole permission", async () => {
    const web = await demoCredentials();
    // Trusted through the account root, and chained-* is in the caller's Allow.
    const byAccount = await client(web).send(new AssumeRoleCommand({ RoleArn: `arn:aws:iam::${ACCOUNT_ID}:role/chained-by-account`, RoleSessionName: "acct" }));
    expect(byAccount.AssumedRoleUser!.Arn).toContain("/chained-by-account/acct");
    // Trusted, but the caller's policies grant no sts:AssumeRole on it.
    await expectRefused(client(web).send(new AssumeRoleCommand({ RoleArn: `arn:aws:iam::${ACCOUNT_ID}:role/not-granted`, RoleSessionName: "x1" })), "AccessDenied", "not authorized to perform: sts:AssumeRole");
    // A session policy narrows what the session may do, sts:AssumeRole included.
    const narrowed = await demoCredentials({ PolicyArns: [{ arn: READ_ONLY_ARN }] });
    await expectRefused(
      client(narrowed).send(new AssumeRoleCommand({ RoleArn: CHAINED_ROLE_ARN, RoleSessionName: "chain", ExternalId: "ext-42" })),
      "AccessDenied",
      "not authorized to perform: sts:AssumeRole",
    );
    // A chained session cannot chain back: the chained role's policies grant no sts:AssumeRole.
    const chained = await client(web).send(new AssumeRoleCommand({ RoleArn: CHAINED_ROLE_ARN, RoleSessionName: "chain", ExternalId: "ext-42" }));
    await expectRefused(client(chained.Credentials).send(new AssumeRoleCommand({ RoleArn: DEMO_ROLE_ARN, RoleSessionName: "back" })), "AccessDenied", "not authorized");
  });

  test("AssumeRole validates its own parameters", async () => {
    const web = await demoCredentials();
    await expectRefused(client(web).send(new AssumeRoleCommand({ RoleArn: CHAINED_ROLE_ARN, RoleSessionName: "chain", ExternalId: "x" })), "ValidationError",
      "Value 'x' at 'externalId' failed to satisfy constraint: Member must have length greater than or equal to 2");
    await expectRefused(client(web).send(new AssumeRoleCommand({ RoleArn: CHAINED_ROLE_ARN, RoleSessionName: "chain", ExternalId: "ext-42", Policy: "[]" })),
      "MalformedPolicyDocumentException", "the policy must be a JSON object");
  });
});

// ---------------------------------------------------------------------------------------
// /_local/ endpoints

describe("/_local/authorize evaluates the session's effective permissions", () => {
  let keyId: string;
  beforeAll(async () => {
    keyId = (await demoCredentials()).AccessKeyId!;
  });

  test("wildcards in Action and Resource, actions case-insensitive", async () => {
    expect(await authorize(keyId, "s3:GetObject", "arn:aws:s3:::demo-bucket/reports/q1.csv")).toEqual({ allowed: true, reason: 'allowed by role policy 0 statement "Bucket"' });
    expect((await authorize(keyId, "s3:getobject", "arn:aws:s3:::demo-bucket/a")).allowed).toBe(true);
    expect((await authorize(keyId, "s3:ListBucket", "arn:aws:s3:::demo-bucket")).allowed).toBe(true);
    expect((await authorize(keyId, "s3:GetObject", "arn:aws:s3:::other-bucket/a")).allowed).toBe(false);
    const deleted = await authorize(keyId, "s3:DeleteObject", "arn:aws:s3:::demo-bucket/a");
    expect(deleted).toEqual({ allowed: false, reason: "implicitly denied: no role policy allows s3:DeleteObject on arn:aws:s3:::demo-bucket/a" });
    // `?` is exactly one character.
    const db = `arn:aws:rds-db:${REGION}:${ACCOUNT_ID}:dbuser:db-ABC`;
    expect((await authorize(keyId, "rds-db:connect", `${db}/app_user`)).allowed).toBe(true);
    expect((await authorize(keyId, "rds-db:connect", `${db}/app_usser`)).allowed).toBe(false);
  });

  test("NotAction allows everything but the listed services", async () => {
    expect((await authorize(keyId, "ec2:DescribeInstances", "*")).allowed).toBe(true);
    expect((await authorize(keyId, "iam:CreateUser", "*")).allowed).toBe(false);
  });

  test("an explicit Deny wins over an Allow", async () => {
    expect(await authorize(keyId, "s3:GetObject", "arn:aws:s3:::demo-bucket/secret/key.pem")).toEqual({
      allowed: false,
      reason: 'explicitly denied by role policy 0 statement "NoSecrets"',
    });
  });

  test("a session policy intersects with the role's policies", async () => {
    const narrowed = (await demoCredentials({
      PolicyArns: [{ arn: READ_ONLY_ARN }],
      Policy: JSON.stringify({ Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "s3:PutObject", Resource: "arn:aws:s3:::demo-bucket/uploads/*" }] }),
    })).AccessKeyId!;
    expect((await authorize(narrowed, "s3:GetObject", "arn:aws:s3:::demo-bucket/a")).allowed).toBe(true);
    expect((await authorize(narrowed, "s3:PutObject", "arn:aws:s3:::demo-bucket/uploads/a")).allowed).toBe(true);
    const put = await authorize(narrowed, "s3:PutObject", "arn:aws:s3:::demo-bucket/a");
    expect(put.allowed).toBe(false);
    expect(put.reason).toContain("the session policy does not");
    // The session policy allows reading any bucket, the role only demo-bucket.
    expect((await authorize(narrowed, "s3:GetObject", "arn:aws:s3:::other-bucket/a")).allowed).toBe(false);
    // The role's Deny still applies.
    expect((await authorize(narrowed, "s3:GetObject", "arn:aws:s3:::demo-bucket/secret/a")).allowed).toBe(false);
  });

  // IAM User Guide, "Condition operators" (IpAddress) and "AWS global condition context keys" (aws:SourceIp).
  test("a session policy on aws:SourceIp is accepted, and matches the address the gate reports", async () => {
    const fromLoopback = JSON.stringify({
      Version: "2012-10-17",
      Statement: [{ Effect: "Allow", Action: "s3:*", Resource: "*", Condition: { IpAddress: { "aws:SourceIp": ["127.0.0.0/8", "::1/128"] } } }],
    });
    const granted = await assumeWithToken({ Policy: fromLoopback });
    const narrowed = granted.Credentials!.AccessKeyId!;
    expect(granted.PackedPolicySize).toBeGreaterThan(0);
    expect((await authorize(narrowed, "s3:GetObject", "arn:aws:s3:::demo-bucket/a", { "aws:SourceIp": "127.0.0.1" })).allowed).toBe(true);
    expect((await authorize(narrowed, "s3:GetObject", "arn:aws:s3:::demo-bucket/a", { "aws:SourceIp": "203.0.113.9" })).allowed).toBe(false);
    // A gate that does not know the address sends no key, and the Allow does not apply.
    expect((await authorize(narrowed, "s3:GetObject", "arn:aws:s3:::demo-bucket/a")).reason).toContain("the session policy does not");
  });

  test("the session's own keys: aws:userid is role-id:session-name, aws:username is absent", async () => {
    const home = JSON.stringify({
      Version: "2012-10-17",
      Statement: [
        { Effect: "Allow", Action: "s3:GetObject", Resource: "arn:aws:s3:::demo-bucket/home/${aws:userid}/*" },
        { Effect: "Allow", Action: "s3:PutObject", Resource: "arn:aws:s3:::demo-bucket/home/${aws:username}/*" },
        { Effect: "Allow", Action: "s3:ListBucket", Resource: "*", Condition: { StringEquals: { "aws:PrincipalType": "AssumedRole", "aws:PrincipalArn": DEMO_ROLE_ARN }, Null: { "aws:TokenIssueTime": "false" } } },
      ],
    });
    const granted = await assumeWithToken({ Policy: home, RoleSessionName: "wm-home" });
    const narrowed = granted.Credentials!.AccessKeyId!;
    const userId = granted.AssumedRoleUser!.AssumedRoleId!;
    expect(userId).toEndWith(":wm-home");
    expect((await authorize(narrowed, "s3:GetObject", `arn:aws:s3:::demo-bucket/home/${userId}/a`)).allowed).toBe(true);
    expect((await authorize(narrowed, "s3:GetObject", "arn:aws:s3:::demo-bucket/home/AROAOTHER:wm-home/a")).allowed).toBe(false);
    expect((await authorize(narrowed, "s3:PutObject", "arn:aws:s3:::demo-bucket/home//a")).allowed).toBe(false);
    expect((await authorize(narrowed, "s3:ListBucket", "arn:aws:s3:::demo-bucket")).allowed).toBe(true);
  });

  test("an unknown key is a 404 and a malformed body a 400", async () => {
    expect((await localJson("authorize", { body: { accessKeyId: "ASIANOPE", action: "s3:GetObject", resource: "*" } })).status).toBe(404);
    expect((await localJson("authorize", { body: { accessKeyId: keyId } })).status).toBe(400);
    expect((await localJson("sessions/ASIANOPE")).status).toBe(404);
  });
});

describe("faults and stats", () => {
  test("the next N calls of an action fail with the injected error, then calls succeed again", async () => {
    await addFault({ action: "AssumeRoleWithWebIdentity", code: "Throttling", count: 2 });
    for (let i = 0; i < 2; i++) {
      const err = await expectRefused(assumeWithToken(), "Throttling", "Rate exceeded");
      expect(err.$metadata?.httpStatusCode).toBe(400);
    }
    expect((await assumeWithToken()).Credentials).toBeDefined();
  });

  test("IDPCommunicationError and InternalFailure faults carry AWS's codes and statuses", async () => {
    await addFault({ action: "AssumeRoleWithWebIdentity", code: "IDPCommunicationError", count: 1 });
    await addFault({ action: "AssumeRoleWithWebIdentity", code: "InternalFailure", count: 1 });
    await expectRefused(assumeWithToken(), "IDPCommunicationErrorException", "Couldn't retrieve verification key");
    const err = await expectRefused(assumeWithToken(), "InternalFailure", "unknown error");
    expect(err.$metadata?.httpStatusCode).toBe(500);
    expect(err.$fault).toBe("server");
  });

  test("a fault without an action hits the next call of any action; DELETE clears faults", async () => {
    const c = await demoCredentials();
    await addFault({ code: "Throttling", count: 5 });
    await expectRefused(client(c).send(new GetCallerIdentityCommand({})), "Throttling", "Rate exceeded");
    await expectRefused(assumeWithToken(), "Throttling", "Rate exceeded");
    await fetch(`${sts.url}/_local/faults`, { method: "DELETE" });
    expect((await client(c).send(new GetCallerIdentityCommand({}))).Account).toBe(ACCOUNT_ID);
  });

  test("a malformed fault is refused", async () => {
    expect((await addFault({ code: "Nope", count: 1 })).status).toBe(400);
    expect((await addFault({ action: "GetSessionToken", code: "Throttling", count: 1 })).status).toBe(400);
    expect((await addFault({ code: "Throttling", count: 0 })).status).toBe(400);
  });

  test("stats count calls and failures per action", async () => {
    await localJson("stats/reset", { method: "POST" });
    const c = await demoCredentials();
    await refusal(assumeWithToken({ RoleSessionName: "a" }));
    await client(c).send(new GetCallerIdentityCommand({}));
    await refusal(client(c).send(new AssumeRoleCommand({ RoleArn: CHAINED_ROLE_ARN, RoleSessionName: "x1" })));
    expect((await localJson("stats")).body).toEqual({
      calls: { AssumeRoleWithWebIdentity: 2, AssumeRole: 1, GetCallerIdentity: 1 },
      failures: { AssumeRoleWithWebIdentity: 1, AssumeRole: 1, GetCallerIdentity: 0 },
    });
  });
});
