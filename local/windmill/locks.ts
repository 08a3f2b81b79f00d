// Lock (dependencies) jobs of the Windmill stand-in: what `wmill generate-metadata` and
// `wmill sync push` ask for to pin a script's or flow's npm packages, computed offline
// from the script's imports and the repo's node_modules, and kept for the CLI to poll.
import { createHash, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { join } from "node:path";
import type { ScriptLang } from "windmill-client";
import { HttpError, readJson, sendJson, sendText } from "../shared/http.ts";
import { windmillParser } from "./parser.ts";
import { dropUndefined, type JsonObject } from "./records.ts";
import type { DependencyJob, FlowRecord, Route, SyncHost, SyncState, TokenInfo } from "./state.ts";

/** Workspace path -> hash of an uploaded local version (`scripts/raw_temp/store`). */
type TempScriptRefs = Record<string, string> | null | undefined;

interface DependenciesRequest {
  raw_scripts: { raw_code: string; language: ScriptLang; script_path: string }[];
  entrypoint?: string;
  temp_script_refs?: TempScriptRefs;
}

interface FlowDependenciesRequest {
  flow_value: FlowRecord["value"];
  path: string;
  temp_script_refs?: TempScriptRefs;
}

/** Where a lock job looks up the workspace scripts a script imports. */
interface ImportContext {
  host: SyncHost;
  sync: SyncState;
  tempRefs: TempScriptRefs;
}

export function dependencyRoutes(host: SyncHost): Route[] {
  return [
    ["POST", /^\/api\/w\/([^/]+)\/jobs\/run\/dependencies_async$/, async (c, res) => {
      const body = await readJson<DependenciesRequest>(c.req);
      const sync = c.ws().sync;
      const entry = body.raw_scripts?.find((s) => s.script_path === body.entrypoint) ?? body.raw_scripts?.[0];
      if (!entry) throw new HttpError(400, "raw_scripts must hold the script to lock");
      const ctx: ImportContext = { host, sync, tempRefs: body.temp_script_refs };
      const job = runDependencyJob(sync, c.token(), "dependencies", entry.script_path, () => ({ lock: scriptLock(ctx, entry.script_path, entry.raw_code, entry.language) }));
      sendText(res, 201, job.id);
    }],
    ["POST", /^\/api\/w\/([^/]+)\/jobs\/run\/flow_dependencies_async$/, async (c, res) => {
      const body = await readJson<FlowDependenciesRequest>(c.req);
      const sync = c.ws().sync;
      const ctx: ImportContext = { host, sync, tempRefs: body.temp_script_refs };
      const job = runDependencyJob(sync, c.token(), "flowdependencies", body.path, () => ({ updated_flow_value: lockedFlowValue(ctx, body.path, body.flow_value) }));
      sendText(res, 201, job.id);
    }],
    // The CLI uploads the local versions of imported scripts that differ from the deployed ones.
    ["POST", /^\/api\/w\/([^/]+)\/scripts\/raw_temp\/diff$/, async (c, res) => {
      const body = await readJson<{ scripts?: Record<string, string>; workspace_deps?: { path: string }[] }>(c.req);
      const sync = c.ws().sync;
      const changed = Object.entries(body.scripts ?? {}).filter(([path, hash]) => {
        const deployed = sync.scripts.get(path);
        return !deployed || sha256(deployed.content) !== hash;
      });
      // The stand-in keeps no workspace dependency files, so any the CLI has differ.
      sendJson(res, 200, [...changed.map(([path]) => path), ...(body.workspace_deps ?? []).map((d) => d.path)]);
    }],
    ["POST", /^\/api\/w\/([^/]+)\/scripts\/raw_temp\/store$/, async (c, res) => {
      const content = await readJson<string>(c.req);
      if (typeof content !== "string") throw new HttpError(400, "the body must be the script content as a JSON string");
      const hash = sha256(content);
      c.ws().sync.tempScripts.set(hash, content);
      sendText(res, 200, hash);
    }],
    // After a push the CLI looks for lock jobs the deployment started; the stand-in starts none at deploy time.
    ["GET", /^\/api\/w\/([^/]+)\/jobs\/queue\/list$/, (c, res) => {
      c.ws();
      requireDependencyKinds(c.url);
      sendJson(res, 200, []);
    }],
    ["GET", /^\/api\/w\/([^/]+)\/jobs\/completed\/list$/, (c, res) => {
      const sync = c.ws().sync;
      requireDependencyKinds(c.url);
      const after = c.url.searchParams.get("created_after");
      const success = c.url.searchParams.get("success");
      const jobs = [...sync.dependencyJobs.values()]
        .filter((j) => (!after || j.createdAt >= after) && (success === null || String(j.success) === success))
        .map((j) => ({ id: j.id, job_kind: j.kind, script_path: j.path, created_by: j.createdBy, created_at: j.createdAt, success: j.success, result: j.result }));
      sendJson(res, 200, jobs);
    }],
  ];
}

/** The job lists here serve lock jobs only; script and flow runs are listed by `/jobs/list`. */
function requireDependencyKinds(url: URL): void {
  const kinds = url.searchParams.get("job_kinds") ?? "";
  if (kinds.split(",").some((k) => k !== "dependencies" && k !== "flowdependencies")) {
    throw new HttpError(400, `The stand-in lists only dependencies jobs here (job_kinds=${kinds}); use /jobs/list for runs`);
  }
}

function runDependencyJob(sync: SyncState, caller: TokenInfo, kind: DependencyJob["kind"], path: string, compute: () => JsonObject): DependencyJob {
  const job: DependencyJob = { id: randomUUID(), kind, path, createdBy: caller.username, createdAt: new Date().toISOString(), success: true, result: null };
  try {
    job.result = compute();
  } catch (err) {
    job.success = false;
    job.result = { error: { name: "ExecutionErr", message: err instanceof Error ? err.message : String(err) } };
  }
  sync.dependencyJobs.set(job.id, job);
  return job;
}

/** What `GET /jobs_u/completed/get_result_maybe/{id}` answers for a lock job (the job routes ask here first). */
export function dependencyJobResult(sync: SyncState | undefined, id: string): JsonObject | undefined {
  const job = sync?.dependencyJobs.get(id);
  return job && { completed: true, started: true, success: job.success, result: job.result };
}

/** Languages whose scripts Windmill locks with bun (TypeScript on the bun runtime). */
const BUN_LANGUAGES: readonly ScriptLang[] = ["bun", "bunnative"];

/**
 * Windmill's bun lock is the package.json its build step writes (every npm package the
 * script and its imported workspace scripts use), then `//bun.lock` and bun's lockfile,
 * or `<empty>` when there is nothing to install. The stand-in is offline and cannot run
 * `bun install`, so for a script with packages it returns the package.json part alone, a
 * form Windmill workers also accept (they install from it). Versions are the ones installed
 * in the repo; an import pinned as `pkg@1.2.3` keeps its pin. Other languages get no lock.
 */
function scriptLock(ctx: ImportContext, path: string, code: string, language: ScriptLang): string {
  if (!BUN_LANGUAGES.includes(language)) return "";
  const packages = new Map<string, string>();
  collectPackages(ctx, path, code, packages, new Set([path]));
  const dependencies = Object.fromEntries([...packages].sort(([a], [b]) => (a < b ? -1 : 1)));
  const packageJson = JSON.stringify({ dependencies }, null, 2);
  return packages.size === 0 ? `${packageJson}\n//bun.lock\n<empty>` : packageJson;
}

function collectPackages(ctx: ImportContext, path: string, code: string, packages: Map<string, string>, seen: Set<string>): void {
  const parser = windmillParser();
  const imports = (JSON.parse(parser.parse_ts_imports(code)) as { imports: string[] }).imports;
  for (const specifier of imports) {
    const pkg = npmPackage(specifier);
    if (pkg) packages.set(pkg.name, pkg.version ?? installedVersion(ctx.host, pkg.name, path));
  }
  for (const imported of parser.parse_ts_relative_imports(code, path)) {
    if (seen.has(imported)) continue;
    seen.add(imported);
    collectPackages(ctx, imported, importedSource(ctx, imported, path), packages, seen);
  }
}

/** A bare specifier's package (`@scope/name/sub@1.2` -> `@scope/name`, pin 1.2); undefined for builtins, URLs and paths. */
function npmPackage(specifier: string): { name: string; version?: string } | undefined {
  if (/^[./]/.test(specifier) || /^[a-z][a-z0-9+.-]*:/i.test(specifier)) return undefined;
  const match = /^((?:@[^/@]+\/)?[^/@]+)(?:@([^/]+))?/.exec(specifier);
  if (!match || builtinModules.includes(match[1])) return undefined;
  return { name: match[1], version: match[2] };
}

function installedVersion(host: SyncHost, name: string, importedBy: string): string {
  try {
    const manifest = JSON.parse(readFileSync(join(host.workspaceDir, "node_modules", name, "package.json"), "utf8")) as { version: string };
    return manifest.version;
  } catch {
    throw new Error(`${importedBy} imports ${name}, which is not installed in ${host.workspaceDir}/node_modules (the stand-in locks offline): add it to package.json`);
  }
}

/** An imported workspace script: the local version the CLI uploaded, else the deployed one. */
function importedSource(ctx: ImportContext, path: string, importedBy: string): string {
  const tempHash = ctx.tempRefs?.[path];
  const source = (tempHash && ctx.sync.tempScripts.get(tempHash)) || ctx.sync.scripts.get(path)?.content;
  if (source === undefined) throw new Error(`${importedBy} imports ${path}, which is not deployed in this workspace: push it first`);
  return source;
}

/** The flow with a lock on each inline bun script (steps that run scripts by path keep theirs). */
function lockedFlowValue(ctx: ImportContext, flowPath: string, value: FlowRecord["value"]): FlowRecord["value"] {
  const lockModule = (module: JsonObject): JsonObject => {
    const step = module.value as JsonObject;
    const locked: JsonObject = { ...step };
    if (step.type === "rawscript" && typeof step.content === "string") {
      locked.lock = scriptLock(ctx, `${flowPath}/${String(module.id)}`, step.content, step.language as ScriptLang);
    }
    for (const key of ["modules", "default"]) {
      if (Array.isArray(step[key])) locked[key] = (step[key] as JsonObject[]).map(lockModule);
    }
    if (Array.isArray(step.branches)) {
      locked.branches = (step.branches as JsonObject[]).map((b) => ({ ...b, modules: (b.modules as JsonObject[]).map(lockModule) }));
    }
    return { ...module, value: locked };
  };
  const modules = value.modules as unknown as JsonObject[];
  const optional = (m: unknown) => (m ? lockModule(m as JsonObject) : undefined);
  return dropUndefined({
    ...value,
    modules: modules.map(lockModule),
    failure_module: optional(value.failure_module),
    preprocessor_module: optional(value.preprocessor_module),
  }) as unknown as FlowRecord["value"];
}

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}
