// The Windmill stand-in: the slice of Windmill's HTTP API that windmill-client, the `wmill`
// CLI and the bundle's scripts use (OIDC issuer, resources, variables, resource types, jobs,
// sync), served on loopback. This file starts it and routes requests; each area of the API
// lives in its own module. Jobs run the way a worker runs them: see worker.ts.
import type { IncomingMessage, ServerResponse } from "node:http";
import { randomUUID } from "node:crypto";
import { closeServer, HttpError, listen, sendText } from "../shared/http.ts";
import { bypassProxyForLoopback } from "../shared/proxy.ts";
import { requireScope, TokenStore, userRoutes } from "./auth.ts";
import { jobRoutes, timeoutWaitResultFromEnv } from "./jobRoutes.ts";
import { JobEngine } from "./jobs.ts";
import { createOidcIssuer, type FlowPathClaim, type OidcFaults } from "./oidc.ts";
import { authedAs } from "./permissions.ts";
import { resolveJobArgs, resourceRoutes } from "./resources.ts";
import { scheduleWorkspaces } from "./schedules.ts";
import { createWorkspaceState, HUB_RESOURCE_TYPES, type JobRecord, type Route, type TokenInfo, type WorkspaceState } from "./state.ts";
import { syncRoutes } from "./sync.ts";
import { memberRoutes } from "./users.ts";

export type { FlowPathClaim, OidcFaults } from "./oidc.ts";

/** Enough parallel jobs to exercise parallel for-loops, few enough for a 2-core machine's memory. */
const DEFAULT_WORKERS = 8;

export interface WindmillOptions {
  /** Folder holding the workspace's scripts as `f/...ts` / `u/...ts` (usually the repo root). */
  workspaceDir: string;
  workspace?: string;
  port?: number;
  /** Script jobs running at once (a worker pool); default DEFAULT_WORKERS. */
  workers?: number;
  /** Extra env for every job (e.g. AWS_ENDPOINT_URL_STS pointing at the STS stand-in). */
  jobEnv?: Record<string, string>;
  /** A file keeping the tokens users create (and the admin's) across restarts (`npm run dev`'s state folder). */
  savedTokensFile?: string;
  /** The OIDC `flow_path` of a step in a loop iteration: `<flow>/forloop-<i>` ("iteration", default) or `<flow>` ("root"). */
  oidcFlowPathClaim?: FlowPathClaim;
  /** How long run_wait_result waits, in seconds (Windmill's TIMEOUT_WAIT_RESULT env var; default: that env var, else 600). */
  timeoutWaitResultSeconds?: number;
}

export interface WindmillStandIn {
  url: string;
  workspace: string;
  /** A token of the workspace's admin user (alice@example.com). */
  adminToken: string;
  issuer: string;
  /** A token as a job at `path` would hold, for exercising the library in-process (the admin's, or `username`'s). */
  createJobToken(job: { path: string | null; flowPath?: string | null; username?: string }): string;
  /** A user token for a member of the workspace (add members with POST workspaces/add_user). */
  createUserToken(username: string): string;
  /** A token created through the API before a restart, by its label (with `savedTokensFile`). */
  savedToken(label: string): string | undefined;
  /** Signs an ID token with arbitrary claims overrides (for refusal tests). */
  signIdToken(claims: Record<string, unknown>): Promise<string>;
  jobs: JobRecord[];
  faults: OidcFaults;
  /** Every ID token issued so far: the leak audit looks for them in job outputs. */
  issuedIdTokens: string[];
  close(): Promise<void>;
}

/** The label of the admin's token in the saved-tokens file. */
const ADMIN_TOKEN_LABEL = "admin (stand-in)";

export async function startWindmill(options: WindmillOptions): Promise<WindmillStandIn> {
  // Whoever starts a stand-in calls it on loopback, directly whatever proxy is set (proxy.ts).
  bypassProxyForLoopback();
  const workspaceId = options.workspace ?? "demo";
  let baseUrl = "";
  const oidc = await createOidcIssuer(() => baseUrl, options.oidcFlowPathClaim);
  const tokens = new TokenStore(options.savedTokensFile);
  const workspaces = new Map<string, WorkspaceState>([[workspaceId, createWorkspaceState(workspaceId)]]);
  const admin: TokenInfo = { workspace: workspaceId, email: "alice@example.com", username: "alice" };
  workspaces.get(workspaceId)?.users.set(admin.username, { username: admin.username, email: admin.email, isAdmin: true, operator: false });
  const adminToken = options.savedTokensFile ? (tokens.savedToken(ADMIN_TOKEN_LABEL) ?? tokens.create(admin, ADMIN_TOKEN_LABEL)) : tokens.issue(admin);

  function member(username: string): TokenInfo {
    const user = workspaces.get(workspaceId)?.users.get(username);
    if (!user) throw new Error(`${username} is not a member of workspace ${workspaceId}: add it with POST /api/w/${workspaceId}/workspaces/add_user`);
    return { workspace: workspaceId, email: user.email, username };
  }

  function issueJobToken(caller: TokenInfo, job: { id: string; path: string | null; flowPath: string | null }): string {
    const ws = workspaces.get(caller.workspace) as WorkspaceState;
    return tokens.issueJobToken({ ...caller, job }, authedAs(ws, caller.username, caller.email));
  }

  function createJobToken(job: { id?: string; path: string | null; flowPath?: string | null; username?: string }): string {
    return issueJobToken(member(job.username ?? admin.username), { id: job.id ?? randomUUID(), path: job.path, flowPath: job.flowPath ?? null });
  }

  function workspaceFor(info: TokenInfo, id: string): WorkspaceState {
    const state = workspaces.get(id);
    if (!state || info.workspace !== id) throw new HttpError(404, `Workspace ${id} not found or not visible to you`);
    return state;
  }

  const engine = new JobEngine({
    baseUrl: () => baseUrl,
    jobEnv: () => options.jobEnv ?? {},
    workspaceDir: options.workspaceDir,
    workers: options.workers ?? DEFAULT_WORKERS,
    issueJobToken: (caller, job) => issueJobToken({ workspace: caller.workspace, email: caller.email, username: caller.username }, job),
    revokeToken: (token) => tokens.revoke(token),
    resolveArgs: (state, args, caller, reserved) => resolveJobArgs(state, args, authedAs(state, caller.username, caller.email), reserved),
  });
  const stopScheduler = scheduleWorkspaces(workspaces, engine);

  const routes: Route[] = [
    ["GET", /^\/api\/version$/, (_i, res) => sendText(res, 200, "v1.818.0-local")],
    ...oidc.routes,
    ...userRoutes(tokens),
    ...resourceRoutes(),
    ...memberRoutes(),
    ...jobRoutes(engine, workspaces, { timeoutWaitResultSeconds: options.timeoutWaitResultSeconds ?? timeoutWaitResultFromEnv() }),
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
        cached ??= tokens.authenticate(req, url);
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
    issuer: oidc.issuer(),
    createJobToken,
    createUserToken: (username) => tokens.issue(member(username)),
    savedToken: (label) => tokens.savedToken(label),
    signIdToken: oidc.signIdToken,
    jobs: engine.records,
    faults: oidc.faults,
    issuedIdTokens: oidc.issuedIdTokens,
    async close() {
      stopScheduler();
      await closeServer(server);
      await engine.close();
    },
  };
}
