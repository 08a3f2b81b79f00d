// A personal script, as a user writes one on top of the shared library: how much data
// sits under each top-level prefix of a bucket.
import { listObjects, s3Client } from "/f/aws_oidc/lib/s3.ts";
import type { AwsStsCredentials as SavedCredentials } from "/f/aws_oidc/lib/credentialsResource.ts";
import { withDefaults } from "/f/aws_oidc/lib/optionalArgs.ts";

type AwsStsCredentials = SavedCredentials;

export async function main(credentials: AwsStsCredentials, bucket: string, prefix: string = "") {
  prefix = withDefaults({ prefix }, { prefix: "" }).prefix;
  const { s3 } = await s3Client(credentials);
  const objects = await listObjects(s3, { bucket, prefix, delimiter: "", limit: 0 });
  const usage = new Map<string, { prefix: string; objects: number; bytes: number }>();
  for (const o of objects) {
    const top = o.key.slice(prefix.length).split("/")[0];
    const row = usage.get(top) ?? { prefix: prefix + top, objects: 0, bytes: 0 };
    row.objects += 1;
    row.bytes += o.size ?? 0;
    usage.set(top, row);
  }
  return [...usage.values()].sort((a, b) => b.bytes - a.bytes);
}
