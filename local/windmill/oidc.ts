// The Windmill stand-in's OIDC issuer: an RS256 key served as JWKS, the discovery
// document, ID tokens for jobs with Windmill's claims, and switches that make the issuer
// misbehave the way a misconfigured instance would.
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from "jose";
import { HttpError, sendJson, sendText } from "../shared/http.ts";
import { groupsOf } from "./permissions.ts";
import type { Route, TokenInfo } from "./state.ts";

/** Windmill's default OIDC token lifetime when the caller passes no expires_in. */
const DEFAULT_ID_TOKEN_SECONDS = 48 * 3600;
/** The key id Windmill puts in its JWT headers and JWKS. */
const OIDC_KEY_ID = "windmill";

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
  /**
   * What `flow_path` (and the flow part of `sub`) says for a step inside a for-loop iteration:
   * the iteration job's path (`<flow>/forloop-<i>`, its WM_FLOW_PATH) or the flow's. Windmill
   * builds the claims in enterprise code (windmill-api/src/oidc_ee.rs is not public), so tests
   * run under both.
   */
  flowPathClaim: FlowPathClaim;
}

export type FlowPathClaim = "iteration" | "root";

export interface OidcIssuer {
  /** `<base url>/api/oidc/`, as Windmill names itself in `iss`. */
  issuer(): string;
  faults: OidcFaults;
  /** Every ID token issued so far: the leak audit looks for them in job outputs. */
  issuedIdTokens: string[];
  /** Signs an ID token with arbitrary claims (for refusal tests). */
  signIdToken(claims: Record<string, unknown>): Promise<string>;
  routes: Route[];
}

/** `baseUrl` is read when a token or document is made: the server's port is known only once it listens. */
export async function createOidcIssuer(baseUrl: () => string, flowPathClaim: FlowPathClaim = "iteration"): Promise<OidcIssuer> {
  const { publicKey, privateKey } = await generateKeyPair("RS256", { extractable: true });
  const unknownKey = (await generateKeyPair("RS256")).privateKey;
  const faults: OidcFaults = { clockSkewSeconds: 0, signWithUnknownKey: false, issuerOverride: null, jwksUnavailable: false, flowPathClaim };
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: OIDC_KEY_ID, alg: "RS256", use: "sig" };
  const issuedIdTokens: string[] = [];
  const issuer = () => `${baseUrl()}/api/oidc/`;

  async function signIdToken(claims: Record<string, unknown>): Promise<string> {
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: "RS256", kid: OIDC_KEY_ID, typ: "JWT" })
      .sign((faults.signWithUnknownKey ? unknownKey : privateKey) as CryptoKey);
    issuedIdTokens.push(token);
    return token;
  }

  /** `groups` are the job user's (e.g. ["all", "aws_operators"]): the claim real tokens carry (DESIGN.md §3). */
  async function issueIdToken(info: TokenInfo, groups: string[], audience: string, expiresIn: number): Promise<string> {
    if (!info.job) throw new HttpError(400, "OIDC tokens are issued only to jobs: call getIdToken from a script or flow step");
    const now = Math.floor(Date.now() / 1000) + faults.clockSkewSeconds;
    const { path, id } = info.job;
    const flowPath = faults.flowPathClaim === "root" ? (info.job.rootFlowPath ?? info.job.flowPath) : info.job.flowPath;
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
      groups,
      username: info.username,
      workspace: info.workspace,
    });
  }

  const routes: Route[] = [
    ["GET", /^\/api\/oidc\/\.well-known\/openid-configuration$/, (_i, res) =>
      sendJson(res, 200, {
        issuer: issuer(),
        jwks_uri: `${baseUrl()}/api/oidc/jwks`,
        response_types_supported: ["id_token"],
        subject_types_supported: ["public"],
        id_token_signing_alg_values_supported: ["RS256"],
        claims_supported: ["sub", "aud", "exp", "iat", "iss", "email", "email_verified", "job_id", "path", "flow_path", "groups", "username", "workspace"],
      })],
    ["GET", /^\/api\/oidc\/jwks$/, (_i, res) =>
      faults.jwksUnavailable ? sendText(res, 503, "Service Unavailable") : sendJson(res, 200, { keys: [jwk] })],
    ["POST", /^\/api\/w\/([^/]+)\/oidc\/token\/(.+)$/, async (c, res) => {
      const ws = c.ws();
      const expiresIn = Number(c.url.searchParams.get("expires_in") ?? DEFAULT_ID_TOKEN_SECONDS);
      if (!Number.isInteger(expiresIn) || expiresIn <= 0) throw new HttpError(400, "expires_in must be a positive number of seconds");
      sendText(res, 200, await issueIdToken(c.token(), groupsOf(ws, c.token().username), decodeURIComponent(c.match[2]), expiresIn));
    }],
  ];

  return { issuer, faults, issuedIdTokens, signIdToken, routes };
}
