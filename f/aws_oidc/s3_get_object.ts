// Reads one object (or a byte range of it) as text, JSON or base64. Refuses objects
// larger than max_bytes (default 10 MiB) rather than filling the worker's memory.
import { getObject, s3Client } from "./lib/s3.ts";
import type { AwsStsCredentials as SavedCredentials } from "./lib/credentialsResource.ts";
import { withDefaults } from "./lib/optionalArgs.ts";

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
  const o = withDefaults({ as, range, max_bytes }, { as: "text", range: "", max_bytes: 10485760 });
  const { s3 } = await s3Client(credentials);
  return await getObject(s3, { bucket, key, as: o.as, range: o.range, maxBytes: o.max_bytes });
}
