// Shows an object's size, type, ETag, encryption and metadata without reading it.
import { headObject, s3Client } from "./lib/s3.ts";
import type { AwsStsCredentials as SavedCredentials } from "./lib/credentialsResource.ts";

/** Picks an aws_sts_credentials resource saved by assume_role. */
type AwsStsCredentials = SavedCredentials;

export async function main(credentials: AwsStsCredentials, bucket: string, key: string) {
  const { s3 } = await s3Client(credentials);
  return await headObject(s3, bucket, key);
}
