// Why a request's SigV4 authentication failed, in terms no service owns: each gate maps a
// failure's problem to its own error (S3's XML codes, STS's, a refused RDS login).

export type AuthProblem =
  /** Not AWS4-HMAC-SHA256: SigV2 (`AWS AKID:sig`) or another X-Amz-Algorithm. */
  | { reason: "unsupported-algorithm" }
  /** The Authorization header lacks Credential, SignedHeaders or Signature. */
  | { reason: "malformed-authorization" }
  /** A presigned request lacks one of the X-Amz-* parameters (the first missing one is named). */
  | { reason: "missing-query-parameter"; parameter: string }
  | { reason: "malformed-expires"; expires: string }
  | { reason: "expires-too-long"; expiresSeconds: number; maxSeconds: number }
  /** The Credential is not five non-empty parts. */
  | { reason: "malformed-credential" }
  | { reason: "wrong-terminal"; terminal: string }
  | { reason: "malformed-amz-date"; amzDate: string | undefined }
  | { reason: "wrong-region"; region: string; expected: string }
  | { reason: "wrong-service"; service: string; expected: string }
  | { reason: "scope-date-mismatch"; scopeDate: string; amzDate: string }
  /** The signing date is further from the server's clock than the skew allows. */
  | { reason: "request-too-old" | "request-in-future"; amzDate: string; now: Date; maxSkewMs: number }
  | { reason: "presign-expired"; expiresSeconds: number; expiresAt: Date; now: Date }
  /** STS knows no session with this access key id. */
  | { reason: "unknown-access-key"; accessKeyId: string }
  /** No session token, or not the session's. */
  | { reason: "invalid-session-token"; accessKeyId: string }
  | { reason: "session-expired"; accessKeyId: string; expiredAt: Date }
  | { reason: "signature-mismatch"; accessKeyId: string };

export class AuthFailure extends Error {
  constructor(
    readonly problem: AuthProblem,
    message: string,
  ) {
    super(message);
  }
}
