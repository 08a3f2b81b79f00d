// SigV4 authentication of the STS calls signed with a session's credentials (AssumeRole,
// GetCallerIdentity), with local/aws: the request is re-signed as received with the secret
// STS issued, using the SDK's own signer, and each failure is answered with STS's error.
import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { AuthFailure } from "../aws/authFailure.ts";
import { headerValue } from "../aws/headers.ts";
import { checkScope, checkTime, parseHeaderSignature, sessionSigner, verifySignature, type SignedRequest } from "../aws/sigv4.ts";
import { checkSession } from "../aws/stsSession.ts";
import { invalidClientToken, signatureMismatch, StsErrorReply } from "./errors.ts";
import type { Session } from "./sessions.ts";
import type { StsCall } from "./state.ts";
import { isoSeconds } from "./xml.ts";

/** What the SDK sends as Signature: a hex SHA-256 HMAC. STS calls anything else an incomplete signature. */
const SIGNATURE = /^[0-9a-f]{64}$/;

const incompleteAuthorization = () =>
  new StsErrorReply("IncompleteSignature", "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters (AWS4-HMAC-SHA256).");
const incompleteCredential = () =>
  new StsErrorReply("IncompleteSignature", "Credential must have the form <access key id>/<YYYYMMDD>/<region>/<service>/aws4_request.");
const incompleteAmzDate = () => new StsErrorReply("IncompleteSignature", "Authorization header requires existence of a signed 'X-Amz-Date' header.");

function amzDateOf(date: Date): string {
  return isoSeconds(date).replace(/[-:]/g, "");
}

/** The error STS answers for each way a header-signed call fails authentication. */
function stsErrorOf(failure: AuthFailure): StsErrorReply {
  const problem = failure.problem;
  switch (problem.reason) {
    case "unsupported-algorithm":
    case "malformed-authorization":
      return incompleteAuthorization();
    case "malformed-credential":
    case "wrong-terminal":
      return incompleteCredential();
    case "malformed-amz-date":
      return incompleteAmzDate();
    case "wrong-service":
      return signatureMismatch("Credential should be scoped to correct service: 'sts'.");
    case "scope-date-mismatch":
      return signatureMismatch(`Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${problem.scopeDate}' != '${problem.amzDate.slice(0, 8)}', from '${problem.amzDate}'.`);
    case "request-too-old": {
      const { amzDate, now, maxSkewMs } = problem;
      return signatureMismatch(`Signature expired: ${amzDate} is now earlier than ${amzDateOf(new Date(now.getTime() - maxSkewMs))} (${amzDateOf(now)} - 15 min.)`);
    }
    case "request-in-future": {
      const { amzDate, now, maxSkewMs } = problem;
      return signatureMismatch(`Signature not yet current: ${amzDate} is still later than ${amzDateOf(new Date(now.getTime() + maxSkewMs))} (${amzDateOf(now)} + 15 min.)`);
    }
    case "invalid-session-token":
      return invalidClientToken();
    case "session-expired":
      return new StsErrorReply("ExpiredToken", "The security token included in the request is expired", 403);
    case "signature-mismatch":
      return signatureMismatch();
    default:
      // The rest are presigned requests' and the other gates' problems: none can arise here.
      throw failure;
  }
}

/** Host and x-amz-date must be signed; every signed header must have been sent. */
function checkSignedHeaders(signed: SignedRequest, header: (name: string) => string | undefined): void {
  if (!signed.signedHeaders.includes("host")) throw new StsErrorReply("IncompleteSignature", "'Host' must be a 'SignedHeader' in the AWS Authorization.");
  if (!signed.signedHeaders.includes("x-amz-date")) throw incompleteAmzDate();
  if (signed.signedHeaders.some((name) => header(name) === undefined)) throw signatureMismatch();
}

/** The signer trusts x-amz-content-sha256 as the body's hash, so hold the header to the body actually received. */
function checkPayloadHash(req: IncomingMessage, bodyHash: string): void {
  const declared = headerValue(req, "x-amz-content-sha256");
  if (declared !== undefined && declared !== bodyHash) throw signatureMismatch();
}

/** The session whose credentials signed this call; throws STS's error when the signature or token does not hold. */
export async function authenticate(call: StsCall): Promise<Session> {
  const { req, url, body, now, state } = call;
  const header = (name: string) => headerValue(req, name);
  const authorization = header("authorization");
  if (!authorization) throw new StsErrorReply("MissingAuthenticationToken", "Request is missing Authentication Token", 403);
  try {
    const signed = parseHeaderSignature(authorization, header);
    if (!SIGNATURE.test(signed.signature)) throw incompleteAuthorization();
    checkScope(signed, { service: "sts" });
    checkSignedHeaders(signed, header);
    const session = state.sessions.get(signed.scope.accessKeyId);
    // Temporary credentials are valid only with their own session token, signed.
    if (!session || !signed.signedHeaders.includes("x-amz-security-token")) throw invalidClientToken();
    checkSession(session, signed.sessionToken, now);
    checkTime(signed, now);
    const bodyHash = createHash("sha256").update(body).digest("hex");
    checkPayloadHash(req, bodyHash);
    const signer = sessionSigner(session, signed, { service: "sts", region: signed.scope.region });
    await verifySignature({ method: req.method ?? "POST", path: url.pathname, query: [...url.searchParams], header, payloadHash: bodyHash }, signed, signer);
    return session;
  } catch (err) {
    throw err instanceof AuthFailure ? stsErrorOf(err) : err;
  }
}
