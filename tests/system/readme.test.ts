// The docs run as written: every shell block of README.md and docs/*.md marked `runnable` runs
// with bash, in a clone's folder, against `npm run dev`'s stack, with the variables
// `npm run dev` prints for the user to paste. Conventions: docs/contributing.md, "The docs are tested".
// The clone is a copy of this one in a temp folder: the commands write files (aws-setup/, a
// wmill profile), and a user's own must never be touched, even by a run that is killed.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { REPO_ROOT } from "../../local/stack.ts";

const SHELLS = new Set(["sh", "bash", "shell"]);
const MARKERS = new Set(["runnable", "aws", "manual"]);

interface ShellBlock {
  file: string;
  line: number;
  markers: string[];
  code: string;
  expects: string[];
}

/** The fenced shell blocks of a markdown page, with their info-string markers and `# expect:` lines. */
export function shellBlocks(file: string, text: string): ShellBlock[] {
  const blocks: ShellBlock[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S+)\s*(.*)$/.exec(lines[i]);
    if (!open) continue;
    const end = lines.findIndex((l, j) => j > i && l.startsWith("```"));
    if (end < 0) throw new Error(`${file}:${i + 1}: a code block that never closes`);
    if (SHELLS.has(open[1])) {
      const code = lines.slice(i + 1, end).join("\n");
      const expects = [...code.matchAll(/^# expect: (.+)$/gm)].map((m) => m[1].trim());
      blocks.push({ file, line: i + 1, markers: open[2].split(/\s+/).filter(Boolean), code, expects });
    }
    i = end;
  }
  return blocks;
}

const DOC_FILES = ["README.md", ...readdirSync(join(REPO_ROOT, "docs")).filter((f) => f.endsWith(".md")).sort().map((f) => `docs/${f}`)];
const BLOCKS = DOC_FILES.flatMap((file) => shellBlocks(file, readFileSync(join(REPO_ROOT, file), "utf8")));
const RUNNABLE = BLOCKS.filter((b) => b.markers.includes("runnable"));
const ANSI = /\x1b\[[0-9;]*m/g;

/** What a fresh clone has besides the tracked files: the install (linked, not copied), never what a run writes. */
const NOT_COPIED = new Set(["node_modules", ".git", "aws-setup", ".dev-state", ".local-state"]);

/** A copy of this clone to run the docs in; its node_modules is this one's. */
function copyOfClone(into: string): string {
  const clone = join(into, "clone");
  cpSync(REPO_ROOT, clone, { recursive: true, filter: (src) => !NOT_COPIED.has(relative(REPO_ROOT, src).split("/")[0]) });
  symlinkSync(join(REPO_ROOT, "node_modules"), join(clone, "node_modules"));
  return clone;
}

/** `npm run dev` as the user starts it in `clone`; resolves with its printed `export …` line once it is ready. */
async function startDev(clone: string, stateDir: string, port?: number): Promise<{ proc: Subprocess<"ignore", "pipe", "pipe">; exports: string }> {
  const ports = port ? ["--windmill-port", String(port)] : [];
  const proc = Bun.spawn([process.execPath, "local/demo/demo.ts", "dev", "--state-dir", stateDir, ...ports], {
    cwd: clone, stdin: "ignore", stdout: "pipe", stderr: "pipe",
  });
  let output = "";
  const decoder = new TextDecoder();
  const reader = proc.stdout.getReader();
  while (!output.includes("stops every stand-in.")) {
    const { done, value } = await reader.read();
    if (done) break;
    output += decoder.decode(value);
  }
  reader.releaseLock();
  const exports = /^export WM=.*$/m.exec(output)?.[0];
  if (!exports) throw new Error(`npm run dev did not print its variables:\n${output}\n${await new Response(proc.stderr).text()}`);
  return { proc, exports };
}

async function stopDev(proc: Subprocess): Promise<void> {
  proc.kill("SIGTERM");
  await proc.exited;
}

function variable(exports: string, name: string): string {
  const value = new RegExp(`\\b${name}=(\\S+)`).exec(exports)?.[1];
  if (!value) throw new Error(`npm run dev's line has no ${name}: ${exports}`);
  return value;
}

test("every shell block in README.md and docs/ says whether it runs (runnable, aws or manual)", () => {
  const unmarked = BLOCKS.filter((b) => !b.markers.some((m) => MARKERS.has(m))).map((b) => `${b.file}:${b.line}`);
  expect(unmarked).toEqual([]);
  expect(RUNNABLE.length).toBeGreaterThan(5);
});

describe("the docs' runnable commands, against npm run dev", () => {
  const scratch = mkdtempSync(join(tmpdir(), "readme-test-"));
  const clone = copyOfClone(scratch);
  const stateDir = join(scratch, "dev-state");
  /** The CLI's profiles live here, never in the user's ~/.config. */
  const wmillConfigDir = join(scratch, "wmill-config");
  let dev: Subprocess | undefined;
  let exports = "";
  /** Each page's shell state: what its earlier blocks exported, as in one terminal. */
  const pageState = (file: string) => join(scratch, `${file.replace(/\W/g, "_")}.env`);

  beforeAll(async () => {
    const started = await startDev(clone, stateDir);
    dev = started.proc;
    exports = started.exports;
    for (const file of DOC_FILES) writeFileSync(pageState(file), `${exports}\n`);
  }, 180_000);

  afterAll(async () => {
    if (dev) await stopDev(dev);
    rmSync(scratch, { recursive: true, force: true });
  });

  for (const block of RUNNABLE) {
    test(`${block.file}:${block.line} runs as written`, async () => {
      const state = pageState(block.file);
      const script = `set -eo pipefail\nsource "${state}"\n${block.code}\nexport -p > "${state}"\n`;
      const proc = Bun.spawn(["bash", "-c", script], {
        cwd: clone, stdin: "ignore", stdout: "pipe", stderr: "pipe",
        env: { ...process.env, WMILL_CONFIG_DIR: wmillConfigDir },
      });
      const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
      const output = `${out}\n${err}`.replace(ANSI, "");
      expect({ block: `${block.file}:${block.line}`, code, output: code === 0 ? "" : output }).toEqual({ block: `${block.file}:${block.line}`, code: 0, output: "" });
      for (const expected of block.expects) {
        if (!output.includes(expected)) throw new Error(`${block.file}:${block.line}: the output lacks "${expected}":\n${output}`);
      }
    }, 180_000);
  }

  test("a restart on the same port keeps the URL and tokens, so a saved wmill profile still pushes", async () => {
    const profileDir = join(scratch, "wmill-profile");
    const wmill = async (...args: string[]) => {
      const proc = Bun.spawn(["npx", "wmill", ...args], {
        cwd: clone, stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, WMILL_CONFIG_DIR: profileDir },
      });
      const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
      return { code, output: code === 0 ? "" : `${out}\n${err}` };
    };
    const url = variable(exports, "WM");
    expect(await wmill("workspace", "add", "dev", variable(exports, "WS"), `${url}/`, "--token", variable(exports, "TOKEN"))).toEqual({ code: 0, output: "" });
    await stopDev(dev!);
    dev = undefined;
    const restarted = await startDev(clone, stateDir, Number(new URL(url).port));
    dev = restarted.proc;
    // Compared, never printed: the tokens are secrets even on the stand-in.
    const kept = Object.fromEntries(["WM", "TOKEN", "SCOPED_TOKEN"].map((name) => [name, variable(restarted.exports, name) === variable(exports, name)]));
    expect(kept).toEqual({ WM: true, TOKEN: true, SCOPED_TOKEN: true });
    expect(await wmill("sync", "push", "--yes")).toEqual({ code: 0, output: "" });
  }, 180_000);
});
