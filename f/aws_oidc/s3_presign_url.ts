// A presigned GET or PUT URL. It lives the shorter of expires_in, 7 days and what is
// left of the credentials' session; the result says which limit applied.
import { presignUrl, s3Client } from "./lib/s3.ts";
import type { AwsStsCredentials as SavedCredentials } from "./lib/credentialsResource.ts";
import { withDefaults } from "./lib/optionalArgs.ts";

/** Picks an aws_sts_credentials resource saved by assume_role. */
type AwsStsCredentials = SavedCredentials;

export async function main(
  credentials: AwsStsCredentials,
  bucket: string,
  key: string,
  method: "GET" | "PUT" = "GET",
  expires_in: string = "1h",
  content_type: string = "",
) {
  const o = withDefaults({ method, expires_in, content_type }, { method: "GET", expires_in: "1h", content_type: "" });
  const { s3, config } = await s3Client(credentials);
  return await presignUrl(s3, config, { bucket, key, method: o.method, expiresIn: o.expires_in, contentType: o.content_type });
}
