// Flexible checksums of request bodies (x-amz-checksum-* headers or aws-chunked
// trailers): which one a request declares, and the hashers that verify it.
import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { headerValue } from "../aws/headers.ts";

const CRC32_TABLE = (() => {
  const table = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c;
  }
  return table;
})();

interface ChecksumHasher {
  update(data: Buffer): void;
  digestBase64(): string;
}

/** CRC32 (the SDK's default flexible checksum); Node 20 has no zlib.crc32. */
class Crc32 implements ChecksumHasher {
  private crc = -1;
  update(data: Buffer): void {
    let c = this.crc;
    for (let i = 0; i < data.length; i++) c = CRC32_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
    this.crc = c;
  }
  digestBase64(): string {
    const out = Buffer.alloc(4);
    out.writeUInt32BE((this.crc ^ -1) >>> 0);
    return out.toString("base64");
  }
}

export interface Checksum {
  /** As S3 names it in messages: CRC32, SHA1, SHA256. */
  name: string;
  hasher: ChecksumHasher;
  /** The base64 value the client declared: a header, or a trailer known only at the end. */
  expected: () => string | undefined;
}

/** The checksums this gate can verify; CRC32C and CRC64NVME are passed on unverified. */
function checksumHasher(algorithm: string): ChecksumHasher | undefined {
  if (algorithm === "crc32") return new Crc32();
  if (algorithm !== "sha1" && algorithm !== "sha256") return undefined;
  const hash = createHash(algorithm);
  return { update: (data) => void hash.update(data), digestBase64: () => hash.digest("base64") };
}

/** Every flexible checksum algorithm S3 knows, as its headers name them (x-amz-checksum-<algorithm>). */
export const CHECKSUM_ALGORITHMS = ["crc32", "crc32c", "crc64nvme", "sha1", "sha256"];

/** A checksum a request body declares, whether or not this gate can verify it. */
export interface DeclaredChecksum {
  /** Lowercase, as in the header name: crc32, crc32c, crc64nvme, sha1, sha256. */
  algorithm: string;
  /** The base64 value: a header, or a trailer known only once the body is read. */
  value: () => string | undefined;
}

/** The checksum a request declares: in an x-amz-checksum-* header, or (aws-chunked only) in the trailer x-amz-trailer names. */
export function declaredChecksum(req: IncomingMessage, awsChunked: boolean, trailers: Map<string, string>): DeclaredChecksum | undefined {
  const trailerName = awsChunked ? headerValue(req, "x-amz-trailer")?.toLowerCase() : undefined;
  const headerName = trailerName ?? CHECKSUM_ALGORITHMS.map((a) => `x-amz-checksum-${a}`).find((name) => headerValue(req, name) !== undefined);
  const algorithm = headerName?.match(/^x-amz-checksum-([a-z0-9]+)$/)?.[1];
  if (!headerName || !algorithm) return undefined;
  const headerValueNow = headerValue(req, headerName);
  return { algorithm, value: () => (trailerName ? trailers.get(trailerName) : headerValueNow) };
}

/** The declared checksum with the hasher that verifies it; undefined for CRC32C and CRC64NVME (passed on unverified). */
export function checksumOf(declared: DeclaredChecksum | undefined): Checksum | undefined {
  const hasher = declared ? checksumHasher(declared.algorithm) : undefined;
  return declared && hasher ? { name: declared.algorithm.toUpperCase(), hasher, expected: declared.value } : undefined;
}
