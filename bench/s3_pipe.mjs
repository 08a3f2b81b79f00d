// The `aws s3 cp` half of the hand-built pipelines, in Node with the AWS SDK (the CLI itself
// is not installed here): `node bench/s3_pipe.mjs get BUCKET KEY` streams the object to
// stdout (`aws s3 cp s3://b/k -`); `node bench/s3_pipe.mjs put BUCKET KEY PART_BYTES QUEUE`
// uploads stdin in parts (`aws s3 cp - s3://b/k`: a streaming multipart upload). Plain
// JavaScript because Node runs it directly; credentials and endpoint come from the
// environment the SDK reads (AWS_ACCESS_KEY_ID, ..., AWS_ENDPOINT_URL_S3).
import { GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { pipeline } from "node:stream/promises";

const [mode, bucket, key, partBytes, queue] = process.argv.slice(2);
const s3 = new S3Client({});
if (mode === "get") {
  const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  await pipeline(object.Body, process.stdout);
} else if (mode === "put") {
  const upload = new Upload({ client: s3, partSize: Number(partBytes), queueSize: Number(queue), leavePartsOnError: false, params: { Bucket: bucket, Key: key, Body: process.stdin } });
  await upload.done();
} else {
  console.error("usage: node bench/s3_pipe.mjs get BUCKET KEY | put BUCKET KEY PART_BYTES QUEUE");
  process.exit(2);
}
