// The leak audit: no secret the stand-ins issued or saw (secret keys, session tokens, ID
// tokens, RDS IAM tokens) may appear in any job's result or logs.
import { expect } from "bun:test";
import type { JobRecord } from "../../local/windmill/state.ts";
import type { Stack } from "./testStack.ts";

export interface Leak {
  jobId: string;
  path: string;
  kind: string;
}

/** Secrets shorter than this are not real credentials (and would match by accident). */
const MIN_SECRET_LENGTH = 16;

/**
 * A presigned URL carries its session's token by design (it is a bearer link to one
 * object, README "Notes and limits"); everywhere else a token is a leak.
 */
const PRESIGNED_TOKEN = /X-Amz-Security-Token=[^&"\s]*/g;

export function findLeaks(jobs: Pick<JobRecord, "id" | "path" | "result" | "logs">[], secrets: Map<string, string>): Leak[] {
  const leaks: Leak[] = [];
  for (const job of jobs) {
    const text = `${JSON.stringify(job.result)}\n${job.logs}`.replace(PRESIGNED_TOKEN, "X-Amz-Security-Token=<presigned>");
    for (const [secret, kind] of secrets) {
      if (secret.length >= MIN_SECRET_LENGTH && text.includes(secret)) leaks.push({ jobId: job.id, path: job.path, kind });
    }
  }
  return leaks;
}

export async function issuedSecrets(stack: Stack): Promise<Map<string, string>> {
  const secrets = new Map<string, string>();
  const fromSts = (await (await fetch(`${stack.sts.url}/_local/secrets`)).json()) as { secretAccessKeys: string[]; sessionTokens: string[] };
  for (const s of fromSts.secretAccessKeys) secrets.set(s, "secret access key");
  for (const s of fromSts.sessionTokens) secrets.set(s, "session token");
  for (const s of stack.windmill.issuedIdTokens) secrets.set(s, "ID token");
  for (const s of stack.rds?.receivedTokens ?? []) secrets.set(s, "RDS IAM token");
  return secrets;
}

/**
 * The end of a test file: the leak audit, then the stack closed whatever the audit found (an
 * audit failing first, e.g. in a run filtered with -t, used to leave Postgres running).
 */
export async function auditLeaksThenClose(stack: Stack): Promise<void> {
  try {
    await expectNoLeaks(stack);
  } finally {
    await stack.close();
  }
}

/** Fails the calling test file if any job leaked a secret; names the job, never the secret. */
async function expectNoLeaks(stack: Stack): Promise<void> {
  const secrets = await issuedSecrets(stack);
  expect(secrets.size).toBeGreaterThan(0);
  expect(stack.windmill.jobs.length).toBeGreaterThan(0);
  expect(findLeaks(stack.windmill.jobs, secrets)).toEqual([]);
}
