// The Windmill stand-in: the slice of Windmill's HTTP API that windmill-client and the
// bundle's scripts use (OIDC issuer, resources, variables, resource types, jobs), served
// on loopback. Jobs run the way a worker runs them: see windmill_worker.ts.
import type { IncomingMessage, ServerResponse } from "node:http";
import { randomBytes, randomUUID } from "node:crypto";
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from "jose";
import { closeServer, HttpError, listen, readJson, sendJson, sendText } from "./shared/http.ts";
import { JobEngine, jobView, type Caller, type JobRecord } from "./windmill_jobs.ts";
import { startScheduler } from "./windmill_schedules.ts";
import { createSyncState, dependencyJobResult, syncRoutes, type SyncState } from "./windmill_sync.ts";

/** Windmill's default OIDC token lifetime when the caller passes no expires_in. */
const DEFAULT_ID_TOKEN_SECONDS = 48 * 3600;
/** Enough parallel jobs to exercise parallel for-loops, few enough for a 2-core machine's memory. */
const DEFAULT_WORKERS = 8;
/** The key id Windmill puts in its JWT headers and JWKS. */
const OIDC_KEY_ID = "windmill";

export interface WindmillOptions {
  /** Folder holding the workspace's scripts as `f/...ts` / `u/...ts` (usually the repo root). */
  workspaceDir: string;
  workspace?: string;
  port?: number;
  /** Script jobs running at once (a worker pool); default DEFAULT_WORKERS. */
  workers?: number;
  /** Extra env for every job (e.g. AWS_ENDPOINT_URL_STS pointing at the STS stand-in). */
  jobEnv?: Record<string, string>;
}

export type { JobRecord } from "./windmill_jobs.ts";

export interface TokenInfo {
  workspace: string;
  email: string;
  username: string;
  /** Set for job tokens: what the OIDC claims describe. */
  job?: { id: string; path: string | null; flowPath: string | null };
  /** Set for scoped tokens (webhooks): e.g. `jobs:run:scripts:f/x/y`; nothing else is allowed. */
  scopes?: string[];
}

export interface Variable {
  value: string;
  isSecret: boolean;
  description: string;
}

export interface Resource {
  value: unknown;
  resourceType: string;
  description: string;
}

export interface ResourceType {
  name: string;
  schema: unknown;
  description: string;
}

export interface WorkspaceState {
  id: string;
  variables: Map<string, Variable>;
  resources: Map<string, Resource>;
  resourceTypes: Map<string, ResourceType>;
  /** What `wmill sync push` stores: scripts, flows, folders, schedules. */
  sync: SyncState;
}

/** Hub types a real instance already has; the bundle's custom types must be pushed. */
const HUB_RESOURCE_TYPES: ResourceType[] = [
  {
    name: "aws_oidc",
    description: "AWS role to assume with Windmill's OIDC token",
    schema: {
      type: "object",
      required: ["roleArn", "region"],
      properties: { roleArn: { type: "string" }, region: { type: "string" } },
    },
  },
];

/** Switches tests flip to make the issuer misbehave the way a misconfigured instance would. */
export interface OidcFaults {
  /** Shifts iat/exp of issued ID tokens (a Windmill host whose clock is off). */
  clockSkewSeconds: number;
  /** Signs ID tokens with a key that is not in the JWKS (a rotated or forged key). */
  signWithUnknownKey: boolean;
  /** Puts another `iss` in ID tokens (a token from a foreign issuer). */
  issuerOverride: string | null;
  /** The JWKS endpoint answers 503 (an issuer AWS cannot reach). */
  jwksUnavailable: boolean;
}

export interface WindmillStandIn {
  url: string;
  workspace: string;
  /** A token of the workspace's admin user (alice@example.com). */
  adminToken: string;
  issuer: string;
  /** A token as a job at `path` would hold, for exercising the library in-process. */
  createJobToken(job: { path: string | null; flowPath?: string | null }): string;
  /** Signs an ID token with arbitrary claims overrides (for refusal tests). */
  signIdToken(claims: Record<string, unknown>): Promise<string>;
  jobs: JobRecord[];
  faults: OidcFaults;
  /** Every ID token issued so far: the leak audit looks for them in job outputs. */
  issuedIdTokens: string[];
  close(): Promise<void>;
}

