// The AWS STS stand-in: AssumeRoleWithWebIdentity, AssumeRole (role chaining) and
// GetCallerIdentity over STS's awsQuery protocol, answering in STS's XML shapes so the real
// @aws-sdk/client-sts works against it unchanged. It is as strict as AWS: ID tokens are
// verified through the issuer's JWKS, trust and permission policies are evaluated, signed
// calls are re-signed with the issued secret and compared. Tests and the other stand-ins
// reach its bookkeeping through the JSON endpoints under /_local/.
//
// Run alone: bun local/sts.ts --config path/to/sts.json [--port N] [--host 127.0.0.1]
import { createHash, randomBytes, randomInt, randomUUID, timingSafeEqual } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { deflateRawSync } from "node:zlib";
import { Hash } from "@smithy/hash-node";
import { SignatureV4 } from "@smithy/signature-v4";
import type { HttpRequest, QueryParameterBag } from "@smithy/types";
import { compactVerify, createLocalJWKSet, decodeJwt, errors as joseErrors, type JSONWebKeySet, type JWTPayload } from "jose";
import { closeServer, HttpError, listen, readBody, readJson, sendJson, sendText } from "./shared/http.ts";
import {
  evaluateSessionPermission,
  evaluateTrustPolicy,
  parsePolicyDocument,
  policyProblems,
  type ConditionContext,
  type PolicyDocument,
} from "./iam_policy.ts";

// ---------------------------------------------------------------------------------------
// Limits (AWS STS API reference and IAM quotas)

const STS_API_VERSION = "2011-06-15";
const STS_XMLNS = `https://sts.amazonaws.com/doc/${STS_API_VERSION}/`;
/** Shortest session any AssumeRole* call may ask for. */
const MIN_DURATION_SECONDS = 900;
/** Longest session: the highest MaxSessionDuration IAM lets a role have (12 h). */
const MAX_DURATION_SECONDS = 43_200;
/** What STS grants when the call names no DurationSeconds. */
const DEFAULT_DURATION_SECONDS = 3600;
/** A role assumed with another role's session is capped at one hour whatever it asks. */
const ROLE_CHAINING_MAX_SECONDS = 3600;
/** IAM's own bounds on a role's MaxSessionDuration. */
const ROLE_MAX_SESSION_BOUNDS = { min: 3600, max: 43_200 };
/** Session policies: an inline policy of at most 2048 characters and at most 10 managed policy ARNs. */
const MAX_SESSION_POLICY_CHARS = 2048;
const MAX_POLICY_ARNS = 10;
/**
 * AWS packs session policies into a binary form with its own budget and reports the share
 * used as PackedPolicySize. Its format is private; a raw-deflate size against this budget
 * behaves alike: small policies use a few percent, large high-entropy ones exceed 100 %.
 */
const PACKED_POLICY_BUDGET_BYTES = 1024;
/** SigV4 refuses requests dated more than 15 minutes away from the server's clock. */
const MAX_SIGNATURE_SKEW_MS = 15 * 60 * 1000;
/** How long STS waits for an identity provider's discovery document or JWKS. */
const IDP_TIMEOUT_MS = 5000;
/** The signing algorithms AWS accepts for OIDC ID tokens. */
const ID_TOKEN_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512"];
/** AWS writes this in place of a sensitive parameter's value in validation messages. */
const REDACTED = "*** Sensitive Data Redacted ***";
/** Echoed parameter values longer than this are cut, so a 3 KB policy does not flood a message. */
const ECHO_MAX_CHARS = 128;
const UPPER_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
/** The hash constructor the SDK itself hands its SigV4 signer in Node. */
const Sha256 = Hash.bind(null, "sha256");

const VERIFICATION_KEY_MESSAGE =
  "Couldn't retrieve verification key from your identity provider, please reference AssumeRoleWithWebIdentity documentation for requirements";
const SIGNATURE_MISMATCH_MESSAGE =
  "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

// ---------------------------------------------------------------------------------------
// Config

export interface OidcProviderConfig {
  /** The issuer URL exactly as ID tokens carry it in `iss` (Windmill: `<base>/api/oidc/`). */
  url: string;
  clientIdList: string[];
}

export interface RoleConfig {
  roleName: string;
  maxSessionDuration: number;
  assumeRolePolicyDocument: PolicyDocument;
  permissionPolicies: PolicyDocument[];
}

export interface ManagedPolicyConfig {
  arn: string;
  document: PolicyDocument;
}

export interface StsConfig {
  accountId: string;
  oidcProviders: OidcProviderConfig[];
  roles: RoleConfig[];
  managedPolicies: ManagedPolicyConfig[];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isStringList(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === "string");
}

function arrayField(config: Record<string, unknown>, key: string, problems: string[]): unknown[] {
  const value = config[key];
  if (Array.isArray(value)) return value;
  problems.push(`${key} must be an array`);
  return [];
}

