// The STS stand-in's errors: the error a call answers with (code, HTTP status, fault type),
// the ones STS sends most, its wording for validation failures, and the XML error body.
import { STS_XMLNS } from "./limits.ts";
import { renderXml } from "./xml.ts";

type FaultType = "Sender" | "Receiver";

const VERIFICATION_KEY_MESSAGE =
  "Couldn't retrieve verification key from your identity provider, please reference AssumeRoleWithWebIdentity documentation for requirements";
const SIGNATURE_MISMATCH_MESSAGE =
  "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

/** An error STS answers a call with; the server writes it as STS's XML ErrorResponse. */
export class StsErrorReply extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
    readonly type: FaultType = "Sender",
  ) {
    super(message);
  }
}

export const validationError = (message: string) => new StsErrorReply("ValidationError", message);
export const accessDenied = (message: string) => new StsErrorReply("AccessDenied", message, 403);
export const invalidIdentityToken = (message: string) => new StsErrorReply("InvalidIdentityToken", message);
/** What the identity provider's keys being unobtainable (not transiently) looks like. */
export const verificationKeyUnavailable = () => invalidIdentityToken(VERIFICATION_KEY_MESSAGE);
export const invalidClientToken = () => new StsErrorReply("InvalidClientTokenId", "The security token included in the request is invalid.", 403);
export const signatureMismatch = (message = SIGNATURE_MISMATCH_MESSAGE) => new StsErrorReply("SignatureDoesNotMatch", message, 403);
export const idpUnreachable = () => new StsErrorReply("IDPCommunicationError", VERIFICATION_KEY_MESSAGE);
export const malformedPolicy = (message: string) => new StsErrorReply("MalformedPolicyDocument", message);
export const throttling = () => new StsErrorReply("Throttling", "Rate exceeded");
export const internalFailure = () =>
  new StsErrorReply("InternalFailure", "The request processing has failed because of an unknown error, exception or failure.", 500, "Receiver");

/** AWS reports every constraint a request breaks at once, in this wording. */
export class Violations {
  private readonly list: string[] = [];

  add(member: string, shownValue: string | null, constraint: string): void {
    const shown = shownValue === null ? "null" : `'${shownValue}'`;
    this.list.push(`Value ${shown} at '${member}' failed to satisfy constraint: Member must ${constraint}`);
  }

  throwIfAny(): void {
    const n = this.list.length;
    if (n > 0) throw validationError(`${n} validation error${n === 1 ? "" : "s"} detected: ${this.list.join("; ")}`);
  }
}

export function errorXml(err: StsErrorReply, requestId: string): string {
  return `<ErrorResponse xmlns="${STS_XMLNS}">` +
    renderXml({ Error: { Type: err.type, Code: err.code, Message: err.message } }) +
    `<RequestId>${requestId}</RequestId></ErrorResponse>`;
}
