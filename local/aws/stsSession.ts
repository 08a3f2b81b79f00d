// The STS session behind an access key, as the STS stand-in serves it over HTTP
// (GET <stsUrl>/_local/sessions/<accessKeyId>), and the check that a request presents
// that session's token while the session is still valid.
import { AuthFailure } from "./authFailure.ts";
import { constantTimeEqual } from "./constantTime.ts";

/** What the STS stand-in returns from GET /_local/sessions/<accessKeyId>. */
export interface StsSession {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  expiration: string;
  roleArn: string;
  assumedRoleArn: string;
  accountId: string;
}

/** The session, or AuthFailure unknown-access-key when STS has none; any other STS answer is an Error. */
export async function fetchSession(stsUrl: string, accessKeyId: string, options: { signal?: AbortSignal } = {}): Promise<StsSession> {
  const res = await fetch(`${stsUrl}/_local/sessions/${encodeURIComponent(accessKeyId)}`, { signal: options.signal });
  if (res.status === 404) throw new AuthFailure({ reason: "unknown-access-key", accessKeyId }, `access key ${accessKeyId} belongs to no STS session`);
  if (!res.ok) throw new Error(`STS stand-in answered ${res.status} to a session lookup`);
  return (await res.json()) as StsSession;
}

/**
 * Temporary credentials are valid only with their own session token, and only until the
 * session expires. Takes a fetched StsSession or the STS stand-in's own (expiration a Date).
 */
export function checkSession(session: { accessKeyId: string; sessionToken: string; expiration: string | Date }, presentedToken: string | undefined, now: Date): void {
  const { accessKeyId } = session;
  if (!presentedToken || !constantTimeEqual(presentedToken, session.sessionToken)) {
    throw new AuthFailure({ reason: "invalid-session-token", accessKeyId }, `the session token is not the one of ${accessKeyId}`);
  }
  const expiredAt = new Date(session.expiration);
  if (expiredAt.getTime() <= now.getTime()) {
    throw new AuthFailure({ reason: "session-expired", accessKeyId, expiredAt }, `the session of ${accessKeyId} expired at ${expiredAt.toISOString()}`);
  }
}