/** Everything wrong with a config file, so a broken test fixture fails loudly rather than silently denying. */
function configProblems(value: unknown): string[] {
  if (!isRecord(value)) return ["the config must be a JSON object"];
  const problems: string[] = [];
  if (typeof value.accountId !== "string" || !/^\d{12}$/.test(value.accountId)) problems.push("accountId must be 12 digits");
  arrayField(value, "oidcProviders", problems).forEach((p, i) => {
    if (!isRecord(p) || typeof p.url !== "string" || !/^https?:\/\//.test(p.url)) problems.push(`oidcProviders[${i}].url must be an http(s) URL`);
    if (!isRecord(p) || !isStringList(p.clientIdList) || p.clientIdList.length === 0) problems.push(`oidcProviders[${i}].clientIdList must list audiences`);
  });
  arrayField(value, "roles", problems).forEach((r, i) => {
    if (!isRecord(r)) return void problems.push(`roles[${i}] must be an object`);
    if (typeof r.roleName !== "string" || !/^[\w+=,.@-]{1,64}$/.test(r.roleName)) problems.push(`roles[${i}].roleName is not a valid IAM role name`);
    const max = r.maxSessionDuration;
    if (typeof max !== "number" || !Number.isInteger(max) || max < ROLE_MAX_SESSION_BOUNDS.min || max > ROLE_MAX_SESSION_BOUNDS.max) {
      problems.push(`roles[${i}].maxSessionDuration must be an integer from 3600 to 43200`);
    }
    problems.push(...policyProblems(r.assumeRolePolicyDocument, "trust").map((p) => `roles[${i}].assumeRolePolicyDocument: ${p}`));
    arrayField(r, "permissionPolicies", problems).forEach((doc, j) =>
      problems.push(...policyProblems(doc, "identity").map((p) => `roles[${i}].permissionPolicies[${j}]: ${p}`)),
    );
  });
  arrayField(value, "managedPolicies", problems).forEach((m, i) => {
    if (!isRecord(m) || typeof m.arn !== "string" || !/^arn:aws:iam::(\d{12}|aws):policy\/.+/.test(m.arn)) problems.push(`managedPolicies[${i}].arn must be an IAM policy ARN`);
    if (isRecord(m)) problems.push(...policyProblems(m.document, "identity").map((p) => `managedPolicies[${i}].document: ${p}`));
  });
  return problems;
}

/** Read on every request, so a test can add a role by rewriting the file. */
async function loadConfig(configPath: string): Promise<StsConfig> {
  let value: unknown;
  try {
    value = JSON.parse(await readFile(configPath, "utf8"));
  } catch (err) {
    throw new StsError("InternalFailure", `STS stand-in config ${configPath} is unreadable: ${(err as Error).message}`, 500, "Receiver");
  }
  const problems = configProblems(value);
  if (problems.length > 0) throw new StsError("InternalFailure", `STS stand-in config ${configPath} is invalid: ${problems.join("; ")}`, 500, "Receiver");
  return value as StsConfig;
}

function roleArnOf(accountId: string, roleName: string): string {
  return `arn:aws:iam::${accountId}:role/${roleName}`;
}

/** IAM names a provider by its URL without the scheme; the same string prefixes its condition keys. */
function providerKeyOf(url: string): string {
  return url.replace(/^https?:\/\//, "");
}

function providerArnOf(accountId: string, url: string): string {
  return `arn:aws:iam::${accountId}:oidc-provider/${providerKeyOf(url)}`;
}

/** Role ARNs may carry a path (`role/team/name`); the role is named by the last segment. */
function parseRoleArn(arn: string): { accountId: string; roleName: string } | undefined {
  const match = /^arn:aws:iam::(\d{12}):role\/(?:[\w+=,.@-]+\/)*([\w+=,.@-]{1,64})$/.exec(arn);
  return match ? { accountId: match[1]!, roleName: match[2]! } : undefined;
}

function findRole(config: StsConfig, roleArn: string): RoleConfig | undefined {
  const parsed = parseRoleArn(roleArn);
  if (!parsed || parsed.accountId !== config.accountId) return undefined;
  return config.roles.find((r) => r.roleName === parsed.roleName);
}

// ---------------------------------------------------------------------------------------
// Errors

type FaultType = "Sender" | "Receiver";

class StsError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
    readonly type: FaultType = "Sender",
  ) {
    super(message);
  }
}

const validationError = (message: string) => new StsError("ValidationError", message);
const accessDenied = (message: string) => new StsError("AccessDenied", message, 403);
const invalidIdentityToken = (message: string) => new StsError("InvalidIdentityToken", message);
const invalidClientToken = () => new StsError("InvalidClientTokenId", "The security token included in the request is invalid.", 403);
const signatureMismatch = (message = SIGNATURE_MISMATCH_MESSAGE) => new StsError("SignatureDoesNotMatch", message, 403);
const idpUnreachable = () => new StsError("IDPCommunicationError", VERIFICATION_KEY_MESSAGE);
const malformedPolicy = (message: string) => new StsError("MalformedPolicyDocument", message);

/** AWS reports every constraint a request breaks at once, in this wording. */
class Violations {
  private readonly list: string[] = [];

  add(member: string, shownValue: string | null, constraint: string): void {
    const shown = shownValue === null ? "null" : `'${shownValue}'`;
    this.list.push(`Value ${shown} at '${member}' failed to satisfy constraint: Member must ${constraint}`);
  }

  throwIfAny(): void {
    const n = this.list.length;
    if (n > 0) throw validationError(`${n} validation error${n === 1 ? "" : "s"} detected: ${this.list.join("; ")}`);
  }
}

// ---------------------------------------------------------------------------------------
// Request parameters

interface StringRule {
  param: string;
  /** The name AWS uses in validation messages (the model's member name). */
  member: string;
  required: boolean;
  min: number;
  max: number;
  pattern?: { regex: RegExp; text: string };
  sensitive?: boolean;
}

const ROLE_ARN_RULE: StringRule = { param: "RoleArn", member: "roleArn", required: true, min: 20, max: 2048 };
const ROLE_SESSION_NAME_RULE: StringRule = {
  param: "RoleSessionName", member: "roleSessionName", required: true, min: 2, max: 64,
  pattern: { regex: /^[\w+=,.@-]*$/, text: "[\\w+=,.@-]*" },
};
const WEB_IDENTITY_TOKEN_RULE: StringRule = { param: "WebIdentityToken", member: "webIdentityToken", required: true, min: 4, max: 20_000, sensitive: true };
const POLICY_RULE: StringRule = {
  param: "Policy", member: "policy", required: false, min: 1, max: MAX_SESSION_POLICY_CHARS,
  pattern: { regex: /^[\u0009\u000A\u000D\u0020-\u00FF]+$/, text: "[\\u0009\\u000A\\u000D\\u0020-\\u00FF]+" },
};
const EXTERNAL_ID_RULE: StringRule = {
  param: "ExternalId", member: "externalId", required: false, min: 2, max: 1224,
  pattern: { regex: /^[\w+=,.@:/-]*$/, text: "[\\w+=,.@:\\/-]*" },
};
const POLICY_ARN_RULE: Omit<StringRule, "param" | "member"> = { required: true, min: 20, max: 2048 };

