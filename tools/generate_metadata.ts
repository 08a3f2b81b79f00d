// `npm run metadata`: regenerates script schemas, locks and wmill-lock.yaml with the real
// `wmill generate-metadata`, against a throwaway Windmill stand-in (the CLI needs a server
// for lock jobs). Run it after changing a script's code or its main signature. Its lock
// jobs run `bun install`, as Windmill's do, so the npm registry must be reachable. Then each
// script's `schema.order` is set to its parameters' order (tools/formOrder.ts).
import { startWindmill } from "../local/windmill/server.ts";
import { REPO_ROOT } from "../local/stack.ts";
import { runWmill } from "../local/windmill/wmillCli.ts";
import { writeFormOrders } from "./formOrder.ts";
import { parseCommandLine, UsageError } from "./cli.ts";

const USAGE = `usage: npm run metadata

Regenerates every script's .script.yaml schema and .script.lock, and wmill-lock.yaml, with the
real wmill generate-metadata against a local Windmill stand-in. Takes no options.`;

/** Each lock job bundles the script and runs `bun install` (~1.5 s warm, several seconds with a cold bun cache). */
const METADATA_TIMEOUT_MS = 15 * 60 * 1000;

try {
  parseCommandLine(USAGE, {});
} catch (err) {
  console.error(`${(err as UsageError).message}\n${USAGE}`);
  process.exit(2);
}

const windmill = await startWindmill({ workspaceDir: REPO_ROOT });
try {
  const target = { url: windmill.url, workspace: windmill.workspace, token: windmill.adminToken };
  // One at a time: in parallel the CLI sometimes writes an empty .script.yaml.
  const run = await runWmill(REPO_ROOT, ["generate-metadata", "--yes", "--parallel", "1"], target, METADATA_TIMEOUT_MS);
  console.log(run.output.trim());
  if (run.code !== 0) process.exitCode = 1;
  else for (const file of await writeFormOrders(REPO_ROOT)) console.log(`run form order written: ${file}`);
} finally {
  await windmill.close();
}
