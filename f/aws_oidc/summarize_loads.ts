// The last step of s3_csv_to_rds: one row per object (loaded, skipped, failed, with its fix) and a TOTAL row.
// With fail_on_failures, any failed object fails the flow so its failure module reports it.
import { failuresError, summarizeLoads, summaryTable, type LoadOutcome } from "./lib/flowReports.ts";
import { withDefaults } from "./lib/optionalArgs.ts";

export async function main(keys: string[], loads: object[], fail_on_failures: boolean = true) {
  const o = withDefaults({ fail_on_failures }, { fail_on_failures: true });
  const summary = summarizeLoads(keys, loads as LoadOutcome[]);
  const table = summaryTable(summary);
  console.table(table);
  if (o.fail_on_failures && summary.failed > 0) throw failuresError(summary);
  return table;
}
