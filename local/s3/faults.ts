// Injected failures: error answers instead of s3rver's, and connections cut mid-response,
// set from tests through POST|DELETE /_local/faults.
import { HttpError } from "../shared/http.ts";
import { MESSAGES, S3ErrorReply } from "./errors.ts";

export interface S3Faults {
  /** The error the next `count` S3 requests get instead of reaching s3rver: 500 InternalError or 503 SlowDown. */
  status: 500 | 503;
  count: number;
  /** How many of the next requests that reach s3rver have their connection cut mid-response. */
  dropConnections: number;
}

/** The error answer for this request, if one is due. */
export function takeErrorFault(faults: S3Faults): S3ErrorReply | undefined {
  if (faults.count <= 0) return undefined;
  faults.count -= 1;
  return faults.status === 503 ? new S3ErrorReply("SlowDown", MESSAGES.slowDown) : new S3ErrorReply("InternalError", MESSAGES.internal);
}

/** Whether this request's response is to be cut midway. */
export function takeDropFault(faults: S3Faults): boolean {
  if (faults.dropConnections <= 0) return false;
  faults.dropConnections -= 1;
  return true;
}

/** Sets faults from a POST /_local/faults body; HttpError 400 for anything malformed. */
export function applyFaults(faults: S3Faults, body: Record<string, unknown>): void {
  const { status, count, dropConnections, ...rest } = body;
  const isCount = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v >= 0;
  if (Object.keys(rest).length) throw new HttpError(400, `unknown fault fields: ${Object.keys(rest).join(", ")}`);
  if (count !== undefined || status !== undefined) {
    if (status !== 500 && status !== 503) throw new HttpError(400, "status must be 500 (InternalError) or 503 (SlowDown)");
    if (!isCount(count)) throw new HttpError(400, "count must be a non-negative integer");
    Object.assign(faults, { status, count });
  }
  if (dropConnections !== undefined) {
    if (!isCount(dropConnections)) throw new HttpError(400, "dropConnections must be a non-negative integer");
    faults.dropConnections = dropConnections;
  }
}

export function clearFaults(faults: S3Faults): void {
  Object.assign(faults, { status: 500, count: 0, dropConnections: 0 });
}

