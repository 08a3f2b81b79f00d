// Issue 12, fact 1: bun locks as a real Windmill worker reads and writes them
// (windmill-worker/src/bun_executor.rs, loader_builder.bun.js). The stand-in's worker
// refuses a lock without the `//bun.lock` separator, runs `<empty>`, and runs the job
// against the lock's own install; every committed lock is in the real format, lists every
// package its script imports, and installs with `bun install --frozen-lockfile`.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { isBuiltin } from "node:module";
import { homedir, tmpdir } from "node:os";
import { join, posix, relative } from "node:path";
import { bunInstall, installedLock, writeLockFiles } from "../../local/windmill/bunInstall.ts";
import { splitLockfile } from "../../local/windmill/bunLock.ts";
import { startWindmill, type WindmillStandIn } from "../../local/windmill/server.ts";
import { pushWorkspace } from "../../local/windmill/wmillCli.ts";
import { REPO_ROOT } from "../helpers/testStack.ts";

const EMPTY_LOCK = '{\n  "dependencies": {}\n}\n//bun.lock\n<empty>';
/** A cold bun cache makes the first install of the AWS SDK take several seconds. */
const INSTALL_TIMEOUT_MS = 120_000;

let windmill: WindmillStandIn;
beforeAll(async () => {
  windmill = await startWindmill({ workspaceDir: REPO_ROOT });
  await pushWorkspace(REPO_ROOT, { url: windmill.url, workspace: windmill.workspace, token: windmill.adminToken });
}, INSTALL_TIMEOUT_MS);
afterAll(async () => {
  await windmill?.close();
});

async function api(method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(`${windmill.url}/api/w/${windmill.workspace}/${path}`, {
    method,
    headers: { authorization: `Bearer ${windmill.adminToken}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

/** Deploys a script at `path` with the given lock, as `wmill sync push` would, and runs it. */
async function deployAndRun(path: string, content: string, lock: string): Promise<{ status: number; result: any }> {
  const created = await api("POST", "scripts/create", { path, summary: path, description: "", content, language: "bun", lock, auto_parent: true });
  expect(created.status).toBe(201);
  const run = await api("POST", `jobs/run_wait_result/p/${path}`, {});
  return { status: run.status, result: await run.json() };
}

/** A dependency job as `wmill generate-metadata` starts it, polled to its lock. */
async function lockOf(path: string, code: string): Promise<string> {
  const started = await api("POST", "jobs/run/dependencies_async", { raw_scripts: [{ raw_code: code, language: "bun", script_path: path }], entrypoint: path });
  expect(started.status).toBe(201);
  const job = (await (await api("GET", `jobs_u/completed/get_result_maybe/${await started.text()}`)).json()) as { success: boolean; result: { lock: string; error?: { message: string } } };
  // A lock job resolves versions from the npm registry (so it fails when the registry is out of reach): show why.
  expect({ success: job.success, error: job.result.error?.message }).toEqual({ success: true, error: undefined });
  return job.result.lock;
}

const dependenciesOf = (lock: string) => Object.keys((JSON.parse(splitLockfile(lock).packageJson) as { dependencies: Record<string, string> }).dependencies);

describe("the worker reads a deployed script's lock as bun_executor.rs does", () => {
  test("split_lockfile: separators in Windmill's order, `<empty>` compared exactly", () => {
    expect(splitLockfile(EMPTY_LOCK)).toEqual({ packageJson: '{\n  "dependencies": {}\n}', bunLock: "<empty>", empty: true, isBinary: false });
    expect(splitLockfile("{}\n//bun.lock\n<empty>\n").empty).toBe(false);
    expect(splitLockfile("{}\r\n//bun.lock\r\nx")).toEqual({ packageJson: "{}", bunLock: "x", empty: false, isBinary: false });
    expect(splitLockfile("{}\n//bun.lockb\nAAAA")).toEqual({ packageJson: "{}", bunLock: "AAAA", empty: false, isBinary: true });
    // "\n//bun.lock\n" is tried before "\n//bun.lockb\n", whatever comes first in the text.
    expect(splitLockfile("a\n//bun.lockb\nb\n//bun.lock\nc")).toMatchObject({ packageJson: "a\n//bun.lockb\nb", bunLock: "c", isBinary: false });
    expect(splitLockfile('{"dependencies":{}}')).toEqual({ packageJson: '{"dependencies":{}}', bunLock: undefined, empty: false, isBinary: false });
  });

  test("handle_bun_job (MaybeLock::Resolved): a package.json-only lock fails the job with Windmill's message", async () => {
    const lock = '{\n  "dependencies": {\n    "windmill-client": "1.818.0"\n  }\n}';
    const { status, result } = await deployAndRun("f/aws_oidc/conformance_old_lock", "export async function main() { return 1; }", lock);
    expect(status).toBe(422);
    expect(result.error.message).toBe(`Invalid requirements, expected to find //bun.lock split pattern in reqs. Found: |${lock}|`);
  });

  test("handle_bun_job: an empty lock string has no separator either, so it fails the same way", async () => {
    const { status, result } = await deployAndRun("f/aws_oidc/conformance_blank_lock", "export async function main() { return 1; }", "");
    expect(status).toBe(422);
    expect(result.error.message).toBe("Invalid requirements, expected to find //bun.lock split pattern in reqs. Found: ||");
  });

  test("handle_bun_job: `<empty>` writes package.json, installs nothing, and the job runs", async () => {
    const { status, result } = await deployAndRun("f/aws_oidc/conformance_empty_lock", "export async function main(n = 2) { return n * 21; }", EMPTY_LOCK);
    expect({ status, result }).toEqual({ status: 200, result: 42 });
  });

  test("install_bun_lockfile + the bundle build: a workspace import resolves its npm packages from the lock's install, not the repo's", async () => {
    const code = 'import { DEFAULT_AUDIENCE } from "./lib/idToken.ts";\nexport async function main() { return DEFAULT_AUDIENCE; }';
    const missing = await deployAndRun("f/aws_oidc/conformance_lacking_lock", code, EMPTY_LOCK);
    expect(missing.status).toBe(422);
    // bun_executor.rs generate_bun_bundle: a locked script is bundled first, and the bundle cannot resolve the package.
    expect(missing.result.error.message).toMatch(/Could not resolve: "windmill-client"[\s\S]*Failed to build node bundle/);

    const withClient = await readFile(join(REPO_ROOT, "f/aws_oidc/lib/idToken.script.lock"), "utf8");
    expect(await deployAndRun("f/aws_oidc/conformance_locked", code, withClient)).toEqual({ status: 200, result: "sts.amazonaws.com" });
  }, INSTALL_TIMEOUT_MS);

  test("install_bun_lockfile: jobs with the same lock share one install, made once even when asked for at once", async () => {
    const lock = splitLockfile(await readFile(join(REPO_ROOT, "f/aws_oidc/lib/idToken.script.lock"), "utf8"));
    const files = { packageJson: lock.packageJson, bunLock: lock.bunLock };
    const [a, b] = await Promise.all([installedLock(files), installedLock(files)]);
    expect(a).toBe(b);
    expect(await readdir(join(a, "node_modules"))).toContain("windmill-client");
  }, INSTALL_TIMEOUT_MS);
});