function echo(value: string, rule: { sensitive?: boolean }): string {
  if (rule.sensitive) return REDACTED;
  return value.length > ECHO_MAX_CHARS ? `${value.slice(0, ECHO_MAX_CHARS)}...` : value;
}

function checkString(value: string | null, rule: Omit<StringRule, "param">, violations: Violations): string | undefined {
  if (value === null) {
    if (rule.required) violations.add(rule.member, null, "not be null");
    return undefined;
  }
  if (value.length < rule.min) violations.add(rule.member, echo(value, rule), `have length greater than or equal to ${rule.min}`);
  if (value.length > rule.max) violations.add(rule.member, echo(value, rule), `have length less than or equal to ${rule.max}`);
  if (rule.pattern && !rule.pattern.regex.test(value)) violations.add(rule.member, echo(value, rule), `satisfy regular expression pattern: ${rule.pattern.text}`);
  return value;
}

function readString(params: URLSearchParams, rule: StringRule, violations: Violations): string | undefined {
  return checkString(params.get(rule.param), rule, violations);
}

function readDuration(params: URLSearchParams, violations: Violations): number | undefined {
  const raw = params.get("DurationSeconds");
  if (raw === null) return undefined;
  if (!/^-?\d+$/.test(raw)) {
    violations.add("durationSeconds", raw, "be an integer");
    return undefined;
  }
  const value = Number(raw);
  if (value < MIN_DURATION_SECONDS) violations.add("durationSeconds", raw, `have value greater than or equal to ${MIN_DURATION_SECONDS}`);
  if (value > MAX_DURATION_SECONDS) violations.add("durationSeconds", raw, `have value less than or equal to ${MAX_DURATION_SECONDS}`);
  return value;
}

/** awsQuery serializes a list of PolicyDescriptorType as `PolicyArns.member.N.arn` (N from 1). */
function readPolicyArns(params: URLSearchParams, violations: Violations): string[] {
  const byIndex: [number, string][] = [];
  for (const [key, value] of params) {
    const match = /^PolicyArns\.member\.(\d+)\.arn$/.exec(key);
    if (match) byIndex.push([Number(match[1]), value]);
  }
  const arns = byIndex.sort(([a], [b]) => a - b).map(([, arn]) => arn);
  arns.forEach((arn, i) => checkString(arn, { ...POLICY_ARN_RULE, member: `policyArns.${i + 1}.member.arn` }, violations));
  if (arns.length > MAX_POLICY_ARNS) violations.add("policyArns", `[${arns.join(", ")}]`, `have length less than or equal to ${MAX_POLICY_ARNS}`);
  return arns;
}

interface AssumeRoleInput {
  roleArn: string;
  roleSessionName: string;
  durationSeconds?: number;
  policy?: string;
  policyArns: string[];
}

/** The parameters AssumeRole and AssumeRoleWithWebIdentity share; `extra` reads the rest into the same violation list. */
function readAssumeRoleInput<T>(params: URLSearchParams, extra: (v: Violations) => T): AssumeRoleInput & T {
  const violations = new Violations();
  const roleArn = readString(params, ROLE_ARN_RULE, violations);
  const roleSessionName = readString(params, ROLE_SESSION_NAME_RULE, violations);
  const durationSeconds = readDuration(params, violations);
  const policy = readString(params, POLICY_RULE, violations);
  const policyArns = readPolicyArns(params, violations);
  const rest = extra(violations);
  violations.throwIfAny();
  if (!parseRoleArn(roleArn!)) throw validationError("Request ARN is invalid");
  return { roleArn: roleArn!, roleSessionName: roleSessionName!, durationSeconds, policy, policyArns, ...rest };
}

interface SessionPolicies {
  /** Undefined when the call passed none: then the role's policies alone apply. */
  documents?: PolicyDocument[];
  packedPolicySize?: number;
}

function packedPolicySize(policyJson: string | undefined, arns: string[]): number {
  const packed = deflateRawSync(Buffer.from(`${policyJson ?? ""}${arns.join(",")}`, "utf8"));
  return Math.ceil((packed.length * 100) / PACKED_POLICY_BUDGET_BYTES);
}

function resolveSessionPolicies(input: AssumeRoleInput, config: StsConfig): SessionPolicies {
  if (input.policy === undefined && input.policyArns.length === 0) return {};
  const documents: PolicyDocument[] = [];
  let minified: string | undefined;
  if (input.policy !== undefined) {
    const parsed = parsePolicyDocument(input.policy, "identity");
    if (!parsed.ok) throw malformedPolicy(parsed.problem);
    documents.push(parsed.document);
    minified = JSON.stringify(parsed.document);
  }
  for (const arn of input.policyArns) {
    const managed = config.managedPolicies.find((m) => m.arn === arn);
    if (!managed) throw malformedPolicy(`Policy ${arn} does not exist or is not attachable.`);
    documents.push(managed.document);
  }
  const size = packedPolicySize(minified, input.policyArns);
  if (size > 100) throw new StsError("PackedPolicyTooLarge", `Packed policy consumes ${size}% of allotted space, please use smaller policy.`);
  return { documents, packedPolicySize: size };
}

