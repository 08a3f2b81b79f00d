// Reads one object (or a byte range of it) as text, JSON or base64. Refuses objects
// larger than max_bytes (default 10 MiB) rather than filling the worker's memory.
import { getObject, s3Client } from "./lib/s3.ts";
import type { AwsStsCredentials as SavedCredentials } from "./lib/credentialsResource.ts";

/** Picks an aws_sts_credentials resource saved by assume_role. */
type AwsStsCredentials = SavedCredentials;

export async function main(
  credentials: AwsStsCredentials,
  bucket: string,
  key: string,
  as: "text" | "json" | "base64" = "text",
  range: string = "",
  max_bytes: number = 10485760,
) {
  const { s3 } = await s3Client(credentials);
  return await getObject(s3, { bucket, key, as, range, maxBytes: max_bytes });
}
