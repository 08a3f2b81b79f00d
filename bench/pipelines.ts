// The pipelines a person with no bundle writes, over the same stand-ins: for a load,
// `aws s3 cp s3://b/k - | psql -c "\copy t from stdin csv header"`; for an export,
// `psql -c "\copy (q) to stdout csv header" | aws s3 cp - s3://b/k`. The `aws s3 cp` half
// is bench/s3_pipe.mjs (Node, the SDK's GetObject / lib-storage Upload); psql connects
// through the TLS IAM gateway as in bench/psql.ts. The stages are joined by an OS pipe
// (bash, pipefail), so no byte passes through the benchmark's own process.
import { fileURLToPath } from "node:url";
import { runChild, type ChildOutcome } from "./children.ts";
import { PSQL, type PgEnv } from "./psql.ts";

const S3_PIPE = fileURLToPath(new URL("./s3_pipe.mjs", import.meta.url));
const NODE = Bun.which("node");
const BASH = Bun.which("bash");

/** Both halves exist on this machine (psql and node); without them the peer rows are left out. */
export function handBuiltAvailable(): boolean {
  return Boolean(PSQL && NODE && BASH);
}

/** `bash -o pipefail -c SCRIPT` with the stages' words as positional parameters (no quoting of data into the script). */
function runPipeline(script: string, words: string[], env: Record<string, string>, timeoutMs: number): Promise<ChildOutcome> {
  return runChild([BASH!, "-o", "pipefail", "-c", script, "pipeline", ...words], env, timeoutMs);
}

/** GetObject to stdout | psql \copy FROM pstdin (psql's own standard input). */
export function handBuiltLoad(pg: PgEnv, awsEnv: Record<string, string>, bucket: string, key: string, table: string, timeoutMs: number): Promise<ChildOutcome> {
  const copy = `\\copy ${table} from pstdin csv header`;
  return runPipeline(`"$1" "$2" get "$3" "$4" | "$5" -X -q -v ON_ERROR_STOP=1 -c "$6"`, [NODE!, S3_PIPE, bucket, key, PSQL!, copy], { ...awsEnv, ...pg }, timeoutMs);
}

/** psql \copy (query) TO pstdout | a streaming multipart upload of stdin, `partBytes` × `queue` as `aws s3 cp -` does. */
export function handBuiltExport(pg: PgEnv, awsEnv: Record<string, string>, query: string, bucket: string, key: string, partBytes: number, queue: number, timeoutMs: number): Promise<ChildOutcome> {
  const copy = `\\copy (${query}) to pstdout csv header`;
  return runPipeline(`"$1" -X -q -v ON_ERROR_STOP=1 -c "$2" | "$3" "$4" put "$5" "$6" "$7" "$8"`, [PSQL!, copy, NODE!, S3_PIPE, bucket, key, String(partBytes), String(queue)], { ...awsEnv, ...pg }, timeoutMs);
}
