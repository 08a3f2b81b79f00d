// SSE-KMS in the S3 gate: which KMS key a write asks for or a stored object was written
// with, named by its ARN, and the KMS permission S3 needs the caller to have on it.
//
// S3 calls KMS on the caller's behalf, so the caller needs (S3 User Guide, "Protecting data
// with SSE-KMS", "Permissions"; S3 API reference, CreateMultipartUpload, "Permissions"):
// - kms:GenerateDataKey to write an object (PutObject, CopyObject's destination,
//   CreateMultipartUpload);
// - kms:Decrypt to read one (GetObject, CopyObject's source), for each UploadPart of an
//   SSE-KMS upload (the API reference: "the requester needs permissions for the kms:Decrypt
//   action on the UploadPart and UploadPartCopy APIs") and to complete it (S3 decrypts the
//   parts to assemble them: AWS Knowledge Center, "s3-multipart-kms-decrypt").
// HeadObject reads metadata only and needs no KMS permission.
import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import { isAllowed, type Caller } from "./auth.ts";
import { S3ErrorReply } from "./errors.ts";
import { managedKeyArn, type KeyScope, type KmsKeys } from "./kmsKeys.ts";

export type { KeyScope } from "./kmsKeys.ts";

export const SSE_HEADER = "x-amz-server-side-encryption";
export const KMS_KEY_HEADER = "x-amz-server-side-encryption-aws-kms-key-id";
/** SSE-KMS and its dual-layer variant DSSE-KMS: both have S3 call KMS with the caller's permissions. */
const KMS_MODES = new Set(["aws:kms", "aws:kms:dsse"]);

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/**
 * The key ARN of the KMS key a write asks for, resolved as S3 does (an alias to its key; no key
 * named is the AWS managed key aws/s3, "If you specify x-amz-server-side-encryption:aws:kms but
 * don't provide x-amz-server-side-encryption-aws-kms-key-id, Amazon S3 uses the AWS managed key
 * (aws/s3)", S3 API reference, PutObject); undefined when SSE-KMS does not apply.
 */
export function requestedKmsKey(headers: IncomingHttpHeaders, scope: KeyScope, keys: KmsKeys): string | undefined {
  const mode = single(headers[SSE_HEADER]);
  if (mode === undefined || !KMS_MODES.has(mode)) return undefined;
  const keyId = single(headers[KMS_KEY_HEADER]);
  return keyId ? keys.resolve(keyId, scope) : managedKeyArn(scope);
}

/** The key ARN an object was stored with (s3rver keeps the headers the gate stored and answers them on GET and HEAD, as S3 does). */
export function storedKmsKey(headers: IncomingHttpHeaders): string | undefined {
  const mode = single(headers[SSE_HEADER]);
  return mode !== undefined && KMS_MODES.has(mode) ? single(headers[KMS_KEY_HEADER]) : undefined;
}

/**
 * The encryption headers a new object is stored with, and which S3 answers on its writes and
 * reads: the mode the request asks for, else SSE-S3, the default of every bucket since
 * 2023-01-05 (S3 User Guide, "Setting default server-side encryption behavior for Amazon S3
 * buckets": "all new object uploads to Amazon S3 are automatically encrypted" with SSE-S3);
 * with SSE-KMS, the key by its ARN, which is how S3 reports it.
 */
export function storedEncryption(headers: IncomingHttpHeaders, keyArn: string | undefined): Record<string, string> {
  const mode = single(headers[SSE_HEADER]) ?? "AES256";
  return keyArn ? { [SSE_HEADER]: mode, [KMS_KEY_HEADER]: keyArn } : { [SSE_HEADER]: mode };
}

export function keyScopeOf(caller: Caller, region: string): KeyScope {
  return { region, accountId: caller.session.accountId };
}

/**
 * Refuses the request unless the caller may do `action` with the key. A customer managed key's
 * default key policy hands the decision to IAM, so the session's policies must allow it. The AWS
 * managed key aws/s3 has a key policy of its own that lets every principal of the account use
 * it through S3 ("Allow access through S3 for all principals in the account that are
 * authorized to use S3"), so only an explicit Deny refuses it (the STS stand-in's reasons for
 * a Deny start with "explicitly denied").
 */
export async function authorizeKms(stsUrl: string, caller: Caller, scope: KeyScope, action: "kms:GenerateDataKey" | "kms:Decrypt", keyArn: string): Promise<void> {
  const decision = await isAllowed(stsUrl, caller, { action, resource: keyArn });
  if (decision.allowed) return;
  if (keyArn === managedKeyArn(scope) && !decision.reason.startsWith("explicitly denied")) return;
  // KMS's own wording, which S3 passes on: the resource is the key, unquoted.
  throw new S3ErrorReply("AccessDenied", `User: ${caller.session.assumedRoleArn} is not authorized to perform: ${action} on resource: ${keyArn} because ${decision.reason}`);
}

/** kms:Decrypt for an object s3rver is answering with; the answer is drained when refused. */
export async function authorizeRead(stsUrl: string, caller: Caller, scope: KeyScope, upstream: IncomingMessage): Promise<void> {
  const keyArn = storedKmsKey(upstream.headers);
  if (keyArn === undefined) return;
  try {
    await authorizeKms(stsUrl, caller, scope, "kms:Decrypt", keyArn);
  } catch (err) {
    upstream.resume();
    throw err;
  }
}