function sessionDuration(requested: number | undefined, role: RoleConfig, chained: boolean): number {
  const seconds = requested ?? DEFAULT_DURATION_SECONDS;
  if (chained && seconds > ROLE_CHAINING_MAX_SECONDS) {
    throw validationError("The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.");
  }
  if (seconds > role.maxSessionDuration) throw validationError("The requested DurationSeconds exceeds the MaxSessionDuration set for this role.");
  return seconds;
}

// ---------------------------------------------------------------------------------------
// Sessions

interface Session {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  expiration: Date;
  roleArn: string;
  assumedRoleArn: string;
  assumedRoleId: string;
  accountId: string;
  /** The role's permission policies as they were when the session was issued. */
  rolePolicies: PolicyDocument[];
  sessionPolicies?: PolicyDocument[];
}

type ActionName = "AssumeRoleWithWebIdentity" | "AssumeRole" | "GetCallerIdentity";
const ACTION_NAMES: ActionName[] = ["AssumeRoleWithWebIdentity", "AssumeRole", "GetCallerIdentity"];
type FaultCode = "Throttling" | "IDPCommunicationError" | "InternalFailure";

interface Fault {
  action?: ActionName;
  code: FaultCode;
  remaining: number;
}

interface StsState {
  configPath: string;
  sessions: Map<string, Session>;
  issuedSecretAccessKeys: string[];
  issuedSessionTokens: string[];
  calls: Record<ActionName, number>;
  failures: Record<ActionName, number>;
  faults: Fault[];
}

function zeroCounts(): Record<ActionName, number> {
  return { AssumeRoleWithWebIdentity: 0, AssumeRole: 0, GetCallerIdentity: 0 };
}

function randomUpperAlnum(length: number): string {
  return Array.from({ length }, () => UPPER_ALNUM[randomInt(UPPER_ALNUM.length)]).join("");
}

/** A role's unique id is stable (AWS assigns it once at creation), so derive it from the role's ARN. */
function roleUniqueId(roleArn: string): string {
  const digest = createHash("sha256").update(roleArn).digest();
  // AROA + 17 characters: the length of real role ids.
  return `AROA${Array.from(digest.subarray(0, 17), (b) => UPPER_ALNUM[b % UPPER_ALNUM.length]).join("")}`;
}

function mintSession(
  state: StsState,
  grant: { accountId: string; role: RoleConfig; roleSessionName: string; durationSeconds: number; sessionPolicies?: PolicyDocument[] },
): Session {
  const roleArn = roleArnOf(grant.accountId, grant.role.roleName);
  // STS reports expirations to the second.
  const expiration = new Date(Math.floor(Date.now() / 1000) * 1000 + grant.durationSeconds * 1000);
  const session: Session = {
    // Temporary credentials' key ids start with ASIA; long-term keys with AKIA.
    accessKeyId: `ASIA${randomUpperAlnum(16)}`,
    secretAccessKey: randomBytes(30).toString("base64"),
    sessionToken: randomBytes(300).toString("base64"),
    expiration,
    roleArn,
    assumedRoleArn: `arn:aws:sts::${grant.accountId}:assumed-role/${grant.role.roleName}/${grant.roleSessionName}`,
    assumedRoleId: `${roleUniqueId(roleArn)}:${grant.roleSessionName}`,
    accountId: grant.accountId,
    rolePolicies: grant.role.permissionPolicies,
    sessionPolicies: grant.sessionPolicies,
  };
  state.sessions.set(session.accessKeyId, session);
  state.issuedSecretAccessKeys.push(session.secretAccessKey);
  state.issuedSessionTokens.push(session.sessionToken);
  return session;
}

// ---------------------------------------------------------------------------------------
// XML

type XmlValue = string | number | XmlFields | undefined;
interface XmlFields {
  [element: string]: XmlValue;
}

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&apos;");
}

function renderXml(fields: XmlFields): string {
  return Object.entries(fields)
    .filter(([, value]) => value !== undefined)
    .map(([name, value]) => `<${name}>${typeof value === "object" ? renderXml(value) : escapeXml(String(value))}</${name}>`)
    .join("");
}

function successXml(action: ActionName, result: XmlFields, requestId: string): string {
  return `<${action}Response xmlns="${STS_XMLNS}"><${action}Result>${renderXml(result)}</${action}Result>` +
    `<ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata></${action}Response>`;
}

function errorXml(err: StsError, requestId: string): string {
  return `<ErrorResponse xmlns="${STS_XMLNS}">` +
    renderXml({ Error: { Type: err.type, Code: err.code, Message: err.message } }) +
    `<RequestId>${requestId}</RequestId></ErrorResponse>`;
}

/** STS writes timestamps in ISO 8601 without milliseconds. */
function isoSeconds(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

function credentialsXml(session: Session): XmlFields {
  return {
    AccessKeyId: session.accessKeyId,
    SecretAccessKey: session.secretAccessKey,
    SessionToken: session.sessionToken,
    Expiration: isoSeconds(session.expiration),
  };
}

function assumedRoleUserXml(session: Session): XmlFields {
  return { Arn: session.assumedRoleArn, AssumedRoleId: session.assumedRoleId };
}

// ---------------------------------------------------------------------------------------
// Web identity tokens

interface VerifiedIdentity {
  providerUrl: string;
  audience: string;
  subject: string;
  claims: JWTPayload;
}

function decodeClaims(token: string): JWTPayload {
  try {
    return decodeJwt(token);
  } catch {
    throw invalidIdentityToken("The ID Token provided is not a valid JWT. (You may see this error if you sent an Access Token)");
  }
}

/** Connection failures and 5xx are transient (IDPCommunicationError); anything else means the keys cannot be had. */
async function fetchIdpJson(url: string): Promise<unknown> {
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(IDP_TIMEOUT_MS), redirect: "error" });
  } catch {
    throw idpUnreachable();
  }
  if (response.status >= 500) throw idpUnreachable();
  if (!response.ok) throw invalidIdentityToken(VERIFICATION_KEY_MESSAGE);
  try {
    return await response.json();
  } catch {
    throw invalidIdentityToken(VERIFICATION_KEY_MESSAGE);
  }
}

