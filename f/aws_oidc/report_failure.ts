// A flow's failure module: says which step failed, the error, and the fix it printed.
import { describeFailure } from "./lib/flowReports.ts";

export async function main(error: object) {
  const report = describeFailure(error as { name?: string; message?: string; step_id?: string });
  console.log(`Step ${report.failed_step} failed: ${report.message}`);
  return report;
}
