// A parameterised query on RDS with a row limit and a statement timeout.
import type { AwsStsCredentials } from "./credentialsResource.ts";
import { withRds } from "./rds.ts";
import { InputError, parseDuration } from "./validate.ts";

/** Rows fetched per round trip while filling the row limit. */
const CURSOR_BATCH = 500;

export interface QueryResult {
  rows: Record<string, unknown>[];
  row_count: number;
  /** True when the query returned more rows than row_limit: only the first ones are shown. */
  truncated: boolean;
  command: string | null;
  warnings: string[];
}

export async function runQuery(
  credentials: AwsStsCredentials | string,
  database: unknown,
  options: { sql: string; args: unknown[]; rowLimit: number; statementTimeout: string },
): Promise<QueryResult> {
  if (!options.sql.trim()) throw new InputError("sql", "it is empty", "Write a statement; pass values as $1, $2 with args");
  if (!Array.isArray(options.args)) throw new InputError("args", "it is not a list", "Give the values for $1, $2, ... as a JSON list");
  if (!Number.isInteger(options.rowLimit) || options.rowLimit < 1) {
    throw new InputError("row_limit", `${options.rowLimit} is not a positive count`, "Use e.g. 1000");
  }
  const timeoutMs = parseDuration("statement_timeout", options.statementTimeout, 1, 12 * 3600) * 1000;
  return withRds(credentials, database, ({ sql, warnings }) =>
    sql.begin(async (tx) => {
      await tx.unsafe(`set local statement_timeout = ${timeoutMs}`);
      const rows: Record<string, unknown>[] = [];
      let truncated = false;
      const query = tx.unsafe(options.sql, options.args as never[]);
      for await (const batch of query.cursor(CURSOR_BATCH)) {
        for (const row of batch) {
          if (rows.length >= options.rowLimit) {
            truncated = true;
            break;
          }
          rows.push(displayRow(row));
        }
        if (truncated) break;
      }
      return { rows, row_count: rows.length, truncated, command: firstWord(options.sql), warnings };
    }),
  );
}

/** Values the Windmill table renders as text: bytea as base64, bigint as string. */
function displayRow(row: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row)) {
    out[k] = Buffer.isBuffer(v) ? v.toString("base64") : typeof v === "bigint" ? v.toString() : v;
  }
  return out;
}

function firstWord(sql: string): string | null {
  return /^\s*(\w+)/.exec(sql)?.[1]?.toUpperCase() ?? null;
}