export async function startWindmill(options: WindmillOptions): Promise<WindmillStandIn> {
  const workspaceId = options.workspace ?? "demo";
  const { publicKey, privateKey } = await generateKeyPair("RS256", { extractable: true });
  const unknownKey = (await generateKeyPair("RS256")).privateKey;
  const faults: OidcFaults = { clockSkewSeconds: 0, signWithUnknownKey: false, issuerOverride: null, jwksUnavailable: false };
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: OIDC_KEY_ID, alg: "RS256", use: "sig" };
  const tokens = new Map<string, TokenInfo>();
  const workspaces = new Map<string, WorkspaceState>();
  const issuedIdTokens: string[] = [];
  const admin: TokenInfo = { workspace: workspaceId, email: "alice@example.com", username: "alice" };
  const adminToken = newToken();
  tokens.set(adminToken, admin);
  workspaces.set(workspaceId, {
    id: workspaceId,
    sync: createSyncState(),
    variables: new Map(),
    resources: new Map(),
    resourceTypes: new Map(HUB_RESOURCE_TYPES.map((t) => [t.name, t])),
  });

  let baseUrl = "";
  const issuer = () => `${baseUrl}/api/oidc/`;

  async function signIdToken(claims: Record<string, unknown>): Promise<string> {
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: "RS256", kid: OIDC_KEY_ID, typ: "JWT" })
      .sign((faults.signWithUnknownKey ? unknownKey : privateKey) as CryptoKey);
    issuedIdTokens.push(token);
    return token;
  }

  async function issueIdToken(info: TokenInfo, audience: string, expiresIn: number): Promise<string> {
    if (!info.job) throw new HttpError(400, "OIDC tokens are issued only to jobs: call getIdToken from a script or flow step");
    const now = Math.floor(Date.now() / 1000) + faults.clockSkewSeconds;
    const { path, flowPath, id } = info.job;
    return signIdToken({
      iss: faults.issuerOverride ?? issuer(),
      aud: [audience],
      iat: now,
      exp: now + expiresIn,
      sub: `${info.email}::${path ?? "no_path"}::${flowPath ?? "no_flow"}::${info.workspace}`,
      email: info.email,
      email_verified: true,
      job_id: id,
      path,
      flow_path: flowPath,
      groups: [],
      username: info.username,
      workspace: info.workspace,
    });
  }

  function createJobToken(job: { id?: string; path: string | null; flowPath?: string | null }): string {
    const token = newToken();
    tokens.set(token, { ...admin, job: { id: job.id ?? randomUUID(), path: job.path, flowPath: job.flowPath ?? null } });
    return token;
  }

  function authenticate(req: IncomingMessage, url: URL): TokenInfo {
    const header = req.headers.authorization ?? "";
    const token = header.startsWith("Bearer ") ? header.slice(7) : (url.searchParams.get("token") ?? cookieToken(req));
    const info = token ? tokens.get(token) : undefined;
    if (!info) throw new HttpError(401, "Unauthorized: missing or invalid token");
    return info;
  }

  /** Scoped tokens (webhooks) may only do what their scopes name. */
  function requireScope(info: TokenInfo, needed: string): void {
    if (info.scopes && !info.scopes.includes(needed)) {
      throw new HttpError(403, `Forbidden: this token is scoped to ${info.scopes.join(", ")} and cannot ${needed}`);
    }
  }

  /** `jobs_u` endpoints take no token in Windmill: the job id (a UUID) is the capability. */
  function visibleJob(c: RouteContext, id: string): JobRecord {
    const job = engine.get(id);
    if (!job || !workspaces.has(c.match[1])) throw new HttpError(404, `Job ${id} not found`);
    return job;
  }

  function workspaceFor(info: TokenInfo, id: string): WorkspaceState {
    const state = workspaces.get(id);
    if (!state || info.workspace !== id) throw new HttpError(404, `Workspace ${id} not found or not visible to you`);
    return state;
  }

  function interpolate(state: WorkspaceState, value: unknown, depth = 0): unknown {
    if (depth > 10) throw new HttpError(400, "Resource references nest too deeply");
    if (typeof value === "string") {
      if (value.startsWith("$var:")) return getVariable(state, value.slice(5)).value;
      if (value.startsWith("$res:")) return interpolate(state, getResource(state, value.slice(5)).value, depth + 1);
      return value;
    }
    if (Array.isArray(value)) return value.map((v) => interpolate(state, v, depth + 1));
    if (value && typeof value === "object") {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(state, v, depth + 1)]));
    }
    return value;
  }

  const engine = new JobEngine({
    baseUrl: () => baseUrl,
    jobEnv: () => options.jobEnv ?? {},
    workspaceDir: options.workspaceDir,
    workers: options.workers ?? DEFAULT_WORKERS,
    issueJobToken: (caller, job) => {
      const token = newToken();
      tokens.set(token, { workspace: caller.workspace, email: caller.email, username: caller.username, job });
      return token;
    },
    revokeToken: (token) => tokens.delete(token),
    resolveArgs: (state, args) => interpolate(state, args) as Record<string, unknown>,
  });

  const stopScheduler = startScheduler(
    () => [...workspaces.values()].flatMap((ws) =>
      [...ws.sync.schedules.values()].map((s) => ({
        workspace: ws.id, email: s.email, path: s.path, schedule: s.schedule, timezone: s.timezone,
        script_path: s.script_path, is_flow: s.is_flow, enabled: s.enabled ?? false,
        args: (s.args ?? {}) as Record<string, unknown>, no_flow_overlap: s.no_flow_overlap,
      }))),
    {
      async run(spec) {
        const ws = workspaces.get(spec.workspace) as WorkspaceState;
        const caller: Caller = { workspace: spec.workspace, email: spec.email, username: spec.email.split("@")[0] };
        const job = engine.start(caller, ws, spec.is_flow ? "flow" : "script", spec.script_path, spec.args ?? {}, { schedulePath: spec.path });
        await engine.wait(job.id);
      },
      onError(spec, err) {
        console.error(`Windmill stand-in: schedule ${spec.path} could not start: ${(err as Error).message}`);
      },
    },
  );

  function startJob(c: RouteContext, kind: "script" | "flow", path: string, args: Record<string, unknown>): JobRecord {
    const info = c.token();
    requireScope(info, `jobs:run:${kind === "flow" ? "flows" : "scripts"}:${path}`);
    const caller: Caller = { workspace: info.workspace, email: info.email, username: info.username };
    return engine.start(caller, c.ws(), kind, path, args ?? {});
  }

  const routes: Route[] = [
    ["GET", /^\/api\/version$/, (_i, res) => sendText(res, 200, "v1.818.0-local")],
    ["GET", /^\/api\/oidc\/\.well-known\/openid-configuration$/, (_i, res) =>
      sendJson(res, 200, {
        issuer: issuer(),
        jwks_uri: `${baseUrl}/api/oidc/jwks`,
        response_types_supported: ["id_token"],
        subject_types_supported: ["public"],
        id_token_signing_alg_values_supported: ["RS256"],
        claims_supported: ["sub", "aud", "exp", "iat", "iss", "email", "email_verified", "job_id", "path", "flow_path", "groups", "username", "workspace"],
      })],
    ["GET", /^\/api\/oidc\/jwks$/, (_i, res) =>
      faults.jwksUnavailable ? sendText(res, 503, "Service Unavailable") : sendJson(res, 200, { keys: [jwk] })],
    ["POST", /^\/api\/w\/([^/]+)\/oidc\/token\/(.+)$/, async (c, res) => {
      workspaceFor(c.token(), c.match[1]);
      const expiresIn = Number(c.url.searchParams.get("expires_in") ?? DEFAULT_ID_TOKEN_SECONDS);
      if (!Number.isInteger(expiresIn) || expiresIn <= 0) throw new HttpError(400, "expires_in must be a positive number of seconds");
      sendText(res, 200, await issueIdToken(c.token(), decodeURIComponent(c.match[2]), expiresIn));
    }],
    ["GET", /^\/api\/w\/([^/]+)\/users\/whoami$/, (c, res) => {
      const t = c.token();
      sendJson(res, 200, { email: t.email, username: t.username, is_admin: true, operator: false, groups: [], folders: [] });
    }],
    ["GET", /^\/api\/w\/([^/]+)\/variables\/exists\/(.+)$/, (c, res) => sendJson(res, 200, c.ws().variables.has(c.match[2]))],
    ["GET", /^\/api\/w\/([^/]+)\/variables\/get_value\/(.+)$/, (c, res) => sendJson(res, 200, getVariable(c.ws(), c.match[2]).value)],
    ["GET", /^\/api\/w\/([^/]+)\/variables\/get\/(.+)$/, (c, res) => {
      const v = getVariable(c.ws(), c.match[2]);
      sendJson(res, 200, { path: c.match[2], value: v.isSecret ? undefined : v.value, is_secret: v.isSecret, description: v.description });
    }],
    ["GET", /^\/api\/w\/([^/]+)\/variables\/list$/, (c, res) => {
      const start = c.url.searchParams.get("path_start") ?? "";
      const rows = [...c.ws().variables.entries()]
        .filter(([p]) => p.startsWith(start))
        .map(([p, v]) => ({ path: p, value: v.isSecret ? undefined : v.value, is_secret: v.isSecret, description: v.description }));
      sendJson(res, 200, rows);
    }],
    ["POST", /^\/api\/w\/([^/]+)\/variables\/create$/, async (c, res) => {
      const body = await readJson<{ path: string; value: string; is_secret?: boolean; description?: string }>(c.req);
      const state = c.ws();
      checkPath(body.path);
      if (typeof body.value !== "string") throw new HttpError(400, "variable value must be a string");
      if (state.variables.has(body.path)) throw new HttpError(400, `Variable ${body.path} already exists`);
      state.variables.set(body.path, { value: body.value, isSecret: body.is_secret ?? false, description: body.description ?? "" });
      sendText(res, 201, body.path);
    }],
    ["POST", /^\/api\/w\/([^/]+)\/variables\/update\/(.+)$/, async (c, res) => {
      const body = await readJson<{ value?: string; is_secret?: boolean; description?: string }>(c.req);
      const current = getVariable(c.ws(), c.match[2]);
      c.ws().variables.set(c.match[2], {
        value: body.value ?? current.value,
        isSecret: body.is_secret ?? current.isSecret,
        description: body.description ?? current.description,
      });
      sendText(res, 200, c.match[2]);
    }],
    ["DELETE", /^\/api\/w\/([^/]+)\/variables\/delete\/(.+)$/, (c, res) => {
      getVariable(c.ws(), c.match[2]);
      c.ws().variables.delete(c.match[2]);
      sendText(res, 200, `variable ${c.match[2]} deleted`);
    }],
    ["GET", /^\/api\/w\/([^/]+)\/resources\/exists\/(.+)$/, (c, res) => sendJson(res, 200, c.ws().resources.has(c.match[2]))],
    ["GET", /^\/api\/w\/([^/]+)\/resources\/get_value_interpolated\/(.+)$/, (c, res) =>
      sendJson(res, 200, interpolate(c.ws(), getResource(c.ws(), c.match[2]).value))],
    ["GET", /^\/api\/w\/([^/]+)\/resources\/get_value\/(.+)$/, (c, res) => sendJson(res, 200, getResource(c.ws(), c.match[2]).value)],
    ["GET", /^\/api\/w\/([^/]+)\/resources\/get\/(.+)$/, (c, res) => {
      const r = getResource(c.ws(), c.match[2]);
      sendJson(res, 200, { workspace_id: c.match[1], path: c.match[2], value: r.value, resource_type: r.resourceType, description: r.description, is_oauth: false });
    }],
    ["POST", /^\/api\/w\/([^/]+)\/resources\/create$/, async (c, res) => {
      const body = await readJson<{ path: string; value: unknown; resource_type: string; description?: string }>(c.req);
      const state = c.ws();
      checkPath(body.path);
      if (!state.resourceTypes.has(body.resource_type)) {
        throw new HttpError(400, `Resource type ${body.resource_type} does not exist in workspace ${c.match[1]}: push it first (wmill sync push)`);
      }
      const exists = state.resources.has(body.path);
      if (exists && c.url.searchParams.get("update_if_exists") !== "true") throw new HttpError(400, `Resource ${body.path} already exists`);
      state.resources.set(body.path, { value: body.value, resourceType: body.resource_type, description: body.description ?? "" });
      sendText(res, 201, body.path);
    }],
    ["POST", /^\/api\/w\/([^/]+)\/resources\/update_value\/(.+)$/, async (c, res) => {
      const body = await readJson<{ value: unknown }>(c.req);
      const current = getResource(c.ws(), c.match[2]);
      c.ws().resources.set(c.match[2], { ...current, value: body.value });
      sendText(res, 200, c.match[2]);
    }],
    ["DELETE", /^\/api\/w\/([^/]+)\/resources\/delete\/(.+)$/, (c, res) => {
      getResource(c.ws(), c.match[2]);
      c.ws().resources.delete(c.match[2]);
      sendText(res, 200, `resource ${c.match[2]} deleted`);
    }],
    ["GET", /^\/api\/w\/([^/]+)\/resources\/type\/exists\/(.+)$/, (c, res) => sendJson(res, 200, c.ws().resourceTypes.has(c.match[2]))],
    ["GET", /^\/api\/w\/([^/]+)\/resources\/type\/list$/, (c, res) =>
      sendJson(res, 200, [...c.ws().resourceTypes.values()].map((t) => ({ ...t, workspace_id: c.match[1] })))],
    ["POST", /^\/api\/w\/([^/]+)\/resources\/type\/create$/, async (c, res) => {
      const body = await readJson<ResourceType>(c.req);
      if (!/^[a-z][a-z0-9_]*$/.test(body.name ?? "")) throw new HttpError(400, `Resource type name ${body.name} must be snake_case`);
      c.ws().resourceTypes.set(body.name, { name: body.name, schema: body.schema, description: body.description ?? "" });
      sendText(res, 201, body.name);
    }],
    ["POST", /^\/api\/w\/([^/]+)\/job_metrics\/set_progress\/([^/]+)$/, async (c, res) => {
      const body = await readJson<{ percent: number }>(c.req);
      const job = engine.get(c.match[2]);
      if (!job) throw new HttpError(404, `Job ${c.match[2]} not found`);
      // Windmill clamps progress to 0..99 and never lets it go back.
      job.progress = Math.max(job.progress ?? 0, Math.min(99, Math.max(0, Math.floor(body.percent))));
      sendJson(res, 200, "progress set");
    }],
    ["POST", /^\/api\/w\/([^/]+)\/jobs\/run_wait_result\/(p|f)\/(.+)$/, async (c, res) => {
      const job = startJob(c, c.match[2] === "f" ? "flow" : "script", c.match[3], await readJson<Record<string, unknown>>(c.req));
      const done = await engine.wait(job.id);
      sendJson(res, done.success ? 200 : 500, done.result);
    }],
    ["POST", /^\/api\/w\/([^/]+)\/jobs\/run\/(p|f)\/(.+)$/, async (c, res) => {
      const job = startJob(c, c.match[2] === "f" ? "flow" : "script", c.match[3], await readJson<Record<string, unknown>>(c.req));
      sendText(res, 201, job.id);
    }],
    ["GET", /^\/api\/w\/([^/]+)\/jobs_u\/get\/([^/]+)$/, (c, res) => sendJson(res, 200, jobView(visibleJob(c, c.match[2])))],
    ["GET", /^\/api\/w\/([^/]+)\/jobs_u\/get_logs\/([^/]+)$/, (c, res) => sendText(res, 200, visibleJob(c, c.match[2]).logs)],
    ["GET", /^\/api\/w\/([^/]+)\/jobs_u\/completed\/get_result\/([^/]+)$/, (c, res) => {
      const job = visibleJob(c, c.match[2]);
      if (job.status === "running") throw new HttpError(404, `Job ${job.id} is not completed yet`);
      sendJson(res, 200, job.result);
    }],
    ["GET", /^\/api\/w\/([^/]+)\/jobs_u\/completed\/get_result_maybe\/([^/]+)$/, (c, res) => {
      const lockJob = dependencyJobResult(workspaces.get(c.match[1])?.sync, c.match[2]);
      if (lockJob) return sendJson(res, 200, lockJob);
      const job = visibleJob(c, c.match[2]);
      const completed = job.status !== "running";
      sendJson(res, 200, { completed, started: true, success: completed ? job.success : undefined, result: completed ? job.result : undefined });
    }],
    ["GET", /^\/api\/w\/([^/]+)\/jobs\/list$/, (c, res) => {
      c.ws();
      sendJson(res, 200, engine.records.filter((j) => !c.url.searchParams.get("parent_job") || j.parentJobId === c.url.searchParams.get("parent_job")).map(jobView));
    }],
    ["POST", /^\/api\/users\/tokens\/create$/, async (c, res) => {
      const body = await readJson<{ label?: string; expiration?: string; scopes?: string[] }>(c.req);
      const owner = c.token();
      if (owner.job || owner.scopes) throw new HttpError(403, "Only a user token can create tokens");
      const token = newToken();
      tokens.set(token, { workspace: owner.workspace, email: owner.email, username: owner.username, scopes: body.scopes?.length ? body.scopes : undefined });
      sendText(res, 201, token);
    }],
    ...syncRoutes({ hubResourceTypes: new Set(HUB_RESOURCE_TYPES.map((t) => t.name)), workspaceDir: options.workspaceDir }),
  ];

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", baseUrl);
    for (const [method, pattern, fn] of routes) {
      const match = method === req.method ? pattern.exec(url.pathname) : null;
      if (!match) continue;
      const decoded = match.map((m) => (m === undefined ? m : decodeURIComponent(m))) as RegExpExecArray;
      let cached: TokenInfo | undefined;
      const scopeAware = /\/jobs\/run(_wait_result)?\//.test(url.pathname);
      const token = () => {
        cached ??= authenticate(req, url);
        if (cached.scopes && !scopeAware) requireScope(cached, `${req.method} ${url.pathname}`);
        return cached;
      };
      await fn({ req, url, match: decoded, token, ws: () => workspaceFor(token(), decoded[1]) }, res);
      return;
    }
    throw new HttpError(404, `No route for ${req.method} ${url.pathname}`);
  }

  const { server, url } = await listen(handle, options.port ?? 0);
  baseUrl = url;
  return {
    url,
    workspace: workspaceId,
    adminToken,
    issuer: issuer(),
    createJobToken,
    signIdToken,
    jobs: engine.records,
    faults,
    issuedIdTokens,
    async close() {
      stopScheduler();
      await closeServer(server);
      await engine.close();
    },
  };
}

