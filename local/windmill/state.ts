// The shared types of the Windmill stand-in: what a workspace holds (variables, resources,
// resource types, what `wmill sync push` stored), who a token belongs to, job records, and
// the shape of a route. Every other module of the stand-in imports from here, never the
// other way round.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Flow, Folder, Schedule, Script } from "windmill-client";

export interface TokenInfo {
  workspace: string;
  email: string;
  username: string;
  /**
   * Set for job tokens: what the OIDC claims describe. `rootFlowPath`: the flow path without
   * loop-iteration suffixes (`<flow>` for a step whose flowPath is `<flow>/forloop-<i>`).
   */
  job?: { id: string; path: string | null; flowPath: string | null; rootFlowPath?: string | null };
  /** Set for scoped tokens (webhooks): e.g. `jobs:run:scripts:f/x/y`; nothing else is allowed. */
  scopes?: string[];
}

/** The user a job runs as. */
export interface Caller {
  workspace: string;
  email: string;
  username: string;
}

export interface Variable {
  value: string;
  isSecret: boolean;
  description: string;
  /** The row's own grants (`u/x` / `g/x` → true = write, false = read); absent = none. */
  extraPerms?: Record<string, boolean>;
}

export interface Resource {
  value: unknown;
  resourceType: string;
  description: string;
  /** The row's own grants (`u/x` / `g/x` → true = write, false = read); absent = none. */
  extraPerms?: Record<string, boolean>;
}

/** A workspace member (Windmill's `usr` row): admins bypass row-level security; operators only run things. */
export interface WorkspaceUser {
  username: string;
  email: string;
  isAdmin: boolean;
  operator: boolean;
}

/** A group (`group_` and its `usr_to_group` rows); paths and grants name it `g/<name>`. */
export interface WorkspaceGroup {
  name: string;
  summary: string;
  members: Set<string>;
}

export interface ResourceType {
  name: string;
  schema: unknown;
  description: string;
  /** A hub type: it lives in the instance's `admins` workspace, so a workspace may still create its own of that name. */
  hub?: boolean;
}

export interface WorkspaceState {
  id: string;
  variables: Map<string, Variable>;
  resources: Map<string, Resource>;
  resourceTypes: Map<string, ResourceType>;
  /** Members by username. */
  users: Map<string, WorkspaceUser>;
  /** Groups by name; every member is also in `all` without a row here. */
  groups: Map<string, WorkspaceGroup>;
  /** What `wmill sync push` stores: scripts, flows, folders, schedules. */
  sync: SyncState;
}

/** Hub types a real instance already has; the bundle's custom types must be pushed. */
export const HUB_RESOURCE_TYPES: ResourceType[] = [
  {
    hub: true,
    name: "aws_oidc",
    description: "AWS role to assume with Windmill's OIDC token",
    schema: {
      type: "object",
      required: ["roleArn", "region"],
      properties: { roleArn: { type: "string" }, region: { type: "string" } },
    },
  },
  {
    // The fields windmill-worker/src/pg_executor.rs reads (PgDatabase: host and dbname not optional).
    hub: true,
    name: "postgresql",
    description: "PostgreSQL connection",
    schema: {
      type: "object",
      required: ["host", "dbname"],
      properties: {
        host: { type: "string" }, port: { type: "number" }, user: { type: "string" }, password: { type: "string" }, dbname: { type: "string" },
        sslmode: { type: "string", enum: ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] },
        root_certificate_pem: { type: "string" },
      },
    },
  },
];

export function createWorkspaceState(id: string): WorkspaceState {
  return {
    id,
    sync: createSyncState(),
    variables: new Map(),
    resources: new Map(),
    resourceTypes: new Map(HUB_RESOURCE_TYPES.map((t) => [t.name, t])),
    users: new Map(),
    groups: new Map(),
  };
}

export interface JobRecord {
  id: string;
  kind: "script" | "flow" | "rawscript";
  path: string;
  args: Record<string, unknown>;
  parentJobId: string | null;
  rootJobId: string;
  flowPath: string | null;
  stepId: string | null;
  schedulePath: string | null;
  status: "running" | "success" | "failure";
  success: boolean;
  result: unknown;
  /** A flow job that failed after running its failure module (worker_flow.rs has_triggered_error_handler). */
  failureModuleRan?: boolean;
  logs: string;
  progress: number | null;
  startedAt: string;
  durationMs: number;
  /** The user the job is permissioned as (`u/<username>`), and its email. */
  username: string;
  email: string;
  /**
   * Who created it (v2_job.created_by, WM_USERNAME): the caller's username, or
   * `schedule-<path with / as ->` for a schedule's run (windmill-common schedule.rs schedule_to_user).
   */
  createdBy: string;
  /** When it was due (v2_job_queue.scheduled_for): the cron tick for a schedule's run, else when it was pushed. */
  scheduledFor: string;
  /** Set when cancel_job ran on it (a broken run_wait_result connection, or its timeout). */
  canceled?: { by: string; reason: string };
}

/** A script version as `GET /scripts/get/h/{hash}` returns it. */
export type ScriptRecord = Script;
/** A flow as `GET /flows/get/{path}` returns it; `value` is the OpenFlow the job engine runs. */
export type FlowRecord = Flow;
/** A folder as `GET /folders/get/{name}` returns it (the server sends display_name; the spec omits it). */
export type FolderRecord = Folder & { display_name: string };
/** A schedule as `GET /schedules/get/{path}` returns it. */
export type ScheduleRecord = Schedule;

/**
 * A dependencies job. Windmill runs it on a worker (bun build over the script and the
 * workspace scripts it imports); here it is computed when asked and kept so the CLI can
 * poll it like any job.
 */
export interface DependencyJob {
  id: string;
  kind: "dependencies" | "flowdependencies";
  path: string;
  createdBy: string;
  createdAt: string;
  success: boolean;
  result: unknown;
}

export interface SyncState {
  /** The deployed head version of each script path (archived paths are absent): what jobs run. */
  scripts: Map<string, ScriptRecord>;
  /** Every version ever deployed, by hash, archived ones included. */
  scriptVersions: Map<string, ScriptRecord>;
  flows: Map<string, FlowRecord>;
  folders: Map<string, FolderRecord>;
  schedules: Map<string, ScheduleRecord>;
  /** Lock (dependencies) jobs `wmill generate-metadata` asked for, kept for it to poll. */
  dependencyJobs: Map<string, DependencyJob>;
  /** Local script versions the CLI uploads (by SHA-256) so lock jobs resolve imports to them. */
  tempScripts: Map<string, string>;
}

export function createSyncState(): SyncState {
  return {
    scripts: new Map(), scriptVersions: new Map(), flows: new Map(), folders: new Map(), schedules: new Map(), dependencyJobs: new Map(), tempScripts: new Map(),
  };
}

/** What the sync routes need to know about the rest of the stand-in. */
export interface SyncHost {
  /** Types every workspace sees but none owns (they live in the instance's `admins` workspace). */
  hubResourceTypes: ReadonlySet<string>;
  /** The repo: lock jobs pin npm packages to the versions its package.json (else its node_modules) has. */
  workspaceDir: string;
}

export interface RouteContext {
  req: IncomingMessage;
  url: URL;
  match: RegExpExecArray;
  token(): TokenInfo;
  ws(): WorkspaceState;
}
export type Route = [string, RegExp, (c: RouteContext, res: ServerResponse) => Promise<void> | void];
