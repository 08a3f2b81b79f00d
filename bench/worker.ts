// One benchmark task in its own Bun process (so the stand-ins' event loop is not also
// the client's, as with a real job): `bun bench/worker.ts '<task JSON>'`. Prints one
// JSON line with the result. Tasks and settings: bench/worker_tasks.ts.
import { GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import postgres, { type Sql } from "postgres";
import { parseCsv, type CsvRecord } from "./csv_parse.ts";
import type { CopyResult, InsertResult, S3GetResult, WorkerTask } from "./worker_tasks.ts";

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`bench/worker.ts needs ${name} in its environment`);
  return value;
}

/** Connects as psql would with the same PG* variables; verify-full unless PGSSLMODE=disable. */
async function connect(): Promise<Sql> {
  const ssl = process.env.PGSSLMODE === "disable" ? false : { ca: await readFile(env("PGSSLROOTCERT"), "utf8"), rejectUnauthorized: true };
  // prepare: false sends each statement unnamed, as node-postgres's query(text, params) does.
  return postgres({
    host: env("PGHOST"), port: Number(env("PGPORT")), username: env("PGUSER"), database: env("PGDATABASE"),
    password: env("PGPASSWORD"), ssl, max: 1, prepare: false, onnotice: () => {},
  });
}

/** `insert into t (cols) values ($1..$k), ($k+1..), ...` for `rows` rows of `width` columns. */
function insertStatement(table: string, columns: string[], rows: number): string {
  const tuples: string[] = [];
  for (let r = 0; r < rows; r++) tuples.push(`(${columns.map((_, c) => `$${r * columns.length + c + 1}`).join(", ")})`);
  return `insert into ${table} (${columns.join(", ")}) values ${tuples.join(", ")}`;
}

async function insertRows(task: Extract<WorkerTask, { kind: "insert" }>): Promise<InsertResult> {
  const sql = await connect();
  try {
    await sql`select 1`;
    const records = parseCsv(createReadStream(task.file));
    const header = (await records.next()).value as CsvRecord;
    const columns = header.map(String);
    const fullStatement = insertStatement(task.table, columns, task.rowsPerStatement);
    const started = performance.now();
    const deadline = started + task.maxSeconds * 1000;
    let rows = 0;
    let batch: (string | null)[] = [];
    let batchRows = 0;
    const flush = async () => {
      if (batchRows === 0) return;
      const statement = batchRows === task.rowsPerStatement ? fullStatement : insertStatement(task.table, columns, batchRows);
      await sql.unsafe(statement, batch);
      rows += batchRows;
      batch = [];
      batchRows = 0;
    };
    for await (const record of records) {
      batch.push(...record);
      batchRows++;
      if (batchRows === task.rowsPerStatement) await flush();
      if (rows + batchRows >= task.maxRows || performance.now() >= deadline) break;
    }
    await flush();
    return { rows, seconds: (performance.now() - started) / 1000 };
  } finally {
    await sql.end({ timeout: 5 });
  }
}

async function copyIn(task: Extract<WorkerTask, { kind: "copy-in" }>): Promise<CopyResult> {
  const sql = await connect();
  try {
    const copy = await sql.unsafe(`copy ${task.table} from stdin with (format csv, header true)`).writable();
    await pipeline(createReadStream(task.file), copy);
    return { bytes: (await stat(task.file)).size };
  } finally {
    await sql.end({ timeout: 5 });
  }
}

async function copyOut(task: Extract<WorkerTask, { kind: "copy-out" }>): Promise<CopyResult> {
  const sql = await connect();
  try {
    await sql.begin("read only", async (tx) => {
      const out = await tx.unsafe(`copy (${task.query}) to stdout with (format csv, header true)`).readable();
      await pipeline(out, createWriteStream(task.file));
    });
    return { bytes: (await stat(task.file)).size };
  } finally {
    await sql.end({ timeout: 5 });
  }
}

async function upload(task: Extract<WorkerTask, { kind: "upload" }>): Promise<CopyResult> {
  const s3 = new S3Client({});
  const body = createReadStream(task.file);
  await new Upload({ client: s3, partSize: task.partSize, queueSize: task.queueSize, leavePartsOnError: false, params: { Bucket: task.bucket, Key: task.key, Body: body } }).done();
  return { bytes: (await stat(task.file)).size };
}

async function s3Get(task: Extract<WorkerTask, { kind: "s3-get" }>): Promise<S3GetResult> {
  const s3 = new S3Client({});
  const object = await s3.send(new GetObjectCommand({ Bucket: task.bucket, Key: task.key }));
  const hash = createHash("sha256");
  let bytes = 0;
  for await (const chunk of object.Body as Readable) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { bytes, sha256: hash.digest("hex") };
}

async function run(task: WorkerTask): Promise<InsertResult | CopyResult | S3GetResult> {
  switch (task.kind) {
    case "insert": return insertRows(task);
    case "copy-in": return copyIn(task);
    case "copy-out": return copyOut(task);
    case "upload": return upload(task);
    case "s3-get": return s3Get(task);
  }
}

console.log(JSON.stringify(await run(JSON.parse(process.argv[2] ?? "{}") as WorkerTask)));
