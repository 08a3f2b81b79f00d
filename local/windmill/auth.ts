// Who is calling the Windmill stand-in: the tokens it issued (user, job and scoped webhook
// tokens), where a request carries one, what a scoped token may do, and the whoami and token
// routes.
import { createHmac, randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { HttpError, readJson, sendJson, sendText } from "../shared/http.ts";
import { authedAs, type Authed } from "./permissions.ts";
import { EPOCH, type JsonObject } from "./records.ts";
import type { Route, TokenInfo } from "./state.ts";

/** A job token's lifetime: Windmill gives it the job's timeout; the stand-in revokes it when the job ends. */
const JOB_TOKEN_SECONDS = 12 * 3600;

export class TokenStore {
  private readonly tokens = new Map<string, TokenInfo>();
  private readonly jwtSecret = randomBytes(32);

  /** A new token for `info`. */
  issue(info: TokenInfo): string {
    const token = randomBytes(24).toString("base64url");
    this.tokens.set(token, info);
    return token;
  }

  /**
   * A job's token, shaped as Windmill's: `"jwt_" + JWT` whose claims are the permissioned-as
   * user's (windmill-common/src/auth.rs `create_jwt_token`, `JWTAuthClaims`: email, username,
   * is_admin, is_operator, groups, folders as (name, write, owner), workspace_id, job_id, exp).
   */
  issueJobToken(info: TokenInfo & { job: NonNullable<TokenInfo["job"]> }, who: Authed): string {
    const now = Math.floor(Date.now() / 1000);
    const claims = {
      email: who.email, username: who.username, is_admin: who.isAdmin, is_operator: who.operator, groups: who.groups,
      folders: who.folders.map((f) => [f.name, f.write, f.owner]), label: null, workspace_id: info.workspace, workspace_ids: null,
      exp: now + JOB_TOKEN_SECONDS, job_id: info.job.id, scopes: info.scopes ?? null, audit_span: null,
    };
    const part = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
    const unsigned = `${part({ alg: "HS256", typ: "JWT" })}.${part(claims)}`;
    const token = `jwt_${unsigned}.${createHmac("sha256", this.jwtSecret).update(unsigned).digest("base64url")}`;
    this.tokens.set(token, info);
    return token;
  }

  revoke(token: string): void {
    this.tokens.delete(token);
  }

  authenticate(req: IncomingMessage, url: URL): TokenInfo {
    const header = req.headers.authorization ?? "";
    const token = header.startsWith("Bearer ") ? header.slice(7) : (url.searchParams.get("token") ?? cookieToken(req));
    const info = token ? this.tokens.get(token) : undefined;
    if (!info) throw new HttpError(401, "Unauthorized: missing or invalid token");
    return info;
  }
}

/** Windmill also reads the token from the `token` cookie (the CLI sends it that way for lock jobs). */
function cookieToken(req: IncomingMessage): string | null {
  const match = /(?:^|;\s*)token=([^;]+)/.exec(req.headers.cookie ?? "");
  return match ? decodeURIComponent(match[1]) : null;
}

/** Scoped tokens (webhooks) may only do what their scopes name. */
export function requireScope(info: TokenInfo, needed: string): void {
  if (info.scopes && !info.scopes.includes(needed)) {
    throw new HttpError(403, `Forbidden: this token is scoped to ${info.scopes.join(", ")} and cannot ${needed}`);
  }
}

/** Who the caller is, as the CLI and windmill-client ask it, and the tokens a user may create. */
export function userRoutes(tokens: TokenStore): Route[] {
  return [
    // windmill-api/src/users.rs `whoami` (UserInfo): folders_read = every folder it can read, folders = writable ones.
    ["GET", /^\/api\/w\/([^/]+)\/users\/whoami$/, (c, res) => {
      const t = c.token();
      sendJson(res, 200, { workspace_id: t.workspace, ...workspaceUser(authedAs(c.ws(), t.username, t.email)) });
    }],
    ["GET", /^\/api\/users\/whoami$/, (c, res) => {
      const t = c.token();
      sendJson(res, 200, {
        email: t.email, username: t.username, login_type: "password", super_admin: false, verified: true,
        first_time_user: false, role_source: "manual", disabled: false,
      });
    }],
    ["GET", /^\/api\/workspaces\/users$/, (c, res) => {
      const t = c.token();
      sendJson(res, 200, {
        email: t.email,
        workspaces: [{ id: t.workspace, name: t.workspace, username: t.username, color: "", parent_workspace_id: null, is_dev_workspace: false, disabled: false }],
      });
    }],
    // windmill-api/src/workspaces.rs list_workspaces: the caller's workspaces, which `wmill workspace add` prints
    // (id, name) when the id it was given does not exist; the other Workspace fields were not read and are left null.
    ["GET", /^\/api\/workspaces\/list$/, (c, res) => {
      const t = c.token();
      sendJson(res, 200, [{ id: t.workspace, name: t.workspace, owner: t.email, domain: null, color: null, parent_workspace_id: null }]);
    }],
    // Each stand-in token belongs to one workspace, and the stand-in serves one per instance.
    ["POST", /^\/api\/workspaces\/exists$/, async (c, res) => {
      const body = await readJson<{ id?: string }>(c.req);
      sendJson(res, 200, body.id === c.token().workspace);
    }],
    ["GET", /^\/api\/w\/([^/]+)\/users\/list$/, (c, res) => {
      const ws = c.ws();
      c.token();
      sendJson(res, 200, [...ws.users.values()].map((u) => workspaceUser(authedAs(ws, u.username, u.email))));
    }],
    ["POST", /^\/api\/users\/tokens\/create$/, async (c, res) => {
      const body = await readJson<{ label?: string; expiration?: string; scopes?: string[] }>(c.req);
      const owner = c.token();
      if (owner.job || owner.scopes) throw new HttpError(403, "Only a user token can create tokens");
      const token = tokens.issue({ workspace: owner.workspace, email: owner.email, username: owner.username, scopes: body.scopes?.length ? body.scopes : undefined });
      sendText(res, 201, token);
    }],
  ];
}

function workspaceUser(a: Authed): JsonObject {
  return {
    email: a.email, username: a.username, is_admin: a.isAdmin, is_super_admin: false, operator: a.operator, disabled: false,
    created_at: EPOCH, groups: a.groups, folders: a.folders.filter((f) => f.write).map((f) => f.name),
    folders_read: a.folders.map((f) => f.name), folders_owners: a.folders.filter((f) => f.owner).map((f) => f.name),
  };
}
