// Closing the terminal that runs `npm run dev` (SIGHUP to its process group) stops every
// stand-in, as Ctrl-C and a kill do: no Postgres or s3rver of that run is left, nor its temp folders.
import { describe, expect, test } from "bun:test";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { REPO_ROOT } from "../helpers/testStack.ts";

/** How the line dev prints once every stand-in is up and the sample data is in place begins. */
const READY_PREFIX = "Running; ";

interface Proc {
  pid: number;
  cmdline: string;
}

function readProc(pid: number): { ppid: number; cmdline: string } | undefined {
  try {
    // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces, so read after the last ")".
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    return { ppid, cmdline: readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ").trim() };
  } catch {
    return undefined;
  }
}

/** Every living process below `root` (children, grandchildren, ...). */
function descendants(root: number): Proc[] {
  const all = readdirSync("/proc").filter((name) => /^\d+$/.test(name)).map(Number);
  const parents = new Map(all.map((pid) => [pid, readProc(pid)] as const));
  const found: Proc[] = [];
  const below = new Set([root]);
  for (let grew = true; grew;) {
    grew = false;
    for (const [pid, info] of parents) {
      if (info && !below.has(pid) && below.has(info.ppid)) {
        below.add(pid);
        found.push({ pid, cmdline: info.cmdline });
        grew = true;
      }
    }
  }
  return found;
}

/** A process still running with the same command line (a reused pid has another). */
function stillRunning(proc: Proc): boolean {
  return readProc(proc.pid)?.cmdline === proc.cmdline;
}

/** The run's own temp folders, as its Postgres (-D) and s3rver (data dir) name them. */
function tempFoldersOf(procs: Proc[]): string[] {
  const names = procs.flatMap((p) => [...p.cmdline.matchAll(/(?:rds|s3)-standin-[A-Za-z0-9]+/g)].map((m) => m[0]));
  return [...new Set(names)].map((name) => join(tmpdir(), name));
}

describe("npm run dev", () => {
  test("SIGHUP (the terminal closing) stops Postgres and s3rver and removes the run's temp folders", async () => {
    // Its tokens in a folder of the test's, not the clone's .dev-state, which is the user's.
    const stateDir = mkdtempSync(join(tmpdir(), "signals-dev-state-"));
    // Its own process group, as a terminal's foreground job is: the hangup reaches every process in it.
    const dev = spawn(process.execPath, ["local/demo/demo.ts", "dev", "--state-dir", stateDir], { cwd: REPO_ROOT, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    dev.stderr!.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => dev.once("exit", (code, signal) => resolve({ code, signal })));
    let procs: Proc[] = [];
    try {
      const lines = createInterface({ input: dev.stdout! });
      const ready = await new Promise<boolean>((resolve) => {
        lines.on("line", (line) => line.startsWith(READY_PREFIX) && resolve(true));
        void exited.then(() => resolve(false));
      });
      if (!ready) throw new Error(`dev exited before it was ready:\n${stderr}`);
      procs = descendants(dev.pid!);
      const folders = tempFoldersOf(procs);
      expect(procs.filter((p) => p.cmdline.includes("s3rverChild.mjs"))).toHaveLength(1);
      expect(procs.filter((p) => /\/postgres -D /.test(p.cmdline))).toHaveLength(1);
      expect(folders.filter((f) => f.includes("rds-standin-"))).toHaveLength(1);
      expect(folders.filter((f) => f.includes("s3-standin-"))).toHaveLength(1);
      expect(folders.every(existsSync)).toBe(true);

      process.kill(-dev.pid!, "SIGHUP");
      // 128 + SIGHUP's number: closed by its handler, not killed by the signal.
      expect(await exited).toEqual({ code: 129, signal: null });
      expect(procs.filter(stillRunning)).toEqual([]);
      expect(folders.filter(existsSync)).toEqual([]);
    } finally {
      // Whatever a failed run left behind is cleaned here, not by the next test.
      if (dev.exitCode === null && dev.signalCode === null) dev.kill("SIGKILL");
      for (const p of procs.filter(stillRunning)) process.kill(p.pid, "SIGKILL");
      for (const folder of tempFoldersOf(procs)) rmSync(folder, { recursive: true, force: true });
      rmSync(stateDir, { recursive: true, force: true });
    }
  });
});