export interface RouteContext {
  req: IncomingMessage;
  url: URL;
  match: RegExpExecArray;
  token(): TokenInfo;
  ws(): WorkspaceState;
}
export type Route = [string, RegExp, (c: RouteContext, res: ServerResponse) => Promise<void> | void];

function newToken(): string {
  return randomBytes(24).toString("base64url");
}

/** Windmill also reads the token from the `token` cookie (the CLI sends it that way for lock jobs). */
function cookieToken(req: IncomingMessage): string | null {
  const match = /(?:^|;\s*)token=([^;]+)/.exec(req.headers.cookie ?? "");
  return match ? decodeURIComponent(match[1]) : null;
}

function getVariable(state: WorkspaceState, path: string): Variable {
  const v = state.variables.get(path);
  if (!v) throw new HttpError(404, `Variable not found at ${path}`);
  return v;
}

function getResource(state: WorkspaceState, path: string): Resource {
  const r = state.resources.get(path);
  if (!r) throw new HttpError(404, `Resource not found at ${path}`);
  return r;
}

/** Windmill paths are `u/<user>/<name>` or `f/<folder>/<name>`. */
function checkPath(path: string): void {
  if (!/^(u|f)\/[\w-]+\/[\w\-./]+$/.test(path ?? "")) {
    throw new HttpError(400, `Invalid path ${JSON.stringify(path)}: expected u/<user>/<name> or f/<folder>/<name>`);
  }
}
