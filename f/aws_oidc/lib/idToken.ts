// The job's Windmill OIDC ID token: fetched fresh for every STS call (a token held
// across a refresh would be expired by then) and never returned or logged; only its
// non-secret claims are.
import wmill from "windmill-client";

/** The audience AWS's console proposes for an OIDC provider, and the one Windmill's docs use. */
export const DEFAULT_AUDIENCE = "sts.amazonaws.com";

/** The claims AWS trust policies can condition on (aud, sub, email), plus context to debug with. */
export interface IdTokenClaims {
  iss: string;
  aud: string[];
  sub: string;
  email: string;
  exp: number;
  job_id?: string;
  path?: string | null;
  flow_path?: string | null;
  workspace?: string;
}

/**
 * How long the ID tokens we ask Windmill for live. Windmill's default is 48 h, so a token
 * that leaks (a log, a proxy, a core dump) could be replayed at STS for two days. The
 * exchange happens within seconds of the request, so 5 minutes is enough for a slow worker
 * and short enough to make a leaked token nearly worthless. IAM accepts a token up to five
 * minutes past its exp for clock skew ("IAM provides a five-minute window beyond the
 * expiration time": IAM User Guide, "Create an OpenID Connect (OIDC) identity provider in
 * IAM"), so a leaked token stays usable for at most 10 minutes.
 */
export const ID_TOKEN_LIFETIME_SECONDS = 300;

/** Windmill could not issue a token: not an STS problem, so never retried or explained as one. */
export class WindmillOidcError extends Error {
  override name = "WindmillOidcError";
}

export async function getWindmillIdToken(audience: string): Promise<string> {
  if (!process.env.WM_TOKEN || !process.env.WM_WORKSPACE) {
    throw new WindmillOidcError("No Windmill job context (WM_TOKEN/WM_WORKSPACE unset): run this as a Windmill script or flow step");
  }
  try {
    return await wmill.getIdToken(audience, ID_TOKEN_LIFETIME_SECONDS);
  } catch (err) {
    const status = (err as { status?: number }).status;
    const body = (err as { body?: unknown }).body;
    throw new WindmillOidcError(
      `Windmill refused to issue an OIDC ID token for audience "${audience}" (HTTP ${status ?? "?"}: ${String(body ?? (err as Error).message)}). ` +
        "OIDC is a Windmill Enterprise feature: check the instance's license and that this runs inside a job.",
    );
  }
}

/** Reads (without verifying: STS does that) the claims a trust policy sees. */
export function readClaims(idToken: string): IdTokenClaims {
  const payload = idToken.split(".")[1];
  if (!payload) throw new Error("Windmill returned an ID token that is not a JWT");
  const claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as IdTokenClaims & { aud: string | string[] };
  return { ...claims, aud: Array.isArray(claims.aud) ? claims.aud : [claims.aud] };
}

/** The claims worth showing a person checking a trust policy. */
export function describeClaims(claims: IdTokenClaims): Record<string, unknown> {
  return {
    iss: claims.iss,
    aud: claims.aud,
    sub: claims.sub,
    email: claims.email,
    expires_at: new Date(claims.exp * 1000).toISOString(),
    job_id: claims.job_id,
    path: claims.path ?? null,
    flow_path: claims.flow_path ?? null,
    workspace: claims.workspace,
  };
}
