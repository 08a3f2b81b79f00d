// What the demo (and the flow tests) set up on top of the stand-ins, the way a person
// sets up a real workspace: an aws_oidc resource for the role, an aws_rds_iam_postgres
// resource for the database, a bucket with CSV files, a table the IAM user may load.
import { CreateBucketCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { DEFAULT_LEDGER_TABLE, ledgerDdl } from "../../f/aws_oidc/lib/loadLedger.ts";
import type { LocalStack } from "../stack.ts";
import { DB_USER, DEMO_ROLE_ARN, REGION } from "../stack.ts";

export const ROLE_RESOURCE = "f/aws_oidc/aws_role";
export const DATABASE_RESOURCE = "f/aws_oidc/orders_db";
export const CREDENTIALS_RESOURCE = "f/aws_oidc/aws_credentials";
export const DEMO_BUCKET = "demo-data";
export const DEMO_TABLE = "orders";
/** Ships disabled, reading the documented f/aws_oidc/orders_db (f/aws_oidc/refresh_rds_postgresql.schedule.yaml). */
export const RDS_REFRESH_SCHEDULE = "f/aws_oidc/refresh_rds_postgresql";

async function windmillApi(stack: LocalStack, path: string, body: unknown): Promise<void> {
  const res = await fetch(`${stack.windmill.url}/api/w/${stack.windmill.workspace}/${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${stack.windmill.adminToken}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`Windmill ${path}: HTTP ${res.status} ${await res.text()}`);
}

/** Creates the role and database resources, the demo table, the load ledger and the IAM database user's grants. */
export async function setUpWorkspace(stack: LocalStack): Promise<void> {
  const rds = stack.rds;
  if (!rds) throw new Error("the demo needs the RDS stand-in: startLocalStack({ rds: true })");
  await windmillApi(stack, "resources/create", {
    path: ROLE_RESOURCE, resource_type: "aws_oidc", value: { roleArn: DEMO_ROLE_ARN, region: REGION },
    description: "The role the local STS trusts for this workspace's jobs",
  });
  await windmillApi(stack, "resources/create", {
    path: DATABASE_RESOURCE, resource_type: "aws_rds_iam_postgres",
    value: { host: rds.host, port: rds.port, database: "postgres", user: DB_USER, region: REGION, tlsMode: "verify-full", caCert: rds.caCertPem },
    description: "The RDS stand-in: IAM auth, TLS verified against its CA",
  });
  await rds.adminSql(`
    create table if not exists ${DEMO_TABLE} (
      order_id bigint primary key, customer text not null, country text, amount numeric(12,2), ordered_at timestamptz, note text);
    grant select, insert, update, delete on ${DEMO_TABLE} to ${DB_USER};
    ${ledgerDdl(DEFAULT_LEDGER_TABLE)};
    grant select, insert, delete on ${DEFAULT_LEDGER_TABLE} to ${DB_USER};`);
}

/**
 * Points the RDS refresh schedule at the demo's database resource and enables it or not, as a
 * user does in Windmill → Schedules: it ships disabled, naming f/aws_oidc/orders_db, which the
 * stand-in has no reason to hold.
 */
export async function useDemoDatabaseInRdsRefresh(stack: LocalStack, enabled: boolean): Promise<void> {
  const res = await fetch(`${stack.windmill.url}/api/w/${stack.windmill.workspace}/schedules/get/${RDS_REFRESH_SCHEDULE}`, {
    headers: { authorization: `Bearer ${stack.windmill.adminToken}` },
  });
  if (!res.ok) throw new Error(`Windmill schedules/get/${RDS_REFRESH_SCHEDULE}: HTTP ${res.status} ${await res.text()}`);
  const schedule = (await res.json()) as { schedule: string; timezone: string; args: Record<string, unknown> };
  await windmillApi(stack, `schedules/update/${RDS_REFRESH_SCHEDULE}`, {
    schedule: schedule.schedule, timezone: schedule.timezone, args: { ...schedule.args, database: `$res:${DATABASE_RESOURCE}` },
  });
  await windmillApi(stack, `schedules/setenabled/${RDS_REFRESH_SCHEDULE}`, { enabled });
}

/**
 * Sample orders as CSV: quoted fields with commas, quotes and newlines, unicode and
 * NULLs (empty unquoted fields), so the demo exercises what real exports contain.
 */
export function sampleCsv(firstId: number, rows: number): string {
  const customers = ["Ada Lovelace", "Grace \"Amazing\" Hopper", "Zoë Ünïcode", "Alan, Turing", "Katherine Johnson"];
  const countries = ["GB", "US", "FR", "", "DE"];
  const lines = ["order_id,customer,country,amount,ordered_at,note"];
  for (let i = 0; i < rows; i++) {
    const id = firstId + i;
    const customer = customers[id % customers.length];
    const note = id % 7 === 0 ? '"gift wrap\nleave at door"' : id % 5 === 0 ? "" : `"ref ${id}"`;
    const country = countries[id % countries.length];
    lines.push(`${id},"${customer.replace(/"/g, '""')}",${country},${(id % 1000) + 0.99},2026-11-${String((id % 28) + 1).padStart(2, "0")}T10:00:00Z,${note}`);
  }
  return `${lines.join("\n")}\n`;
}

export async function ensureBucket(s3: S3Client, bucket: string): Promise<void> {
  await s3.send(new CreateBucketCommand({ Bucket: bucket })).catch((err: { name?: string }) => {
    if (err.name !== "BucketAlreadyOwnedByYou" && err.name !== "BucketAlreadyExists") throw err;
  });
}

/** Uploads `objects` CSV files of `rowsPerObject` rows under `prefix`, with credentials the demo role gets. */
export async function uploadSampleCsvs(s3: S3Client, bucket: string, prefix: string, objects: number, rowsPerObject: number): Promise<number> {
  await ensureBucket(s3, bucket);
  for (let i = 0; i < objects; i++) {
    const body = sampleCsv(i * rowsPerObject + 1, rowsPerObject);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `${prefix}part-${String(i).padStart(3, "0")}.csv`, Body: body, ContentType: "text/csv" }));
  }
  return objects * rowsPerObject;
}