/** OIDC discovery: `<issuer>/.well-known/openid-configuration` names the JWKS. */
async function fetchIssuerKeys(issuer: string): Promise<JSONWebKeySet> {
  const discovery = await fetchIdpJson(`${issuer.replace(/\/+$/, "")}/.well-known/openid-configuration`);
  if (!isRecord(discovery) || typeof discovery.jwks_uri !== "string") throw invalidIdentityToken(VERIFICATION_KEY_MESSAGE);
  if (discovery.issuer !== issuer) {
    throw invalidIdentityToken(`The issuer in your identity provider's discovery document (${String(discovery.issuer)}) does not match the token's issuer (${issuer})`);
  }
  const jwks = await fetchIdpJson(discovery.jwks_uri);
  if (!isRecord(jwks) || !Array.isArray(jwks.keys)) throw invalidIdentityToken(VERIFICATION_KEY_MESSAGE);
  return jwks as unknown as JSONWebKeySet;
}

async function verifySignature(token: string, jwks: JSONWebKeySet): Promise<void> {
  try {
    await compactVerify(token, createLocalJWKSet(jwks), { algorithms: ID_TOKEN_ALGORITHMS });
  } catch (err) {
    if (err instanceof joseErrors.JWSSignatureVerificationFailed) {
      throw invalidIdentityToken("The token's signature does not verify with any key of your identity provider's JWKS");
    }
    if (err instanceof joseErrors.JOSEAlgNotAllowed) throw invalidIdentityToken(`The token is signed with an unsupported algorithm; use one of ${ID_TOKEN_ALGORITHMS.join(", ")}`);
    throw invalidIdentityToken(VERIFICATION_KEY_MESSAGE);
  }
}

function checkExpiry(claims: JWTPayload, now: Date): void {
  if (typeof claims.exp !== "number") throw invalidIdentityToken("The token has no exp claim");
  const nowSeconds = Math.floor(now.getTime() / 1000);
  if (nowSeconds >= claims.exp) {
    throw new StsError("ExpiredTokenException", `Token expired: current date/time ${nowSeconds} must be before the expiration date/time ${claims.exp}`);
  }
}

/** Windmill sends `aud` as an array of one string; other issuers send a string. */
function matchAudience(aud: JWTPayload["aud"], clientIds: string[]): string {
  const audiences = typeof aud === "string" ? [aud] : Array.isArray(aud) ? aud : [];
  const match = audiences.find((a) => clientIds.includes(a));
  if (!match) throw invalidIdentityToken("Incorrect token audience");
  return match;
}

async function verifyWebIdentityToken(token: string, config: StsConfig, now: Date): Promise<VerifiedIdentity> {
  const claims = decodeClaims(token);
  const provider = config.oidcProviders.find((p) => p.url === claims.iss);
  if (!provider) throw invalidIdentityToken(`No OpenIDConnect provider found in your account for ${claims.iss ?? "a token without iss"}`);
  await verifySignature(token, await fetchIssuerKeys(provider.url));
  checkExpiry(claims, now);
  const audience = matchAudience(claims.aud, provider.clientIdList);
  if (typeof claims.sub !== "string" || claims.sub.length === 0) throw invalidIdentityToken("The token has no sub claim");
  return { providerUrl: provider.url, audience, subject: claims.sub, claims };
}

// ---------------------------------------------------------------------------------------
// SigV4 request authentication

interface Authorization {
  accessKeyId: string;
  scopeDate: string;
  region: string;
  service: string;
  signedHeaders: string[];
  signature: string;
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(",") : value;
}

/** Length is not secret (both sides are fixed-format); content is compared in constant time. */
function constantTimeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a, "utf8");
  const right = Buffer.from(b, "utf8");
  return left.length === right.length && timingSafeEqual(left, right);
}

function parseAuthorization(header: string): Authorization {
  const match = /^AWS4-HMAC-SHA256 Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})$/.exec(header);
  if (!match) {
    throw new StsError("IncompleteSignature", "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters (AWS4-HMAC-SHA256).");
  }
  const scope = match[1]!.split("/");
  if (scope.length !== 5 || scope[4] !== "aws4_request") {
    throw new StsError("IncompleteSignature", "Credential must have the form <access key id>/<YYYYMMDD>/<region>/<service>/aws4_request.");
  }
  const [accessKeyId, scopeDate, region, service] = scope as [string, string, string, string];
  return { accessKeyId, scopeDate, region, service, signedHeaders: match[2]!.split(";"), signature: match[3]! };
}

function amzDateOf(date: Date): string {
  return isoSeconds(date).replace(/[-:]/g, "");
}

function checkRequestDate(req: IncomingMessage, auth: Authorization, now: Date): Date {
  const amzDate = headerValue(req, "x-amz-date");
  const match = amzDate ? /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(amzDate) : null;
  if (!amzDate || !match || !auth.signedHeaders.includes("x-amz-date")) {
    throw new StsError("IncompleteSignature", "Authorization header requires existence of a signed 'X-Amz-Date' header.");
  }
  const [, y, mo, d, h, mi, s] = match;
  const signingDate = new Date(`${y}-${mo}-${d}T${h}:${mi}:${s}Z`);
  if (auth.scopeDate !== amzDate.slice(0, 8)) {
    throw signatureMismatch(`Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${auth.scopeDate}' != '${amzDate.slice(0, 8)}', from '${amzDate}'.`);
  }
  if (signingDate.getTime() < now.getTime() - MAX_SIGNATURE_SKEW_MS) {
    throw signatureMismatch(`Signature expired: ${amzDate} is now earlier than ${amzDateOf(new Date(now.getTime() - MAX_SIGNATURE_SKEW_MS))} (${amzDateOf(now)} - 15 min.)`);
  }
  if (signingDate.getTime() > now.getTime() + MAX_SIGNATURE_SKEW_MS) {
    throw signatureMismatch(`Signature not yet current: ${amzDate} is still later than ${amzDateOf(new Date(now.getTime() + MAX_SIGNATURE_SKEW_MS))} (${amzDateOf(now)} + 15 min.)`);
  }
  return signingDate;
}

