// The error an AWS call of the bundle ends in: which service and operation failed, with
// which code, and what to change, in one message read in the job log ("…\nFix: …").

export class AwsCallError extends Error {
  constructor(
    readonly service: "S3" | "STS",
    readonly operation: string,
    readonly code: string,
    /** What failed, with AWS's own message. */
    readonly problem: string,
    /** What to change so the call succeeds. */
    readonly fix: string,
  ) {
    super(`${problem}\nFix: ${fix}`);
  }
}