describe("the dependency job makes locks as gen_bun_lockfile does", () => {
  test("no npm import: package.json, the separator and `<empty>`, nothing after it", async () => {
    expect(await lockOf("f/aws_oidc/conformance_plain", "export async function main() { return 1; }")).toBe(EMPTY_LOCK);
  });

  test("loader_builder.bun.js: deps come from the bundle, so type-only imports add nothing", async () => {
    const code = [
      'import type { S3Client } from "@aws-sdk/client-s3";',
      'import { type RDSClient } from "@aws-sdk/client-rds";',
      'import { STSClient } from "@aws-sdk/client-sts";',
      "export async function main(s3?: S3Client, rds?: RDSClient) { return STSClient.name; }",
    ].join("\n");
    const lock = await lockOf("f/aws_oidc/conformance_types", code);
    expect(dependenciesOf(lock)).toEqual(["@aws-sdk/client-sts"]);
    expect(splitLockfile(lock).bunLock).toContain('"@aws-sdk/client-sts": ["@aws-sdk/client-sts@3.1169.0"');
  }, INSTALL_TIMEOUT_MS);

  test("loader.bun.js: relative imports are followed into the workspace, their npm imports land in package.json", async () => {
    const lock = await lockOf("f/aws_oidc/conformance_relative", 'import { DEFAULT_AUDIENCE } from "./lib/idToken.ts";\nexport async function main() { return DEFAULT_AUDIENCE; }');
    expect(dependenciesOf(lock)).toEqual(["windmill-client"]);
  }, INSTALL_TIMEOUT_MS);
});

