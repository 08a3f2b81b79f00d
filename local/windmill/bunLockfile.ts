// Makes a script's bun lock as Windmill's dependency job does (gen_bun_lockfile): bundle
// the script with its workspace imports inlined and npm packages left external, take the
// npm imports of the bundle as package.json, then `bun install --save-text-lockfile`.
import { readFileSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { isBuiltin } from "node:module";
import { tmpdir } from "node:os";
import { join, posix } from "node:path";
import type { BunPlugin } from "bun";
import { assembleLock, EMPTY_PACKAGE_JSON } from "./bunLock.ts";
import { bunInstall } from "./bunInstall.ts";

/** A workspace script's code by path (`f/x/lib/y`), or undefined when there is none. */
export type ReadWorkspaceScript = (path: string) => Promise<string | undefined>;
/** The version to write for an npm package imported without `@version` (`importedBy` names the script, for errors). */
export type PinVersion = (name: string, importedBy: string) => string;

export interface ScriptToLock {
  /** Where the script lives (`f/x/y`, or `<flow>/<step>` for an inline step): relative imports resolve from it. */
  path: string;
  code: string;
}

// windmill-worker/loader_builder.bun.js (captureVersion): `@scope/name` or `name`, then an optional `@version`.
const CAPTURE_VERSION = /^((?:@[^/@]+\/[^/@]+)|(?:[^/@]+))(?:@([^/]+))?.*$/;

/** The whole lock: package.json, `//bun.lock`, then bun.lock, or `<empty>` when nothing is imported. */
export async function genBunLockfile(script: ScriptToLock, readScript: ReadWorkspaceScript, pin: PinVersion): Promise<string> {
  const packageJson = await bunPackageJson(script, readScript, pin);
  // windmill-worker/src/bun_executor.rs (gen_bun_lockfile): "empty dependencies, skipping install".
  if (packageJson === EMPTY_PACKAGE_JSON) return assembleLock(packageJson, undefined);
  const dir = await mkdtemp(join(tmpdir(), "wm-lock-"));
  try {
    await writeFile(join(dir, "package.json"), packageJson);
    await bunInstall(dir, ["--save-text-lockfile"]);
    return assembleLock(packageJson, await readFile(join(dir, "bun.lock"), "utf8"));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The package.json Windmill's build step writes: every npm package the bundle still imports. */
export async function bunPackageJson(script: ScriptToLock, readScript: ReadWorkspaceScript, pin: PinVersion): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "wm-build-"));
  try {
    const main = join(dir, "main.ts");
    await writeFile(main, script.code);
    let bundle: string;
    try {
      // windmill-worker/loader_builder.bun.js: Bun.build of main.ts with the relative loader, external: ["*"].
      const build = await Bun.build({ entrypoints: [main], plugins: [workspaceLoader(main, script.path, readScript)], external: ["*"] });
      bundle = await build.outputs[0].text();
    } catch (err) {
      const detail = err instanceof AggregateError ? err.errors.map(String).join("\n") : String(err);
      throw new Error(`Failed to build bundle of ${script.path}:\n${detail}`);
    }
    return JSON.stringify({ dependencies: npmDependencies(bundle, script.path, pin) }, null, 2);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * windmill-worker/loader.bun.js (windmill-relative-resolver): `./x`, `../x`, `/f/...` and
 * `/u/...` imports are workspace scripts, relative to the importing script's path (main.ts
 * stands for the script being locked). Windmill fetches them from `raw_unpinned`; here the
 * caller reads them from what was pushed or uploaded.
 */
function workspaceLoader(mainFile: string, scriptPath: string, readScript: ReadWorkspaceScript): BunPlugin {
  return {
    name: "windmill-relative-resolver",
    setup(build) {
      build.onResolve({ filter: /^(\.|\/(f|u)\/)/ }, (args) => {
        if (args.kind === "entry-point-build") return undefined;
        const importer = args.importer === mainFile ? scriptPath : args.importer;
        const target = args.path.startsWith("/") ? args.path.slice(1) : posix.join(posix.dirname(importer), args.path);
        return { path: target.replace(/\.ts$/, ""), namespace: "windmill" };
      });
      build.onLoad({ filter: /.*/, namespace: "windmill" }, async (args) => {
        const contents = await readScript(args.path);
        if (contents === undefined) throw new Error(`${scriptPath} imports ${args.path}, which is not deployed in this workspace: push it first`);
        return { contents, loader: "ts" };
      });
    },
  };
}

/**
 * windmill-worker/loader_builder.bun.js: the bundle's imports (type-only ones were erased by
 * the build), builtins skipped, in the order they appear. An `@version` in the specifier is
 * kept (the lowest when several, as reduceIntersect does). Where Windmill writes "latest"
 * for an unversioned import, the stand-in writes the version `pin` gives (the repo's own
 * pin): "latest" would make every lock depend on the day it was made, and the repo's tests
 * check the bundle against the versions in its package.json.
 */
function npmDependencies(bundle: string, scriptPath: string, pin: PinVersion): Record<string, string> {
  const versions = new Map<string, string[]>();
  for (const { path } of new Bun.Transpiler().scanImports(bundle.replaceAll("__require", "require"))) {
    const match = CAPTURE_VERSION.exec(path);
    if (!match) throw new Error(`Unrecognized import: ${path}`);
    const [, name, version] = match;
    if (isBuiltin(name)) continue;
    const seen = versions.get(name) ?? [];
    if (version && !seen.includes(version)) seen.push(version);
    versions.set(name, seen);
  }
  const dependencies: Record<string, string> = {};
  for (const [name, pinned] of versions) {
    dependencies[name] = pinned.length === 0 ? pin(name, scriptPath) : lowestVersion(pinned);
  }
  return dependencies;
}

function lowestVersion(versions: string[]): string {
  const bare = (v: string) => v.replace(/^(?:\^|~|<|<=|>=|>)+/, "");
  return [...versions].sort((a, b) => Bun.semver.order(bare(a), bare(b)))[0];
}

/**
 * The repo's pins: the exact version its package.json names in `dependencies`, else the
 * one installed in its node_modules (a transitive package such as @aws-sdk/types).
 */
export function repoVersionPins(repoDir: string): PinVersion {
  const manifest = readJsonFile<{ dependencies?: Record<string, string> }>(join(repoDir, "package.json"));
  return (name, importedBy) => {
    const pinned = manifest?.dependencies?.[name];
    if (pinned) return pinned;
    const installed = readJsonFile<{ version: string }>(join(repoDir, "node_modules", name, "package.json"));
    if (installed) return installed.version;
    throw new Error(`${importedBy} imports ${name}, which is not installed in ${repoDir}/node_modules: add it to package.json`);
  };
}

/** A JSON file's content, or undefined when it does not exist. */
function readJsonFile<T>(file: string): T | undefined {
  try {
    return JSON.parse(readFileSync(file, "utf8")) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}
