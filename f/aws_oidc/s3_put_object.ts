// Writes an object from text, JSON or base64 content, with optional server-side
// encryption. Large bodies go up as a streamed multipart upload.
import { encodeBody, s3Client, uploadObject } from "./lib/s3.ts";
import type { AwsStsCredentials as SavedCredentials } from "./lib/credentialsResource.ts";
import { withDefaults } from "./lib/optionalArgs.ts";

/** Picks an aws_sts_credentials resource saved by assume_role. */
type AwsStsCredentials = SavedCredentials;

export async function main(
  credentials: AwsStsCredentials,
  bucket: string,
  key: string,
  content: string,
  encoding: "text" | "json" | "base64" = "text",
  content_type: string = "",
  sse: "" | "AES256" | "aws:kms" = "",
  kms_key_id: string = "",
) {
  const o = withDefaults({ encoding, content_type, sse, kms_key_id }, { encoding: "text", content_type: "", sse: "", kms_key_id: "" });
  const { s3 } = await s3Client(credentials);
  const { body, contentType } = encodeBody(content, o.encoding);
  return await uploadObject(s3, { bucket, key, body, contentType: o.content_type || contentType, encryption: { sse: o.sse, kmsKeyId: o.kms_key_id } });
}
