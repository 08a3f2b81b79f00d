// Copies an object inside S3 (no download), optionally re-encrypting it; above 5 GiB as a multipart copy.
import { s3Client } from "./lib/s3.ts";
import { copyObject } from "./lib/s3Copy.ts";
import type { AwsStsCredentials as SavedCredentials } from "./lib/credentialsResource.ts";
import { withDefaults } from "./lib/optionalArgs.ts";

/** Picks an aws_sts_credentials resource saved by assume_role. */
type AwsStsCredentials = SavedCredentials;

export async function main(
  credentials: AwsStsCredentials,
  source_bucket: string,
  source_key: string,
  bucket: string,
  key: string,
  sse: "" | "AES256" | "aws:kms" = "",
  kms_key_id: string = "",
) {
  const o = withDefaults({ sse, kms_key_id }, { sse: "", kms_key_id: "" });
  const { s3 } = await s3Client(credentials);
  return await copyObject(s3, { sourceBucket: source_bucket, sourceKey: source_key, bucket, key, encryption: { sse: o.sse, kmsKeyId: o.kms_key_id } });
}
