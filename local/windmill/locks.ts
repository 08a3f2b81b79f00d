// Lock (dependencies) jobs of the Windmill stand-in: what `wmill generate-metadata` and
// `wmill sync push` ask for to pin a script's or flow's npm packages, made as Windmill's
// dependency job makes them (bunLockfile.ts), and kept for the CLI to poll.
import { createHash, randomUUID } from "node:crypto";
import type { ScriptLang } from "windmill-client";
import { HttpError, readJson, sendJson, sendText } from "../shared/http.ts";
import { genBunLockfile, repoVersionPins, type PinVersion } from "./bunLockfile.ts";
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
  sync: SyncState;
  tempRefs: TempScriptRefs;
  pin: PinVersion;
}

export function dependencyRoutes(host: SyncHost): Route[] {
  const pin = repoVersionPins(host.workspaceDir);
  return [
    ["POST", /^\/api\/w\/([^/]+)\/jobs\/run\/dependencies_async$/, async (c, res) => {
      const body = await readJson<DependenciesRequest>(c.req);
      const sync = c.ws().sync;
      const entry = body.raw_scripts?.find((s) => s.script_path === body.entrypoint) ?? body.raw_scripts?.[0];
      if (!entry) throw new HttpError(400, "raw_scripts must hold the script to lock");
      const ctx: ImportContext = { sync, tempRefs: body.temp_script_refs, pin };
      const job = await runDependencyJob(sync, c.token(), "dependencies", entry.script_path, async () => ({ lock: await scriptLock(ctx, entry.script_path, entry.raw_code, entry.language) }));
      sendText(res, 201, job.id);
    }],
    ["POST", /^\/api\/w\/([^/]+)\/jobs\/run\/flow_dependencies_async$/, async (c, res) => {
      const body = await readJson<FlowDependenciesRequest>(c.req);
      const sync = c.ws().sync;
      const ctx: ImportContext = { sync, tempRefs: body.temp_script_refs, pin };
      const job = await runDependencyJob(sync, c.token(), "flowdependencies", body.path, async () => ({ updated_flow_value: await lockedFlowValue(ctx, body.path, body.flow_value) }));
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

/** Runs the lock job to its end before answering with its id: the CLI polls a job that is already done. */
async function runDependencyJob(sync: SyncState, caller: TokenInfo, kind: DependencyJob["kind"], path: string, compute: () => Promise<JsonObject>): Promise<DependencyJob> {
  const job: DependencyJob = { id: randomUUID(), kind, path, createdBy: caller.username, createdAt: new Date().toISOString(), success: true, result: null };
  try {
    job.result = await compute();
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

// windmill-worker/src/worker_lockfiles.rs (bun branch of the dependency job): gen_bun_lockfile; other languages get no lock here.
function scriptLock(ctx: ImportContext, path: string, code: string, language: ScriptLang): Promise<string> {
  if (!BUN_LANGUAGES.includes(language)) return Promise.resolve("");
  return genBunLockfile({ path, code }, async (imported) => importedSource(ctx, imported), ctx.pin);
}

/** An imported workspace script: the local version the CLI uploaded, else the deployed one. */
function importedSource(ctx: ImportContext, path: string): string | undefined {
  const tempHash = ctx.tempRefs?.[path];
  return (tempHash && ctx.sync.tempScripts.get(tempHash)) || ctx.sync.scripts.get(path)?.content;
}

/** The flow with a lock on each inline bun script (steps that run scripts by path keep theirs). */
async function lockedFlowValue(ctx: ImportContext, flowPath: string, value: FlowRecord["value"]): Promise<FlowRecord["value"]> {
  const lockModules = async (modules: JsonObject[]): Promise<JsonObject[]> => {
    const locked: JsonObject[] = [];
    for (const module of modules) locked.push(await lockModule(module));
    return locked;
  };
  const lockModule = async (module: JsonObject): Promise<JsonObject> => {
    const step = module.value as JsonObject;
    const locked: JsonObject = { ...step };
    if (step.type === "rawscript" && typeof step.content === "string") {
      locked.lock = await scriptLock(ctx, `${flowPath}/${String(module.id)}`, step.content, step.language as ScriptLang);
    }
    for (const key of ["modules", "default"]) {
      if (Array.isArray(step[key])) locked[key] = await lockModules(step[key] as JsonObject[]);
    }
    if (Array.isArray(step.branches)) {
      const branches: JsonObject[] = [];
      for (const b of step.branches as JsonObject[]) branches.push({ ...b, modules: await lockModules(b.modules as JsonObject[]) });
      locked.branches = branches;
    }
    return { ...module, value: locked };
  };
  const optional = async (m: unknown) => (m ? lockModule(m as JsonObject) : undefined);
  return dropUndefined({
    ...value,
    modules: await lockModules(value.modules as unknown as JsonObject[]),
    failure_module: await optional(value.failure_module),
    preprocessor_module: await optional(value.preprocessor_module),
  }) as unknown as FlowRecord["value"];
}

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}
