// The workspace export of the Windmill stand-in: the tarball `wmill sync pull` and `push`
// start from, following windmill-api's export field for field (the CLI diffs it against
// the repo and writes it out on pull), and the other look-ups the CLI makes around it.
import type { ServerResponse } from "node:http";
import type { ScriptLang } from "windmill-client";
import { HttpError, sendJson } from "../shared/http.ts";
import { dropUndefined, EPOCH, jsonb, type JsonObject } from "./records.ts";
import type { FlowRecord, FolderRecord, ResourceType, Route, RouteContext, ScheduleRecord, ScriptRecord, SyncHost, WorkspaceState } from "./state.ts";
import { tarArchive } from "./tar.ts";

export function exportRoutes(host: SyncHost): Route[] {
  return [
    // Items pinned per workspace (`wmill.yaml` workspaces.<name>.specificItems): none here.
    ["GET", /^\/api\/w\/([^/]+)\/workspaces\/list_ws_specific$/, (c, res) => {
      c.ws();
      sendJson(res, 200, []);
    }],
    ["GET", /^\/api\/w\/([^/]+)\/workspaces\/tarball$/, (c, res) => sendTarball(c, res, host)],
    // Shared UI files (the workspace's `ui/` folder), which a pull also fetches: none here.
    ["GET", /^\/api\/w\/([^/]+)\/shared_ui\/get$/, (c, res) => {
      c.ws();
      sendJson(res, 200, { files: {}, version: 0, edited_at: EPOCH, edited_by: c.token().username });
    }],
  ];
}

/**
 * `wmill sync pull` and `push` both start from this archive. Windmill serves tar always
 * and zip only when built with its `zip` feature; this one is a build without it, which
 * the CLI handles by asking again for tar.
 */
function sendTarball(c: RouteContext, res: ServerResponse, host: SyncHost): void {
  const ws = c.ws();
  const archiveType = c.url.searchParams.get("archive_type") ?? "tar";
  if (archiveType !== "tar") throw new HttpError(400, `Invalid Archive Type ${archiveType}`);
  const options: ExportOptions = {
    skipResourceTypes: c.url.searchParams.get("skip_resource_types") === "true",
    includeSchedules: c.url.searchParams.get("include_schedules") === "true",
    defaultTs: c.url.searchParams.get("default_ts") ?? "deno",
    preserveExtraPerms: c.url.searchParams.get("preserve_extra_perms") === "true",
  };
  const tar = tarArchive(exportWorkspace(ws, host, options));
  res.writeHead(200, {
    "content-type": "application/octet-stream",
    "content-disposition": `attachment; filename="windmill-${ws.id}.tar"`,
    "content-length": tar.length,
  });
  res.end(tar);
}

interface ExportOptions {
  skipResourceTypes: boolean;
  includeSchedules: boolean;
  /** `bun`: bun scripts are `.ts`, deno ones `.deno.ts`; otherwise the reverse. */
  defaultTs: string;
  /** Surface non-empty ACLs of scripts and flows (`wmill sync pull` asks for it). */
  preserveExtraPerms: boolean;
}

/**
 * The files of Windmill's workspace export (windmill-api `tarball_workspace`): JSON
 * pretty-printed with the server's field order, bookkeeping fields (ids, paths, authors,
 * timestamps) left out. The CLI turns the JSON into the YAML files of the repo.
 */
function exportWorkspace(ws: WorkspaceState, host: SyncHost, options: ExportOptions): Map<string, string> {
  const files = new Map<string, string>();
  const put = (path: string, value: unknown) => files.set(path, JSON.stringify(value, null, 2));
  for (const folder of ws.sync.folders.values()) put(`f/${folder.name}/folder.meta.json`, exportedFolder(folder));
  for (const script of ws.sync.scripts.values()) {
    files.set(`${script.path}.${scriptExtension(script.language, options.defaultTs)}`, script.content);
    put(`${script.path}.script.json`, exportedScriptMetadata(script, options));
  }
  if (!options.skipResourceTypes) {
    for (const t of ws.resourceTypes.values()) {
      if (!host.hubResourceTypes.has(t.name)) put(`${t.name}.resource-type.json`, exportedResourceType(t));
    }
  }
  for (const flow of ws.sync.flows.values()) {
    if (!flow.archived) put(`${flow.path}.flow.json`, exportedFlow(flow, options));
  }
  if (options.includeSchedules) {
    for (const schedule of ws.sync.schedules.values()) put(`${schedule.path}.schedule.json`, exportedSchedule(schedule));
  }
  return files;
}

function exportedFolder(f: FolderRecord): JsonObject {
  return dropUndefined({
    display_name: f.display_name,
    owners: f.owners,
    extra_perms: f.extra_perms,
    summary: f.summary ?? null,
    default_permissioned_as: f.default_permissioned_as?.length ? f.default_permissioned_as : undefined,
    labels: f.labels,
  });
}

