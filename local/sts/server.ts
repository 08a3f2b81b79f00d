// The AWS STS stand-in: AssumeRoleWithWebIdentity, AssumeRole (role chaining) and
// GetCallerIdentity over STS's awsQuery protocol, answering in STS's XML shapes so the real
// @aws-sdk/client-sts works against it unchanged. It is as strict as AWS: ID tokens are
// verified through the issuer's JWKS, trust and permission policies are evaluated, signed
// calls are re-signed with the issued secret and compared. Tests and the other stand-ins
// reach its bookkeeping through the JSON endpoints under /_local/, served here too.
//
// Run alone: bun local/sts/server.ts --config path/to/sts.json [--port N] [--host 127.0.0.1]
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { headerValue } from "../aws/headers.ts";
import { closeOnSignals, flagReader, isEntryModule } from "../shared/cli.ts";
import { bypassProxyForLoopback } from "../shared/proxy.ts";
import { closeServer, HttpError, listen, readBody, readJson, sendJson, sendText } from "../shared/http.ts";
import { loadConfig } from "./config.ts";
import { errorXml, internalFailure, StsErrorReply } from "./errors.ts";
import { addFault, takeFault } from "./faults.ts";
import type { ConditionContext } from "./iamPatterns.ts";
import { evaluateSessionPermission } from "./iamPolicy.ts";
import { isRecord, isStringList } from "./json.ts";
import { STS_API_VERSION } from "./limits.ts";
import { sessionKeys, timeKeys } from "./requestContext.ts";
import type { Session } from "./sessions.ts";
import { assumeRole, getCallerIdentity } from "./signedActions.ts";
import { isActionName, zeroCounts, type ActionName, type StsCall, type StsState } from "./state.ts";
import { assumeRoleWithWebIdentity } from "./webIdentity.ts";
import { successXml, type XmlFields } from "./xml.ts";

// ---------------------------------------------------------------------------------------
// STS actions

const ACTIONS: Record<ActionName, (call: StsCall) => Promise<XmlFields>> = {
  AssumeRoleWithWebIdentity: assumeRoleWithWebIdentity,
  AssumeRole: assumeRole,
  GetCallerIdentity: getCallerIdentity,
};

/** awsQuery: form-encoded POST body (what the SDK sends) or the query string of a GET. */
function requestParams(req: IncomingMessage, url: URL, body: Buffer): URLSearchParams {
  const contentType = headerValue(req, "content-type") ?? "";
  if (req.method === "POST" && contentType.startsWith("application/x-www-form-urlencoded")) return new URLSearchParams(body.toString("utf8"));
  return url.searchParams;
}

async function runAction(state: StsState, req: IncomingMessage, url: URL, body: Buffer): Promise<{ action: ActionName; result: XmlFields }> {
  const params = requestParams(req, url, body);
  const action = params.get("Action");
  if (!action) throw new StsErrorReply("MissingAction", "Missing Action");
  const version = params.get("Version") ?? "NO_VERSION_SPECIFIED";
  if (!isActionName(action) || version !== STS_API_VERSION) throw new StsErrorReply("InvalidAction", `Could not find operation ${action} for version ${version}`);
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
    const stsError = err instanceof StsErrorReply ? err : unexpected(err);
    res.writeHead(stsError.status, headers).end(errorXml(stsError, requestId));
  }
}

function unexpected(err: unknown): StsErrorReply {
  console.error("STS stand-in: unexpected error:", err instanceof Error ? err.stack : err);
  return internalFailure();
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
  // The gate sends what only it knows (s3:prefix, aws:SourceIp...); the session's own keys are STS's to tell.
  const conditionContext = { ...context, ...sessionKeys(session), ...timeKeys(new Date()) };
  const decision = evaluateSessionPermission(
    { rolePolicies: session.rolePolicies, sessionPolicies: session.sessionPolicies },
    { action, resource, conditionContext },
  );
  return { status: 200, body: decision };
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
  // Whoever starts a stand-in calls it on loopback, directly whatever proxy is set (proxy.ts).
  bypassProxyForLoopback();
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
  const value = flagReader(argv);
  const configPath = value("--config");
  if (!configPath) throw new Error("usage: bun local/sts/server.ts --config <sts.json> [--port N] [--host 127.0.0.1]");
  const port = value("--port");
  return { configPath, host: value("--host"), port: port === undefined ? undefined : Number(port) };
}

async function main(): Promise<void> {
  const sts = await startSts(parseArgs(process.argv.slice(2)));
  console.log(sts.url);
  closeOnSignals(() => sts.close());
}

if (isEntryModule(import.meta.url)) {
  await main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(2);
  });
}
