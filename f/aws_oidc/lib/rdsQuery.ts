// A parameterised query on RDS with a row limit and a statement timeout.
import type { AwsStsCredentials } from "./credentialsResource.ts";
import { withRds } from "./rds.ts";
import { InputError, parseDuration } from "./validate.ts";

/** Rows fetched per round trip while filling the row limit. */
const CURSOR_BATCH = 500;

/**
 * The rows themselves: Windmill renders an array of objects as a table, and a flow step or
 * script that consumes the result gets the rows as they are. What an object around them
 * would carry (count, truncation, the command) goes to the job log instead.
 */
export type QueryRows = Record<string, unknown>[];

export async function runQuery(
  credentials: AwsStsCredentials | string,
  database: unknown,
  options: { sql: string; args: unknown[]; rowLimit: number; statementTimeout: string },
): Promise<QueryRows> {
  if (!options.sql.trim()) throw new InputError("sql", "it is empty", "Write a statement; pass values as $1, $2 with args");
  if (!Array.isArray(options.args)) throw new InputError("args", "it is not a list", "Give the values for $1, $2, ... as a JSON list");
  if (!Number.isInteger(options.rowLimit) || options.rowLimit < 1) {
    throw new InputError("row_limit", `${options.rowLimit} is not a positive count`, "Use e.g. 1000");
  }
  const timeoutMs = parseDuration("statement_timeout", options.statementTimeout, 1, 12 * 3600) * 1000;
  return withRds(credentials, database, ({ sql }) =>
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
      logOutcome(firstWord(options.sql), rows.length, truncated ? options.rowLimit : undefined);
      return rows;
    }),
  );
}

function logOutcome(command: string | null, rows: number, truncatedAt: number | undefined): void {
  console.log(`${command ?? "Statement"}: ${rows} row${rows === 1 ? "" : "s"} returned`);
  if (truncatedAt !== undefined) console.warn(`WARNING: truncated: the query returned more than row_limit (${truncatedAt}) rows; only the first ${truncatedAt} are in the result. Raise row_limit, or add a WHERE or LIMIT.`);
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
