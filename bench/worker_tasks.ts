// What bench/run.ts asks bench/worker.ts to do, and what each task answers (one JSON
// line on stdout). Connection settings travel in the environment psql reads (PGHOST,
// PGPORT, PGUSER, PGDATABASE, PGPASSWORD, PGSSLMODE, PGSSLROOTCERT) and the AWS SDK's
// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL_S3).

export type WorkerTask =
  /** The hand-written way: parse rows, INSERT them `rowsPerStatement` at a time (autocommit), stop at a bound. */
  | { kind: "insert"; file: string; table: string; rowsPerStatement: number; maxRows: number; maxSeconds: number }
  /** psql's \copy FROM, for machines without psql: COPY FROM STDIN fed from the file. */
  | { kind: "copy-in"; file: string; table: string }
  /** psql's \copy TO, for machines without psql: COPY TO STDOUT into the file. */
  | { kind: "copy-out"; file: string; query: string }
  /** A plain multipart upload of a file, with the part size and queue the export uses. */
  | { kind: "upload"; file: string; bucket: string; key: string; partSize: number; queueSize: number }
  /** Downloads an object and hashes it. */
  | { kind: "s3-get"; bucket: string; key: string };

export interface InsertResult {
  rows: number;
  /** From the first INSERT to the last one's answer (the connection is open before). */
  seconds: number;
}

export interface CopyResult {
  bytes: number;
}

export interface S3GetResult {
  bytes: number;
  sha256: string;
}
