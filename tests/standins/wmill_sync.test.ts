// The repo as a Windmill workspace: the real `wmill` CLI pushes it into the Windmill
// stand-in without complaints, then finds nothing left to push, and pulls it back
// unchanged into an empty folder. Everything runs offline; the CLI's home is a temp dir
// so no global wmill config leaks in.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawn } from "node:child_process";
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { startWindmill, type WindmillStandIn } from "../../local/windmill/server.ts";

const REPO = join(import.meta.dir, "..", "..");
const WMILL = join(REPO, "node_modules", ".bin", "wmill");
/** One CLI run takes 1-3 s here; the limit only stops a hung run. */
const CLI_TIMEOUT_MS = 30_000;

/** What `wmill sync` reads and writes: the sync config, its lock hashes and the workspace items. */
const WORKSPACE_ENTRIES = ["wmill.yaml", "wmill-lock.yaml", "f", "u"];
const isWorkspaceFile = (path: string) =>
  /^(f|u)\//.test(path) || path.endsWith(".resource-type.yaml") || path === "wmill-lock.yaml";

/** What the CLI prints when the layout is off or a step failed (it may still exit 0, so the code does not tell). */
const COMPLAINTS = [
  /Stale scripts metadata/i,
  /Stale flows locks/i,
  /Creating script metadata file/i,
  /Missing folder\.meta\.yaml/i,
  /nonDottedPaths/i,
  /Skipping \d+ (schedule|trigger) file/i,
  /failed/i,
];

interface CliRun {
  code: number | null;
  stdout: string;
  /** stdout and stderr interleaved, colours stripped: what a person reads. */
  output: string;
}

/** One entry of `wmill sync push --dry-run --json-output`. */
interface PendingChange {
  type: "added" | "edited" | "deleted";
  path: string;
}

let windmill: WindmillStandIn;
let root: string;
let home: string;
let workspace: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "wmill-sync-"));
  home = join(root, "home");
  workspace = join(root, "workspace");
  await mkdir(home);
  await copyWorkspace(REPO, workspace);
  // Lock jobs pin npm imports to the versions this repo installs (bunLockfile.ts repoVersionPins).
  await symlink(join(REPO, "node_modules"), join(workspace, "node_modules"));
  windmill = await startWindmill({ workspaceDir: workspace });
  const added = await wmill(workspace, ["workspace", "add", windmill.workspace, windmill.workspace, windmill.url, "--token", windmill.adminToken]);
  expect(added.code, added.output).toBe(0);
}, CLI_TIMEOUT_MS);

afterAll(async () => {
  await windmill?.close();
  if (root) await rm(root, { recursive: true, force: true });
});

describe("wmill sync against the Windmill stand-in", () => {
  test("push deploys every script, flow, schedule, folder and resource type, without layout complaints", async () => {
    const push = await wmill(workspace, ["sync", "push", "--yes"]);
    expect(push.code, push.output).toBe(0);
    expect(complaints(push.output)).toEqual([]);

    const expected = await expectedItems(workspace);
    const api = apiClient(windmill);
    expect((await api<{ path: string }[]>("scripts/list?per_page=1000")).map((s) => s.path).sort()).toEqual(expected.scripts);
    expect((await api<{ path: string }[]>("flows/list?per_page=1000")).map((f) => f.path).sort()).toEqual(expected.flows);
    expect((await api<{ path: string }[]>("schedules/list?per_page=1000")).map((s) => s.path).sort()).toEqual(expected.schedules);
    expect(await api<string[]>("folders/listnames")).toEqual(expected.folders);
    for (const type of expected.resourceTypes) expect(await api<boolean>(`resources/type/exists/${type}`)).toBe(true);
    for (const path of expected.scripts) {
      const script = await api<{ content: string; language: string }>(`scripts/get/p/${path}`);
      const file = expected.scriptFiles.get(path)!;
      expect({ path, content: script.content, language: script.language }).toEqual({
        path, content: await readFile(join(workspace, file), "utf8"), language: file.endsWith(".pg.sql") ? "postgresql" : "bun",
      });
    }
  }, CLI_TIMEOUT_MS);

  // windmill-api-groups/src/folders.rs: `create_folder` makes the creator an owner whatever the
  // file says, and an admin's `update_folder` sets exactly what it is sent. The folder names the
  // group g/aws_operators, not the pusher, so the next push sets it back once; then nothing is left.
  test("a second push sets the folder back to its file, then nothing is left to change", async () => {
    const folder = await apiClient(windmill)<{ owners: string[] }>("folders/get/aws_oidc");
    expect(folder.owners).toEqual(["g/aws_operators", "u/alice"]);
    expect(await pendingChanges(workspace)).toEqual([{ type: "edited", path: "f/aws_oidc/folder.meta.yaml" }]);
    const setBack = await wmill(workspace, ["sync", "push", "--yes"]);
    expect(setBack.code, setBack.output).toBe(0);
    expect(await pendingChanges(workspace)).toEqual([]);
    const push = await wmill(workspace, ["sync", "push", "--yes"]);
    expect(push.code, push.output).toBe(0);
    expect(push.output).toContain("0 changes to apply");
  }, CLI_TIMEOUT_MS);

  test("pull into an empty folder gives back the same files, byte for byte", async () => {
    const pulled = join(root, "pulled");
    await mkdir(pulled);
    await cp(join(workspace, "wmill.yaml"), join(pulled, "wmill.yaml"));
    const pull = await wmill(pulled, ["sync", "pull", "--yes"]);
    expect(pull.code, pull.output).toBe(0);

    const ours = (await listFiles(workspace)).filter(isWorkspaceFile);
    const theirs = (await listFiles(pulled)).filter(isWorkspaceFile);
    expect(theirs).toEqual(ours);
    const differing: string[] = [];
    for (const file of ours) {
      const [a, b] = await Promise.all([readFile(join(workspace, file)), readFile(join(pulled, file))]);
      if (!a.equals(b)) differing.push(file);
    }
    expect(differing).toEqual([]);
  }, CLI_TIMEOUT_MS);
});