/** The signer trusts x-amz-content-sha256 as the body's hash, so hold the header to the body actually received. */
function checkPayloadHash(req: IncomingMessage, body: Buffer): void {
  const declared = headerValue(req, "x-amz-content-sha256");
  if (declared !== undefined && declared !== createHash("sha256").update(body).digest("hex")) throw signatureMismatch();
}

function queryBag(url: URL): QueryParameterBag {
  const bag: QueryParameterBag = {};
  for (const key of new Set(url.searchParams.keys())) {
    const values = url.searchParams.getAll(key);
    bag[key] = values.length === 1 ? values[0]! : values;
  }
  return bag;
}

/** Re-signs the request as received, with the secret STS issued, using the SDK's own signer. */
async function expectedSignature(req: IncomingMessage, url: URL, body: Buffer, auth: Authorization, session: Session, signingDate: Date): Promise<string> {
  const headers: Record<string, string> = {};
  for (const name of auth.signedHeaders) {
    const value = headerValue(req, name);
    if (value === undefined) throw signatureMismatch();
    headers[name] = value;
  }
  const request: HttpRequest = { method: req.method ?? "POST", protocol: "http:", hostname: "", path: url.pathname, query: queryBag(url), headers, body };
  const signer = new SignatureV4({
    service: auth.service,
    region: auth.region,
    credentials: { accessKeyId: session.accessKeyId, secretAccessKey: session.secretAccessKey, sessionToken: session.sessionToken },
    sha256: Sha256,
    applyChecksum: false,
  });
  const signed = await signer.sign(request, { signingDate, signableHeaders: new Set(auth.signedHeaders) });
  return /Signature=([0-9a-f]{64})/.exec(String(signed.headers.authorization))?.[1] ?? "";
}

async function authenticate(call: StsCall): Promise<Session> {
  const { req, url, body, now, state } = call;
  const header = headerValue(req, "authorization");
  if (!header) throw new StsError("MissingAuthenticationToken", "Request is missing Authentication Token", 403);
  const auth = parseAuthorization(header);
  if (auth.service !== "sts") throw signatureMismatch("Credential should be scoped to correct service: 'sts'.");
  if (!auth.signedHeaders.includes("host")) throw new StsError("IncompleteSignature", "'Host' must be a 'SignedHeader' in the AWS Authorization.");
  const session = state.sessions.get(auth.accessKeyId);
  const token = headerValue(req, "x-amz-security-token");
  // Temporary credentials are valid only with their own session token, signed.
  if (!session || !token || !auth.signedHeaders.includes("x-amz-security-token") || !constantTimeEqual(token, session.sessionToken)) {
    throw invalidClientToken();
  }
  if (session.expiration.getTime() <= now.getTime()) throw new StsError("ExpiredToken", "The security token included in the request is expired", 403);
  const signingDate = checkRequestDate(req, auth, now);
  checkPayloadHash(req, body);
  if (!constantTimeEqual(await expectedSignature(req, url, body, auth, session, signingDate), auth.signature)) throw signatureMismatch();
  return session;
}

// ---------------------------------------------------------------------------------------
// Actions

interface StsCall {
  params: URLSearchParams;
  config: StsConfig;
  state: StsState;
  req: IncomingMessage;
  url: URL;
  body: Buffer;
  now: Date;
}

async function assumeRoleWithWebIdentity(call: StsCall): Promise<XmlFields> {
  const { config, now } = call;
  const input = readAssumeRoleInput(call.params, (v) => ({ webIdentityToken: readString(call.params, WEB_IDENTITY_TOKEN_RULE, v)! }));
  const sessionPolicies = resolveSessionPolicies(input, config);
  const identity = await verifyWebIdentityToken(input.webIdentityToken, config, now);
  const providerKey = providerKeyOf(identity.providerUrl);
  const providerArn = providerArnOf(config.accountId, identity.providerUrl);
  const role = findRole(config, input.roleArn);
  const conditionContext: ConditionContext = {
    [`${providerKey}:aud`]: identity.audience,
    [`${providerKey}:sub`]: identity.subject,
    [`${providerKey}:email`]: typeof identity.claims.email === "string" ? identity.claims.email : undefined,
    "sts:RoleSessionName": input.roleSessionName,
  };
  const trust = role && evaluateTrustPolicy(role.assumeRolePolicyDocument, {
    action: "sts:AssumeRoleWithWebIdentity",
    principal: { type: "Federated", ids: [providerArn] },
    conditionContext,
  });
  // AWS gives one answer for a missing role and a refusing trust policy, so roles cannot be probed.
  if (!role || !trust?.allowed) throw accessDenied("Not authorized to perform sts:AssumeRoleWithWebIdentity");
  const session = mintSession(call.state, {
    accountId: config.accountId,
    role,
    roleSessionName: input.roleSessionName,
    durationSeconds: sessionDuration(input.durationSeconds, role, false),
    sessionPolicies: sessionPolicies.documents,
  });
  return {
    Credentials: credentialsXml(session),
    SubjectFromWebIdentityToken: identity.subject,
    AssumedRoleUser: assumedRoleUserXml(session),
    Provider: providerArn,
    Audience: identity.audience,
    PackedPolicySize: sessionPolicies.packedPolicySize,
  };
}

