// `npm run bench` — moves a CSV data set between the S3 and RDS stand-ins every way
// (psql \copy, hand-written INSERT loops, this project's load and export jobs and its
// flow), prints ONE table and writes it to bench/RESULTS.md with the machine, versions
// and date. Exits 1 if a correctness check (row counts, round trip, STS calls) failed.
//
//   npm run bench                       1 GiB (about 10 million rows), 8 objects for the flow
//   npm run bench -- --size 256MiB      any size in MiB or GiB
//   npm run bench -- --objects 16       objects for the flow's parallel for-loop
//   npm run bench -- --quick            a few MB, to check that every path works
//   npm run bench -- --out FILE         write the results elsewhere (--quick writes none by default,
//                                       so a check run never overwrites real results)
//   npm run bench -- --workspace DIR    deploy and measure another checkout (a candidate product change)
//                                       instead of this repo; its results go to --out only
import { writeFile } from "node:fs/promises";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { runBenchmark } from "./benchmark.ts";
import { MIB } from "./context.ts";
import { renderResults, renderTable } from "./report.ts";
import { failedChecks } from "./results.ts";

const DEFAULT_SIZE = "1GiB";
/** A few MB: every path runs, in seconds. */
const QUICK_SIZE = "4MiB";
const DEFAULT_OBJECTS = 8;
const RESULTS_FILE = fileURLToPath(new URL("./RESULTS.md", import.meta.url));
const UNITS: Record<string, number> = { MIB, GIB: 1024 * MIB };

export function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(MiB|GiB)$/i.exec(text.trim());
  if (!match) throw new Error(`--size ${JSON.stringify(text)}: use a number of MiB or GiB, e.g. 256MiB or 1GiB`);
  const bytes = Math.round(Number(match[1]) * UNITS[match[2]!.toUpperCase()]!);
  if (bytes < MIB) throw new Error(`--size ${text}: at least 1MiB`);
  return bytes;
}

function parseObjects(text: string | undefined): number {
  const objects = Number(text ?? DEFAULT_OBJECTS);
  if (!Number.isInteger(objects) || objects < 1 || objects > 1000) throw new Error(`--objects ${text}: a whole number from 1 to 1000`);
  return objects;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      size: { type: "string" }, objects: { type: "string" }, quick: { type: "boolean", default: false },
      out: { type: "string" }, workspace: { type: "string" },
    },
  });
  const quick = values.quick === true;
  const report = await runBenchmark({
    sizeBytes: parseSize(values.size ?? (quick ? QUICK_SIZE : DEFAULT_SIZE)),
    objects: parseObjects(values.objects),
    quick,
    workspaceDir: values.workspace ? resolve(values.workspace) : undefined,
    log: (line) => console.log(line),
  });
  console.log(`\n${renderTable(report)}\n`);
  // bench/RESULTS.md describes this repo as it is: a quick run or another checkout never overwrites it.
  const out = values.out ?? (quick || values.workspace ? undefined : RESULTS_FILE);
  if (out) {
    await writeFile(out, renderResults(report));
    console.log(`Written to ${out}`);
  }
  const failed = failedChecks(report);
  for (const c of failed) console.error(`CHECK FAILED: ${c.name}: expected ${c.expected}, got ${c.actual}`);
  if (failed.length) process.exitCode = 1;
}

if (import.meta.main) {
  await main().catch((err: unknown) => {
    console.error(`\n✖ ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
    process.exit(1);
  });
}
