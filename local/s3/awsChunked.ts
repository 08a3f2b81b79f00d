// aws-chunked bodies: the decoder (framing, trailers) and the chain of chunk signatures
// that STREAMING-AWS4-HMAC-SHA256-PAYLOAD bodies carry.
import { createHash, type Hash as NodeHash } from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";
import { constantTimeEqual } from "../aws/constantTime.ts";
import { EMPTY_SHA256 } from "../aws/sigv4.ts";
import type { Caller } from "./auth.ts";
import { MESSAGES, S3ErrorReply } from "./errors.ts";
import { MAX_CHUNK_LINE_BYTES } from "./limits.ts";

/**
 * Decodes aws-chunked framing: `<hex size>[;chunk-signature=<sig>]\r\n<data>\r\n` ... `0...\r\n`,
 * then trailer lines and an empty line. With signed chunks, each chunk's signature chains from
 * the previous one (the first from the request's signature) and is checked before its data counts.
 */
export class AwsChunkedDecoder extends Transform {
  readonly trailers = new Map<string, string>();
  private state: "size" | "data" | "data-end" | "trailer" | "done" = "size";
  private leftover = Buffer.alloc(0);
  private remaining = 0;
  private chunkHash: NodeHash | undefined;
  private chunkSignature = "";

  constructor(private readonly verifyChunk: ((dataSha256: string, signature: string) => Promise<void>) | undefined) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.consume(chunk).then(() => callback(), callback);
  }

  override _flush(callback: TransformCallback): void {
    callback(this.state === "done" ? null : new S3ErrorReply("IncompleteBody", MESSAGES.incompleteBody));
  }

  private async consume(chunk: Buffer): Promise<void> {
    let data = this.leftover.length ? Buffer.concat([this.leftover, chunk]) : chunk;
    this.leftover = Buffer.alloc(0);
    while (data.length) {
      if (this.state === "data") {
        const take = Math.min(this.remaining, data.length);
        const piece = data.subarray(0, take);
        this.chunkHash?.update(piece);
        this.push(piece);
        this.remaining -= take;
        data = data.subarray(take);
        if (this.remaining === 0) await this.endChunk();
        continue;
      }
      const eol = data.indexOf("\r\n");
      if (eol < 0) {
        if (data.length > MAX_CHUNK_LINE_BYTES) throw this.broken("a chunk header or trailer line is too long");
        this.leftover = Buffer.from(data);
        return;
      }
      await this.line(data.subarray(0, eol).toString("latin1"));
      data = data.subarray(eol + 2);
    }
  }

  private async line(text: string): Promise<void> {
    switch (this.state) {
      case "size":
        return this.startChunk(text);
      case "data-end":
        if (text !== "") throw this.broken("chunk data is longer than its declared size");
        this.state = "size";
        return;
      case "trailer": {
        if (text === "") {
          this.state = "done";
          return;
        }
        const colon = text.indexOf(":");
        if (colon <= 0) throw this.broken(`malformed trailer line`);
        this.trailers.set(text.slice(0, colon).trim().toLowerCase(), text.slice(colon + 1).trim());
        return;
      }
      default:
        throw this.broken("data after the end of the aws-chunked body");
    }
  }

  private async startChunk(text: string): Promise<void> {
    const match = /^([0-9a-fA-F]{1,16})(?:;chunk-signature=([0-9a-f]{64}))?$/.exec(text);
    if (!match) throw this.broken(`malformed chunk header`);
    if (this.verifyChunk && !match[2]) throw new S3ErrorReply("SignatureDoesNotMatch", `${MESSAGES.signatureMismatch} (a chunk has no chunk-signature)`);
    this.remaining = parseInt(match[1]!, 16);
    this.chunkSignature = match[2] ?? "";
    this.chunkHash = this.verifyChunk ? createHash("sha256") : undefined;
    if (this.remaining > 0) {
      this.state = "data";
      return;
    }
    await this.verifyChunk?.(EMPTY_SHA256, this.chunkSignature);
    this.state = "trailer";
  }

  private async endChunk(): Promise<void> {
    if (this.chunkHash) await this.verifyChunk?.(this.chunkHash.digest("hex"), this.chunkSignature);
    this.state = "data-end";
  }

  private broken(problem: string): S3ErrorReply {
    return new S3ErrorReply("IncompleteBody", `${MESSAGES.incompleteBody} (aws-chunked body: ${problem})`);
  }
}

/** Chunk signatures chain: each signs the previous signature and its own data's hash. */
export function chunkVerifier(caller: Caller): (dataSha256: string, signature: string) => Promise<void> {
  const { signed, signer } = caller;
  const scope = `${signed.scope.date}/${signed.scope.region}/s3/aws4_request`;
  let previous = signed.signature;
  return async (dataSha256, signature) => {
    const stringToSign = ["AWS4-HMAC-SHA256-PAYLOAD", signed.amzDate, scope, previous, EMPTY_SHA256, dataSha256].join("\n");
    const expected = await signer.sign(stringToSign, { signingDate: signed.signingDate });
    if (!constantTimeEqual(expected, signature)) throw new S3ErrorReply("SignatureDoesNotMatch", MESSAGES.signatureMismatch, { AWSAccessKeyId: signed.scope.accessKeyId });
    previous = signature;
  };
}