async function assumeRole(call: StsCall): Promise<XmlFields> {
  const { config } = call;
  const caller = await authenticate(call);
  const input = readAssumeRoleInput(call.params, (v) => ({ externalId: readString(call.params, EXTERNAL_ID_RULE, v) }));
  const sessionPolicies = resolveSessionPolicies(input, config);
  const permission = evaluateSessionPermission(
    { rolePolicies: caller.rolePolicies, sessionPolicies: caller.sessionPolicies },
    { action: "sts:AssumeRole", resource: input.roleArn },
  );
  const role = findRole(config, input.roleArn);
  const trust = role && evaluateTrustPolicy(role.assumeRolePolicyDocument, {
    action: "sts:AssumeRole",
    // A trust policy may name the role, the session, the account root or the bare account id.
    principal: { type: "AWS", ids: [caller.roleArn, caller.assumedRoleArn, `arn:aws:iam::${caller.accountId}:root`, caller.accountId] },
    conditionContext: {
      "sts:ExternalId": input.externalId,
      "sts:RoleSessionName": input.roleSessionName,
      "aws:PrincipalArn": caller.roleArn,
      "aws:PrincipalAccount": caller.accountId,
    },
  });
  if (!permission.allowed || !role || !trust?.allowed) {
    throw accessDenied(`User: ${caller.assumedRoleArn} is not authorized to perform: sts:AssumeRole on resource: ${input.roleArn}`);
  }
  const session = mintSession(call.state, {
    accountId: config.accountId,
    role,
    roleSessionName: input.roleSessionName,
    // The caller is always a role session here, so this is role chaining.
    durationSeconds: sessionDuration(input.durationSeconds, role, true),
    sessionPolicies: sessionPolicies.documents,
  });
  return { Credentials: credentialsXml(session), AssumedRoleUser: assumedRoleUserXml(session), PackedPolicySize: sessionPolicies.packedPolicySize };
}

/** Needs no permission at all: AWS answers it even under an explicit deny. */
async function getCallerIdentity(call: StsCall): Promise<XmlFields> {
  const caller = await authenticate(call);
  return { Arn: caller.assumedRoleArn, UserId: caller.assumedRoleId, Account: caller.accountId };
}

const ACTIONS: Record<ActionName, (call: StsCall) => Promise<XmlFields>> = {
  AssumeRoleWithWebIdentity: assumeRoleWithWebIdentity,
  AssumeRole: assumeRole,
  GetCallerIdentity: getCallerIdentity,
};

function isActionName(value: string | null): value is ActionName {
  return value !== null && (ACTION_NAMES as string[]).includes(value);
}

const FAULT_ERRORS: Record<FaultCode, () => StsError> = {
  Throttling: () => new StsError("Throttling", "Rate exceeded"),
  IDPCommunicationError: idpUnreachable,
  InternalFailure: () => new StsError("InternalFailure", "The request processing has failed because of an unknown error, exception or failure.", 500, "Receiver"),
};

function takeFault(state: StsState, action: ActionName): StsError | undefined {
  const fault = state.faults.find((f) => f.remaining > 0 && (f.action === undefined || f.action === action));
  if (!fault) return undefined;
  fault.remaining--;
  state.faults = state.faults.filter((f) => f.remaining > 0);
  return FAULT_ERRORS[fault.code]();
}

/** awsQuery: form-encoded POST body (what the SDK sends) or the query string of a GET. */
function requestParams(req: IncomingMessage, url: URL, body: Buffer): URLSearchParams {
  const contentType = headerValue(req, "content-type") ?? "";
  if (req.method === "POST" && contentType.startsWith("application/x-www-form-urlencoded")) return new URLSearchParams(body.toString("utf8"));
  return url.searchParams;
}

async function runAction(state: StsState, req: IncomingMessage, url: URL, body: Buffer): Promise<{ action: ActionName; result: XmlFields }> {
  const params = requestParams(req, url, body);
  const action = params.get("Action");
  if (!action) throw new StsError("MissingAction", "Missing Action");
  const version = params.get("Version") ?? "NO_VERSION_SPECIFIED";
  if (!isActionName(action) || version !== STS_API_VERSION) throw new StsError("InvalidAction", `Could not find operation ${action} for version ${version}`);
  state.calls[action]++;
  try {
    const fault = takeFault(state, action);
    if (fault) throw fault;
    const config = await loadConfig(state.configPath);
    return { action, result: await ACTIONS[action]({ params, config, state, req, url, body, now: new Date() }) };
  } catch (err) {
    state.failures[action]++;
    throw err;
  }
}

async function handleSts(state: StsState, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const requestId = randomUUID();
  const headers = { "content-type": "text/xml", "x-amzn-RequestId": requestId };
  try {
    const { action, result } = await runAction(state, req, url, await readBody(req));
    res.writeHead(200, headers).end(successXml(action, result, requestId));
  } catch (err) {
    const stsError = err instanceof StsError ? err : unexpected(err);
    res.writeHead(stsError.status, headers).end(errorXml(stsError, requestId));
  }
}

function unexpected(err: unknown): StsError {
  console.error("STS stand-in: unexpected error:", err instanceof Error ? err.stack : err);
  return FAULT_ERRORS.InternalFailure();
}

// ---------------------------------------------------------------------------------------
// /_local/ endpoints for tests and the other stand-ins

function sessionView(session: Session) {
  return {
    accessKeyId: session.accessKeyId,
    secretAccessKey: session.secretAccessKey,
    sessionToken: session.sessionToken,
    expiration: session.expiration.toISOString(),
    roleArn: session.roleArn,
    assumedRoleArn: session.assumedRoleArn,
    assumedRoleId: session.assumedRoleId,
    accountId: session.accountId,
  };
}

interface AuthorizeBody {
  accessKeyId?: unknown;
  action?: unknown;
  resource?: unknown;
  context?: unknown;
}

