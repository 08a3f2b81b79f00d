// Streams bytes of unknown length into one S3 object with a fixed memory budget: a
// Writable that copies what it is given into a small pool of part buffers, uploads
// each full part while the next one fills, and only asks for more when a buffer is
// free. Anything shorter than one part becomes a single PutObject.
//
// Why not lib-storage's Upload: it reads its body with `for await`, one promise per
// chunk, and concatenates a fresh buffer per part. Fed by COPY TO STDOUT (one chunk per
// row), that was most of the export job's CPU, and under Bun its garbage held the job
// above 300 MiB. Here a chunk costs one memcpy and the part buffers are reused.
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  UploadPartCommand,
  type CompletedPart,
  type S3Client,
  type ServerSideEncryption,
} from "@aws-sdk/client-s3";
import { Writable } from "node:stream";
import { explainS3Error, S3Error } from "./s3Errors.ts";

/** 8 MiB parts (S3's minimum is 5 MiB) reach S3's 10,000-part limit at 78 GiB. */
export const UPLOAD_PART_SIZE = 8 * 1024 * 1024;
/** Parts in flight at once: enough to keep loopback and S3 busy; memory is (this + 1) × part size. */
export const UPLOAD_QUEUE_SIZE = 4;
/** S3 refuses part number 10,001. */
const MAX_PARTS = 10_000;

/**
 * A full collection after each part. Fed by COPY TO (a few small buffers per row, made by the
 * postgres client), Bun's collector runs late enough that the export job's peak RSS drifts
 * from run to run and grows with the export's size; collecting once per part keeps it flat
 * for a small CPU cost per part (both measured in bench/RESULTS.md). Windmill runs TypeScript
 * under Bun; elsewhere this does nothing.
 */
function collectGarbage(): void {
  (globalThis as { Bun?: { gc(synchronous: boolean): void } }).Bun?.gc(true);
}

export interface UploadTarget {
  bucket: string;
  key: string;
  contentType: string;
  encryption: { ServerSideEncryption?: ServerSideEncryption; SSEKMSKeyId?: string };
}

export interface UploadOutcome {
  size: number;
  etag: string | null;
  versionId: string | null;
  parts: number;
}