/** Every committed script lock, with the script it belongs to. */
async function committedLocks(): Promise<{ script: string; lock: string }[]> {
  const out: { script: string; lock: string }[] = [];
  for (const top of ["f", "u"]) {
    for (const entry of await readdir(join(REPO_ROOT, top), { recursive: true, withFileTypes: true })) {
      if (!entry.isFile() || !entry.name.endsWith(".script.lock")) continue;
      const file = join(entry.parentPath, entry.name);
      out.push({ script: relative(REPO_ROOT, file).replace(/\.script\.lock$/, ""), lock: await readFile(file, "utf8") });
    }
  }
  return out.sort((a, b) => (a.script < b.script ? -1 : 1));
}

/**
 * The npm packages a script loads when it runs, read independently of the lock job: each
 * file transpiled as Bun runs it (type-only and unused imports erased), following the
 * workspace imports that are left.
 */
async function importedPackages(script: string): Promise<string[]> {
  const transpiler = new Bun.Transpiler({ loader: "ts" });
  const packages = new Set<string>();
  const seen = new Set<string>();
  const pending = [script];
  for (let path = pending.pop(); path !== undefined; path = pending.pop()) {
    if (seen.has(path)) continue;
    seen.add(path);
    const code = await readFile(join(REPO_ROOT, `${path}.ts`), "utf8");
    for (const { path: specifier } of transpiler.scanImports(transpiler.transformSync(code))) {
      const workspacePath = specifier.startsWith("/") ? specifier.slice(1) : specifier.startsWith(".") ? posix.join(posix.dirname(path), specifier) : undefined;
      if (workspacePath) {
        pending.push(workspacePath.replace(/\.ts$/, ""));
        continue;
      }
      const name = /^(@[^/]+\/[^/]+|[^/]+)/.exec(specifier)![1];
      if (!isBuiltin(name)) packages.add(name);
    }
  }
  return [...packages].sort();
}

const locks = await committedLocks();
const pins = (JSON.parse(await readFile(join(REPO_ROOT, "package.json"), "utf8")) as { dependencies: Record<string, string> }).dependencies;

describe("every committed lock is one a real worker runs", () => {
  test("there is one per script", () => {
    expect(locks.length).toBeGreaterThanOrEqual(37);
  });

  for (const { script, lock } of locks) {
    test(`${script}: has the //bun.lock section and lists every package it imports, directly or through lib/ (bun_executor.rs split_lockfile)`, async () => {
      const split = splitLockfile(lock);
      expect({ script, separator: split.bunLock !== undefined }).toEqual({ script, separator: true });
      const dependencies = (JSON.parse(split.packageJson) as { dependencies: Record<string, string> }).dependencies;
      expect({ script, packages: Object.keys(dependencies).sort() }).toEqual({ script, packages: await importedPackages(script) });
      for (const [name, version] of Object.entries(dependencies)) expect({ script, name, version }).toEqual({ script, name, version: pins[name] });
      if (split.empty) {
        expect(dependencies).toEqual({});
      } else {
        expect({ script, locked: parseBunLock(split.bunLock!).workspaces[""].dependencies }).toEqual({ script, locked: dependencies });
      }
    });
  }

  test("no lock names a registry host or a path on this machine", () => {
    const machinePaths = [REPO_ROOT, tmpdir(), homedir()];
    for (const { script, lock } of locks) {
      expect({ script, url: /[a-z]+:\/\//i.test(lock) }).toEqual({ script, url: false });
      for (const path of machinePaths) expect({ script, path, found: lock.includes(path) }).toEqual({ script, path, found: false });
    }
  });

  test("each installs with `bun install --frozen-lockfile` (the issue's Done-when; Windmill itself installs with --save-text-lockfile)", async () => {
    const distinct = [...new Set(locks.map((l) => l.lock))].map(splitLockfile).filter((s) => !s.empty);
    expect(distinct.length).toBeGreaterThan(0);
    // In parallel: each install mostly waits on the disk.
    await Promise.all(distinct.map(async (split) => {
      const dir = await mkdtemp(join(tmpdir(), "wm-frozen-"));
      try {
        await writeLockFiles(dir, { packageJson: split.packageJson, bunLock: split.bunLock });
        await bunInstall(dir, ["--frozen-lockfile"]);
        expect(await readFile(join(dir, "bun.lock"), "utf8")).toBe(split.bunLock!);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }));
  }, INSTALL_TIMEOUT_MS);
});

/** bun.lock is JSON with trailing commas. */
function parseBunLock(text: string): { workspaces: Record<string, { dependencies?: Record<string, string> }> } {
  return JSON.parse(text.replace(/,(\s*[}\]])/g, "$1"));
}