/** Runs the real CLI as a subprocess (never sync: the stand-in serves from this process). */
function wmill(cwd: string, args: string[]): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(WMILL, args, { cwd, env: { PATH: process.env.PATH ?? "", HOME: home }, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    let stdout = "";
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      stdout += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), CLI_TIMEOUT_MS - 1000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, output: stripAnsi(output) });
    });
  });
}

/** What a push would apply, as the CLI reports it without applying anything. */
async function pendingChanges(dir: string): Promise<PendingChange[]> {
  const run = await wmill(dir, ["sync", "push", "--dry-run", "--json-output"]);
  expect(run.code, run.output).toBe(0);
  const report = JSON.parse(run.stdout) as { changes?: PendingChange[] };
  return (report.changes ?? []).map(({ type, path }) => ({ type, path }));
}

function complaints(output: string): string[] {
  return output.split("\n").filter((line) => COMPLAINTS.some((re) => re.test(line)));
}

function stripAnsi(text: string): string {
  return text.replace(/\x1b\[[0-9;]*m/g, "");
}

async function copyWorkspace(from: string, to: string): Promise<void> {
  await mkdir(to, { recursive: true });
  const entries = [...WORKSPACE_ENTRIES, ...(await readdir(from)).filter((name) => name.endsWith(".resource-type.yaml"))];
  for (const entry of entries) {
    if (await exists(join(from, entry))) await cp(join(from, entry), join(to, entry), { recursive: true });
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

/** Files under `dir`, as sorted relative paths (node_modules left out). */
async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .filter((path) => !path.startsWith("node_modules"))
    .sort();
}

interface ExpectedItems {
  scripts: string[];
  /** Each script path's file (`.ts` or `.pg.sql`). */
  scriptFiles: Map<string, string>;
  flows: string[];
  schedules: string[];
  folders: string[];
  resourceTypes: string[];
}

/** What the files say the workspace holds, named the way Windmill names it. */
async function expectedItems(dir: string): Promise<ExpectedItems> {
  const files = (await listFiles(dir)).filter(isWorkspaceFile);
  const flowDir = /__flow\/|\.flow\//;
  // windmill-cli's language per extension: `.ts` bun (wmill.yaml defaultTs), `.pg.sql` postgresql.
  const scriptFiles = new Map(files.filter((f) => /\.(ts|pg\.sql)$/.test(f) && !flowDir.test(f)).map((f) => [f.replace(/\.(ts|pg\.sql)$/, ""), f]));
  return {
    scripts: [...scriptFiles.keys()].sort(),
    scriptFiles,
    flows: files.filter((f) => /(__flow|\.flow)\/flow\.yaml$/.test(f)).map((f) => f.replace(/(__flow|\.flow)\/flow\.yaml$/, "")).sort(),
    schedules: files.filter((f) => f.endsWith(".schedule.yaml")).map((f) => f.slice(0, -".schedule.yaml".length)).sort(),
    folders: files.filter((f) => /^f\/[^/]+\/folder\.meta\.yaml$/.test(f)).map((f) => f.split("/")[1]).sort(),
    resourceTypes: files.filter((f) => f.endsWith(".resource-type.yaml")).map((f) => f.slice(0, -".resource-type.yaml".length)).sort(),
  };
}

function apiClient(wm: WindmillStandIn): <T>(path: string) => Promise<T> {
  return async <T>(path: string) => {
    const res = await fetch(`${wm.url}/api/w/${wm.workspace}/${path}`, { headers: { authorization: `Bearer ${wm.adminToken}` } });
    if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  };
}
