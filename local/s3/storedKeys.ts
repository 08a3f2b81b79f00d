// Object keys as the gate hands them to s3rver: S3 takes any key of up to 1024 bytes of
// UTF-8 ("a//b", "x/./y", segments over 255 bytes), which s3rver, keeping objects as files
// under their key, cannot store or route. Every key goes to s3rver as the lowercase hex of its
// UTF-8 bytes: one path segment, and hex order is S3's order, UTF-8 byte order (S3 User Guide,
// "Naming Amazon S3 objects": keys are up to 1024 bytes; ListObjectsV2 "returns … in UTF-8
// binary order"). s3rverChild.mjs lays hex keys out as short file names.
import { S3ErrorReply, xmlEscape } from "./errors.ts";
import { MAX_KEY_BYTES } from "./limits.ts";

export function toStored(key: string): string {
  return Buffer.from(key, "utf8").toString("hex");
}

export function fromStored(hex: string): string {
  return Buffer.from(hex, "hex").toString("utf8");
}

/** s3rver's path for an object. */
export function storedPath(bucket: string, key: string): string {
  return `/${bucket}/${toStored(key)}`;
}

/** S3's answer to a key over 1024 bytes (S3 User Guide, "Naming Amazon S3 objects"). */
export function checkKeyLength(key: string): void {
  const size = Buffer.byteLength(key, "utf8");
  if (size > MAX_KEY_BYTES) throw new S3ErrorReply("KeyTooLongError", "Your key is too long", { Size: String(size), MaxSizeAllowed: String(MAX_KEY_BYTES) });
}

/** s3rver's XML (upload results, errors) with its hex keys turned back into the keys the client sent. */
export function restoreKeys(xml: string): string {
  return xml
    .replace(/<Key>([0-9a-f]*)<\/Key>/g, (_, hex: string) => `<Key>${xmlEscape(fromStored(hex))}</Key>`)
    .replace(/<Location>([^<]*)\/([0-9a-f]+)<\/Location>/g, (_, base: string, hex: string) =>
      `<Location>${base}/${xmlEscape(encodeURIComponent(fromStored(hex)).replace(/%2F/g, "/"))}</Location>`);
}