export class S3UploadStream extends Writable {
  /** Set once the stream has finished: what S3 answered for the whole object. */
  outcome: UploadOutcome | undefined;
  private readonly free: Buffer[] = [];
  private allocated = 0;
  private part: Buffer | undefined;
  private filled = 0;
  private uploaded = 0;
  private partsStarted = 0;
  /** The first part upload that failed: the stream is destroyed with it. */
  private failure: Error | undefined;
  private uploadId: Promise<string> | undefined;
  private readonly completed: CompletedPart[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private waitingForBuffer: (() => void) | undefined;

  constructor(
    private readonly s3: S3Client,
    private readonly target: UploadTarget,
    private readonly onProgress: (bytesUploaded: number) => void = () => {},
    /** Sees every chunk written, before it is copied: a reader beside the pipe (e.g. a row count) at no extra stream hop. */
    private readonly onChunk: (chunk: Buffer) => void = () => {},
  ) {
    super();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.onChunk(chunk);
    this.copyFrom(chunk, 0, callback);
  }

  /**
   * Copies `chunk` from `offset` into part buffers. Synchronous while buffers are free, so a
   * row-sized chunk costs one copy and no allocation (COPY TO sends one chunk per row: a
   * closure per chunk was the export's largest garbage after the rows themselves, counted with
   * bun:jsc heapStats); waits for a free buffer otherwise.
   */
  private copyFrom(chunk: Buffer, offset: number, callback: (err?: Error | null) => void): void {
    // Once a part failed nothing more goes up: the stream is being destroyed and aborted.
    if (this.failure || this.destroyed) return callback(this.failure);
    while (offset < chunk.length) {
      this.part ??= this.takeBuffer();
      if (!this.part) {
        const resumeAt = offset;
        return void this.bufferFreed().then(() => this.copyFrom(chunk, resumeAt, callback), callback);
      }
      const copied = chunk.copy(this.part, this.filled, offset);
      this.filled += copied;
      offset += copied;
      if (this.filled === UPLOAD_PART_SIZE && !this.sendPart()) return callback(this.failure);
    }
    callback();
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.finish().then(() => callback(), callback);
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    // A failed or abandoned upload must not leave billed, invisible parts behind. Parts still
    // in flight could land after an abort (S3 says so), so they settle first.
    const abort = async () => {
      if (!this.uploadId || this.outcome) return;
      while (this.inFlight.size) await Promise.all(this.inFlight);
      const UploadId = await this.uploadId;
      await this.s3.send(new AbortMultipartUploadCommand({ Bucket: this.target.bucket, Key: this.target.key, UploadId }));
    };
    abort().catch(() => {}).then(() => callback(err));
  }

  private takeBuffer(): Buffer | undefined {
    const reused = this.free.pop();
    if (reused) return reused;
    if (this.allocated > UPLOAD_QUEUE_SIZE) return undefined;
    this.allocated++;
    return Buffer.allocUnsafe(UPLOAD_PART_SIZE);
  }

  private bufferFreed(): Promise<void> {
    return new Promise((resolve) => (this.waitingForBuffer = resolve));
  }

  private release(buffer: Buffer): void {
    this.free.push(buffer);
    const wake = this.waitingForBuffer;
    this.waitingForBuffer = undefined;
    wake?.();
  }

  private fail(err: unknown): Error {
    return explainS3Error(err, { operation: "PutObject", bucket: this.target.bucket, key: this.target.key });
  }

  /** Starts the upload of the filled part; false when the upload has failed and nothing was sent. */
  private sendPart(): boolean {
    if (this.failure || this.destroyed) return false;
    const buffer = this.part!;
    const length = this.filled;
    this.part = undefined;
    this.filled = 0;
    const partNumber = ++this.partsStarted;
    if (partNumber > MAX_PARTS) {
      this.failure = new S3Error("UploadPart", "TooManyParts", `s3://${this.target.bucket}/${this.target.key}: the data needs more than ${MAX_PARTS} parts of ${UPLOAD_PART_SIZE / 1024 / 1024} MiB (S3's limit).`,
        "split the export into several objects (e.g. one query per key range).");
      this.destroy(this.failure);
      return false;
    }
    this.uploadId ??= this.s3.send(new CreateMultipartUploadCommand({
      Bucket: this.target.bucket, Key: this.target.key, ContentType: this.target.contentType, ChecksumAlgorithm: "CRC32", ...this.target.encryption,
    })).then((r) => r.UploadId!);
    const upload = this.uploadPart(partNumber, buffer, length).then(
      () => { this.inFlight.delete(upload); },
      (err: unknown) => {
        this.inFlight.delete(upload);
        this.failure ??= this.fail(err);
        this.destroy(this.failure);
      },
    );
    this.inFlight.add(upload);
    return true;
  }

  private async uploadPart(partNumber: number, buffer: Buffer, length: number): Promise<void> {
    const UploadId = await this.uploadId!;
    const part = await this.s3.send(new UploadPartCommand({
      Bucket: this.target.bucket, Key: this.target.key, UploadId, PartNumber: partNumber, Body: buffer.subarray(0, length), ChecksumAlgorithm: "CRC32",
    }));
    this.completed.push({ PartNumber: partNumber, ETag: part.ETag, ...(part.ChecksumCRC32 && { ChecksumCRC32: part.ChecksumCRC32 }) });
    this.uploaded += length;
    collectGarbage();
    this.release(buffer);
    this.onProgress(this.uploaded);
  }

  private async finish(): Promise<void> {
    if (!this.uploadId) return this.putWhole();
    if (this.filled > 0 && !this.sendPart()) throw this.failure;
    while (this.inFlight.size) await Promise.all(this.inFlight);
    if (this.failure) throw this.failure;
    const parts = [...this.completed].sort((a, b) => a.PartNumber! - b.PartNumber!);
    const done = await this.s3.send(new CompleteMultipartUploadCommand({
      Bucket: this.target.bucket, Key: this.target.key, UploadId: await this.uploadId, MultipartUpload: { Parts: parts },
    })).catch((err: unknown) => { throw this.fail(err); });
    this.outcome = { size: this.uploaded, etag: done.ETag ?? null, versionId: done.VersionId ?? null, parts: parts.length };
  }

  private async putWhole(): Promise<void> {
    const body = this.part ? this.part.subarray(0, this.filled) : Buffer.alloc(0);
    const put = await this.s3.send(new PutObjectCommand({
      Bucket: this.target.bucket, Key: this.target.key, Body: body, ContentType: this.target.contentType, ...this.target.encryption,
    })).catch((err: unknown) => { throw this.fail(err); });
    this.uploaded = body.length;
    this.onProgress(this.uploaded);
    this.outcome = { size: body.length, etag: put.ETag ?? null, versionId: put.VersionId ?? null, parts: 1 };
  }
}