/** windmill-api `ScriptMetadata`: schema and lock are always present (null when unset). */
function exportedScriptMetadata(s: ScriptRecord, options: ExportOptions): JsonObject {
  return dropUndefined({
    summary: s.summary,
    description: s.description,
    schema: s.schema ?? null,
    lock: s.lock ?? null,
    kind: s.kind,
    envs: s.envs,
    cache_ttl: s.cache_ttl,
    dedicated_worker: s.dedicated_worker,
    ws_error_handler_muted: s.ws_error_handler_muted ? true : undefined,
    priority: s.priority,
    tag: s.tag,
    timeout: s.timeout,
    delete_after_secs: s.delete_after_secs,
    restart_unless_cancelled: s.restart_unless_cancelled,
    visible_to_runner_only: s.visible_to_runner_only,
    codebase: s.codebase,
    has_preprocessor: s.has_preprocessor ? true : undefined,
    on_behalf_of_email: s.on_behalf_of_email,
    modules: s.modules ?? undefined,
    concurrency_key: s.concurrency_key,
    concurrent_limit: s.concurrent_limit,
    concurrency_time_window_s: s.concurrency_time_window_s,
    debounce_key: s.debounce_key,
    debounce_delay_s: s.debounce_delay_s,
    debounce_args_to_accumulate: s.debounce_args_to_accumulate,
    max_total_debouncing_time: s.max_total_debouncing_time,
    max_total_debounces_amount: s.max_total_debounces_amount,
    labels: s.labels,
    extra_perms: options.preserveExtraPerms && Object.keys(s.extra_perms).length ? s.extra_perms : undefined,
  });
}

function exportedResourceType(t: ResourceType): JsonObject {
  return { schema: jsonb(t.schema), description: t.description, format_extension: null, is_fileset: false };
}

function exportedFlow(f: FlowRecord, options: ExportOptions): JsonObject {
  return dropUndefined({
    summary: f.summary,
    description: f.description ?? "",
    value: f.value,
    schema: f.schema ?? null,
    extra_perms: options.preserveExtraPerms && Object.keys(f.extra_perms).length ? f.extra_perms : undefined,
    dedicated_worker: f.dedicated_worker,
    tag: f.tag,
    ws_error_handler_muted: f.ws_error_handler_muted ? true : undefined,
    timeout: f.timeout,
    visible_to_runner_only: f.visible_to_runner_only ? true : undefined,
    on_behalf_of_email: f.on_behalf_of_email,
    labels: f.labels,
  });
}

/** windmill-types `Schedule` minus what the export strips (path, editor, permissioned_as, error, extra_perms). */
function exportedSchedule(s: ScheduleRecord): JsonObject {
  return dropUndefined({
    schedule: s.schedule,
    timezone: s.timezone,
    enabled: s.enabled,
    script_path: s.script_path,
    is_flow: s.is_flow,
    args: s.args ?? null,
    email: s.email,
    on_failure: s.on_failure ?? undefined,
    on_failure_times: s.on_failure_times ?? undefined,
    on_failure_exact: s.on_failure_exact ?? undefined,
    on_failure_extra_args: s.on_failure_extra_args ?? undefined,
    on_recovery: s.on_recovery ?? undefined,
    on_recovery_times: s.on_recovery_times ?? undefined,
    on_recovery_extra_args: s.on_recovery_extra_args ?? undefined,
    on_success: s.on_success ?? undefined,
    on_success_extra_args: s.on_success_extra_args ?? undefined,
    ws_error_handler_muted: s.ws_error_handler_muted ?? false,
    retry: s.retry ?? undefined,
    no_flow_overlap: s.no_flow_overlap ?? false,
    summary: s.summary ?? undefined,
    description: s.description ?? undefined,
    tag: s.tag ?? undefined,
    paused_until: s.paused_until ?? undefined,
    cron_version: s.cron_version ?? undefined,
    dynamic_skip: s.dynamic_skip ?? undefined,
    labels: s.labels,
  });
}

/** windmill-api's extension per language, `defaultTs` deciding which TypeScript runtime gets plain `.ts`. */
function scriptExtension(language: ScriptLang, defaultTs: string): string {
  const bunDefault = defaultTs === "bun";
  const extensions: Record<ScriptLang, string> = {
    python3: "py", deno: bunDefault ? "deno.ts" : "ts", go: "go", bash: "sh", powershell: "ps1",
    postgresql: "pg.sql", mysql: "my.sql", bigquery: "bq.sql", snowflake: "sf.sql", mssql: "ms.sql",
    oracledb: "odb.sql", graphql: "gql", nativets: "fetch.ts", bun: bunDefault ? "ts" : "bun.ts",
    bunnative: bunDefault ? "ts" : "bun.ts", php: "php", rust: "rs", ansible: "playbook.yml", csharp: "cs",
    nu: "nu", java: "java", ruby: "rb", rlang: "r", duckdb: "duckdb.sql", dbt: "dbt.yaml",
  };
  return extensions[language];
}
