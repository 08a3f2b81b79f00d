// An S3 stand-in of a test file's own, beside the shared stack, for rules that need the
// stand-in configured differently from the stack's (a scaled-down copy limit, KMS keys), and
// S3 clients on sessions minted as a job mints them (the ID token, then STS).
import { CreateBucketCommand, S3Client, type S3ClientConfig } from "@aws-sdk/client-s3";
import { assumeRoleWithWindmillToken } from "../../f/aws_oidc/lib/assumeRole.ts";
import { startS3, type S3Options, type S3StandIn } from "../../local/s3/server.ts";
import { DEMO_ROLE_ARN, REGION, startStack, type Stack } from "./testStack.ts";

export interface S3TestBed {
  stack: Stack;
  s3: S3StandIn;
  /** A client with the role's full permissions; the bucket exists. */
  client: S3Client;
  /** A client on a new session, narrowed by `sessionPolicy` when given. */
  clientFor(sessionPolicy?: string, extra?: Partial<S3ClientConfig>): Promise<S3Client>;
  close(): Promise<void>;
}

export async function startS3TestBed(bucket: string, options: Omit<S3Options, "stsUrl">): Promise<S3TestBed> {
  const stack = await startStack();
  const s3 = await startS3({ stsUrl: stack.sts.url, ...options }).catch(async (err) => {
    await stack.close();
    throw err;
  });
  const close = async () => {
    await s3.close();
    await stack.close();
  };
  try {
    stack.actAsJob("f/aws_oidc/test");
    const clientFor = async (sessionPolicy?: string, extra: Partial<S3ClientConfig> = {}) => {
      const { credentials } = await assumeRoleWithWindmillToken(
        { roleArn: DEMO_ROLE_ARN, region: REGION, audience: "sts.amazonaws.com", sessionName: "s3-test-bed", durationSeconds: 3600, sessionPolicy },
        () => {},
      );
      return new S3Client({ region: REGION, endpoint: s3.url, forcePathStyle: true, credentials, maxAttempts: 1, ...extra });
    };
    const client = await clientFor();
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    return { stack, s3, client, clientFor, close };
  } catch (err) {
    await close();
    throw err;
  }
}
