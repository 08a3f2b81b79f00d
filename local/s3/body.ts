// Request bodies on their way to s3rver: how the payload is declared (x-amz-content-sha256),
// its decoded length, and the verifier that holds back the last piece until the length,
// payload hash and checksum all match.
import { createHash, type Hash as NodeHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { Transform, type Readable, type TransformCallback } from "node:stream";
import { UNSIGNED_PAYLOAD, type SignedRequest } from "../aws/sigv4.ts";
import type { Caller } from "./auth.ts";
import { AwsChunkedDecoder, chunkVerifier } from "./awsChunked.ts";
import { checksumOf, declaredChecksum, type Checksum, type DeclaredChecksum } from "./checksums.ts";
import { MESSAGES, notImplemented, S3ErrorReply } from "./errors.ts";
import { STREAMING_SIGNED, STREAMING_UNSIGNED_TRAILER, STREAMING_UNVERIFIED } from "./limits.ts";
import { headerValue } from "../aws/headers.ts";

type Payload =
  | { encoding: "plain"; sha256?: string }
  | { encoding: "aws-chunked"; signedChunks: boolean };

function payloadOf(req: IncomingMessage, signed: SignedRequest): Payload {
  if (signed.presigned) return { encoding: "plain" };
  const declared = headerValue(req, "x-amz-content-sha256");
  if (declared === undefined) throw new S3ErrorReply("InvalidRequest", "Missing required header for this request: x-amz-content-sha256");
  if (/^[0-9a-f]{64}$/i.test(declared)) return { encoding: "plain", sha256: declared.toLowerCase() };
  if (declared === UNSIGNED_PAYLOAD) return { encoding: "plain" };
  if (declared === STREAMING_UNSIGNED_TRAILER) return { encoding: "aws-chunked", signedChunks: false };
  if (declared === STREAMING_SIGNED) return { encoding: "aws-chunked", signedChunks: true };
  if (STREAMING_UNVERIFIED.includes(declared)) throw notImplemented(`x-amz-content-sha256: ${declared} (use ${STREAMING_UNSIGNED_TRAILER} or ${STREAMING_SIGNED})`);
  throw new S3ErrorReply("InvalidArgument", `x-amz-content-sha256 must be ${UNSIGNED_PAYLOAD}, ${STREAMING_UNSIGNED_TRAILER}, ${STREAMING_SIGNED}, or a valid sha256 value.`,
    { ArgumentName: "x-amz-content-sha256", ArgumentValue: declared });
}

/** The body's length once decoded: what s3rver receives. */
function decodedLength(req: IncomingMessage, payload: Payload): number {
  const declared = headerValue(req, payload.encoding === "aws-chunked" ? "x-amz-decoded-content-length" : "content-length");
  if (declared === undefined) {
    // No length and no framing means no body; a body framed by chunked encoding alone has no length S3 can trust.
    if (payload.encoding === "plain" && headerValue(req, "transfer-encoding") === undefined) return 0;
    throw new S3ErrorReply("MissingContentLength", MESSAGES.missingLength);
  }
  if (!/^\d+$/.test(declared)) throw new S3ErrorReply("InvalidArgument", "Invalid content length", { ArgumentName: "content-length", ArgumentValue: declared });
  return Number(declared);
}

/**
 * Counts, hashes and checksums the decoded body, and holds back its last piece until all of
 * them match: a body that fails a check never fully reaches s3rver, so s3rver (which writes
 * through a temp file) stores nothing.
 */
class BodyVerifier extends Transform {
  private held: Buffer | undefined;
  private received = 0;
  private readonly sha256: NodeHash | undefined;

  constructor(private readonly expected: { length: number; sha256?: string; checksum?: Checksum }) {
    super();
    this.sha256 = expected.sha256 ? createHash("sha256") : undefined;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.received += chunk.length;
    if (this.received > this.expected.length) return callback(new S3ErrorReply("IncompleteBody", MESSAGES.incompleteBody));
    this.sha256?.update(chunk);
    this.expected.checksum?.hasher.update(chunk);
    if (this.held) this.push(this.held);
    this.held = chunk;
    callback();
  }

  override _flush(callback: TransformCallback): void {
    // Bun's Transform pushes flush data even alongside an error: never hand it the held piece then.
    const problem = this.problem();
    if (problem) callback(problem);
    else callback(null, this.held);
  }

  private problem(): S3ErrorReply | undefined {
    if (this.received !== this.expected.length) return new S3ErrorReply("IncompleteBody", MESSAGES.incompleteBody);
    const computed = this.sha256?.digest("hex");
    if (computed !== undefined && computed !== this.expected.sha256) {
      return new S3ErrorReply("XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed.",
        { ClientComputedContentSHA256: this.expected.sha256 ?? "", S3ComputedContentSHA256: computed });
    }
    const checksum = this.expected.checksum;
    if (checksum) {
      const declared = checksum.expected();
      if (declared === undefined) return new S3ErrorReply("InvalidRequest", `The x-amz-checksum-${checksum.name.toLowerCase()} trailer announced in x-amz-trailer is missing`);
      if (declared !== checksum.hasher.digestBase64()) return new S3ErrorReply("BadDigest", `The ${checksum.name} you specified did not match the calculated checksum.`);
    }
    return undefined;
  }
}

/** The request body as s3rver should get it: decoded, and verified before its last byte passes; and the checksum it declared. */
export function verifiedBody(req: IncomingMessage, caller: Caller): { body: Readable; length: number; checksum: DeclaredChecksum | undefined } {
  const payload = payloadOf(req, caller.signed);
  const length = decodedLength(req, payload);
  const decoder = payload.encoding === "aws-chunked" ? new AwsChunkedDecoder(payload.signedChunks ? chunkVerifier(caller) : undefined) : undefined;
  const checksum = declaredChecksum(req, payload.encoding === "aws-chunked", decoder?.trailers ?? new Map());
  const verifier = new BodyVerifier({
    length,
    sha256: payload.encoding === "plain" ? payload.sha256 : undefined,
    checksum: checksumOf(checksum),
  });
  // Not stream.pipeline: on a bad body it would destroy `req`, and with it the socket the
  // error response must go out on. Errors are funnelled into `verifier`, which the caller reads.
  const fail = (err: Error) => verifier.destroy(err);
  req.on("error", fail);
  if (decoder) {
    decoder.on("error", fail);
    req.pipe(decoder).pipe(verifier);
  } else {
    req.pipe(verifier);
  }
  return { body: verifier, length, checksum };
}

/** A small body read whole (an XML request document), refused as MalformedXML past `limit` bytes. */
export async function readLimited(body: Readable, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new S3ErrorReply("MalformedXML", `${MESSAGES.malformedXml} (the request body is over ${limit} bytes)`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
