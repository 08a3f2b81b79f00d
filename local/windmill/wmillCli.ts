// Runs the real `wmill` CLI (npm windmill-cli) against the Windmill stand-in: the same
// command people run against their instance, with a throwaway HOME so no personal
// wmill config is read or written.
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

/** A push of this repo takes 1-3 s; the limit only stops a hung CLI. */
const CLI_TIMEOUT_MS = 60_000;

export interface WmillTarget {
  url: string;
  workspace: string;
  token: string;
}

export interface WmillRun {
  code: number | null;
  /** stdout and stderr interleaved, colours stripped. */
  output: string;
}

function wmillBinary(): string {
  const pkg = createRequire(import.meta.url).resolve("windmill-cli/package.json");
  return join(dirname(pkg), "esm", "main.js");
}

/** Runs `wmill <args>`; with a target, against that server (commands like lint need none). */
export async function runWmill(cwd: string, args: string[], target?: WmillTarget, timeoutMs = CLI_TIMEOUT_MS): Promise<WmillRun> {
  const server = target ? ["--base-url", target.url, "--token", target.token, "--workspace", target.workspace] : [];
  const home = await mkdtemp(join(tmpdir(), "wmill-home-"));
  try {
    return await new Promise((resolve, reject) => {
      const child = spawn("node", [wmillBinary(), ...args, ...server], {
        cwd,
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, NO_COLOR: "1" },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let output = "";
      const collect = (d: Buffer) => (output += d.toString("utf8").replace(/\x1b\[[0-9;]*m/g, ""));
      child.stdout.on("data", collect);
      child.stderr.on("data", collect);
      const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
      child.on("error", reject);
      child.on("close", (code) => {
        clearTimeout(timer);
        resolve({ code, output });
      });
    });
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

/** `wmill sync push --yes` of `dir`; throws with the CLI's output if it fails. */
export async function pushWorkspace(dir: string, target: WmillTarget): Promise<WmillRun> {
  const run = await runWmill(dir, ["sync", "push", "--yes"], target);
  if (run.code !== 0) throw new Error(`wmill sync push failed (exit ${run.code}):\n${run.output}`);
  return run;
}
