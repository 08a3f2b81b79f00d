// Who is calling the Windmill stand-in: the tokens it issued (user, job and scoped webhook
// tokens), where a request carries one, what a scoped token may do, and the user and token
// routes.
import { randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { HttpError, readJson, sendJson, sendText } from "../shared/http.ts";
import { EPOCH, type JsonObject } from "./records.ts";
import type { Route, TokenInfo } from "./state.ts";

export class TokenStore {
  private readonly tokens = new Map<string, TokenInfo>();

  /** A new token for `info`. */
  issue(info: TokenInfo): string {
    const token = randomBytes(24).toString("base64url");
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
    ["GET", /^\/api\/w\/([^/]+)\/users\/whoami$/, (c, res) => {
      const t = c.token();
      sendJson(res, 200, { email: t.email, username: t.username, is_admin: true, operator: false, groups: [], folders: [] });
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
    // Each stand-in token belongs to one workspace, and the stand-in serves one per instance.
    ["POST", /^\/api\/workspaces\/exists$/, async (c, res) => {
      const body = await readJson<{ id?: string }>(c.req);
      sendJson(res, 200, body.id === c.token().workspace);
    }],
    ["GET", /^\/api\/w\/([^/]+)\/users\/list$/, (c, res) => {
      c.ws();
      const t = c.token();
      sendJson(res, 200, [workspaceUser(t)]);
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

function workspaceUser(t: TokenInfo): JsonObject {
  return {
    email: t.email, username: t.username, is_admin: true, is_super_admin: false, operator: false, disabled: false,
    created_at: EPOCH, groups: [], folders: [], folders_read: [], folders_owners: [],
  };
}