function isConditionContext(value: unknown): value is ConditionContext {
  return isRecord(value) && Object.values(value).every((v) => v === undefined || typeof v === "string" || isStringList(v));
}

function authorize(state: StsState, body: AuthorizeBody): { status: number; body: unknown } {
  const { accessKeyId, action, resource, context = {} } = body;
  if (typeof accessKeyId !== "string" || typeof action !== "string" || typeof resource !== "string" || !isConditionContext(context)) {
    throw new HttpError(400, "body must be {accessKeyId: string, action: string, resource: string, context?: {key: string | string[]}}");
  }
  const session = state.sessions.get(accessKeyId);
  if (!session) return { status: 404, body: { error: `no session with access key id ${accessKeyId}` } };
  if (session.expiration.getTime() <= Date.now()) {
    return { status: 200, body: { allowed: false, reason: `the session expired at ${session.expiration.toISOString()}` } };
  }
  const decision = evaluateSessionPermission(
    { rolePolicies: session.rolePolicies, sessionPolicies: session.sessionPolicies },
    { action, resource, conditionContext: context },
  );
  return { status: 200, body: decision };
}

function addFault(state: StsState, body: { action?: unknown; code?: unknown; count?: unknown }): void {
  const { action, code, count } = body;
  if (action !== undefined && !isActionName(typeof action === "string" ? action : null)) throw new HttpError(400, `action must be one of ${ACTION_NAMES.join(", ")}`);
  if (typeof code !== "string" || !(code in FAULT_ERRORS)) throw new HttpError(400, `code must be one of ${Object.keys(FAULT_ERRORS).join(", ")}`);
  if (typeof count !== "number" || !Number.isInteger(count) || count < 1) throw new HttpError(400, "count must be a positive integer");
  state.faults.push({ action: action as ActionName | undefined, code: code as FaultCode, remaining: count });
}

async function routeLocal(state: StsState, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  const route = `${req.method} ${path}`;
  const sessionMatch = /^\/_local\/sessions\/([A-Z0-9]+)(\/expire)?$/.exec(path);
  if (sessionMatch) {
    const session = state.sessions.get(sessionMatch[1]!);
    if (!session) return sendJson(res, 404, { error: `no session with access key id ${sessionMatch[1]}` });
    if (sessionMatch[2] && req.method === "POST") {
      // Lets a test see how an expired session is refused without waiting 15 minutes.
      session.expiration = new Date(Date.now() - 1000);
      return sendJson(res, 200, sessionView(session));
    }
    if (!sessionMatch[2] && req.method === "GET") return sendJson(res, 200, sessionView(session));
  }
  switch (route) {
    case "POST /_local/authorize": {
      const { status, body } = authorize(state, await readJson<AuthorizeBody>(req));
      return sendJson(res, status, body);
    }
    case "GET /_local/stats":
      return sendJson(res, 200, { calls: state.calls, failures: state.failures });
    case "POST /_local/stats/reset":
      state.calls = zeroCounts();
      state.failures = zeroCounts();
      return sendJson(res, 200, { calls: state.calls, failures: state.failures });
    case "POST /_local/faults":
      addFault(state, await readJson(req));
      return sendJson(res, 200, { faults: state.faults });
    case "DELETE /_local/faults":
      state.faults = [];
      return sendJson(res, 200, { faults: state.faults });
    case "GET /_local/secrets":
      return sendJson(res, 200, { secretAccessKeys: state.issuedSecretAccessKeys, sessionTokens: state.issuedSessionTokens });
    default:
      return sendJson(res, 404, { error: `no local endpoint ${route}` });
  }
}

async function handleLocal(state: StsState, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  try {
    await routeLocal(state, req, res, path);
  } catch (err) {
    if (!(err instanceof HttpError)) throw err;
    sendJson(res, err.status, { error: err.message });
  }
}

// ---------------------------------------------------------------------------------------
// Server

export interface StsOptions {
  /** JSON config (see StsConfig), re-read on every STS call. */
  configPath: string;
  host?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
}

export interface StsStandIn {
  url: string;
  close(): Promise<void>;
}

export async function startSts(options: StsOptions): Promise<StsStandIn> {
  // Fail at start, not on the first call, when the config is broken.
  await loadConfig(options.configPath);
  const state: StsState = {
    configPath: options.configPath,
    sessions: new Map(),
    issuedSecretAccessKeys: [],
    issuedSessionTokens: [],
    calls: zeroCounts(),
    failures: zeroCounts(),
    faults: [],
  };
  const { server, url } = await listen(async (req, res) => {
    const requestUrl = new URL(req.url ?? "/", "http://localhost");
    if (requestUrl.pathname.startsWith("/_local/")) return handleLocal(state, req, res, requestUrl.pathname);
    if (requestUrl.pathname !== "/") return sendText(res, 404, "Not Found");
    return handleSts(state, req, res, requestUrl);
  }, options.port ?? 0, options.host ?? "127.0.0.1");
  return { url, close: () => closeServer(server) };
}

function parseArgs(argv: string[]): StsOptions {
  const value = (flag: string) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const configPath = value("--config");
  if (!configPath) throw new Error("usage: bun local/sts.ts --config <sts.json> [--port N] [--host 127.0.0.1]");
  const port = value("--port");
  return { configPath, host: value("--host"), port: port === undefined ? undefined : Number(port) };
}

function isMainModule(): boolean {
  const script = process.argv[1];
  return script !== undefined && import.meta.url === pathToFileURL(resolve(script)).href;
}

async function main(): Promise<void> {
  const sts = await startSts(parseArgs(process.argv.slice(2)));
  console.log(sts.url);
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => void sts.close().then(() => process.exit(0)));
  }
}

if (isMainModule()) {
  await main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(2);
  });
}
