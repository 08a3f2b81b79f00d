// Schedules of the Windmill stand-in: 6-field cron (seconds first) in a timezone, as
// Windmill evaluates them, each due tick starting a job of the schedule's script or flow.
import { Cron } from "croner";
import { HttpError } from "../shared/http.ts";
import type { JobEngine } from "./jobs.ts";
import type { Caller, WorkspaceState } from "./state.ts";

interface ScheduleSpec {
  workspace: string;
  /** The user the schedule runs as: its last editor (whoever pushed it), with the schedule's email. */
  username: string;
  email: string;
  path: string;
  schedule: string;
  timezone: string;
  script_path: string;
  is_flow: boolean;
  enabled: boolean;
  args?: Record<string, unknown>;
  no_flow_overlap?: boolean;
}

/** windmill-common/src/schedule.rs schedule_to_user: the created_by of a schedule's jobs. */
export function scheduleToUser(path: string): string {
  return `schedule-${path.replaceAll("/", "-")}`;
}

/** Windmill's cron has 6 fields (seconds first), optionally a 7th for years. */
export function checkCron(schedule: string, timezone: string): Cron {
  const fields = schedule.trim().split(/\s+/);
  if (fields.length < 6 || fields.length > 7) {
    throw new HttpError(400, `Invalid schedule ${JSON.stringify(schedule)}: Windmill cron has 6 fields, seconds first (e.g. "0 */10 * * * *" for every 10 minutes)`);
  }
  try {
    Intl.DateTimeFormat(undefined, { timeZone: timezone });
  } catch {
    throw new HttpError(400, `Invalid timezone ${JSON.stringify(timezone)}: use an IANA name such as Etc/UTC or Europe/Paris`);
  }
  try {
    return new Cron(fields.slice(0, 6).join(" "), { timezone, paused: true });
  } catch (err) {
    throw new HttpError(400, `Invalid schedule ${JSON.stringify(schedule)}: ${(err as Error).message}`);
  }
}

interface ScheduleRunner {
  /** Starts the schedule's job for the tick due at `dueAt` (ms); resolves when it has finished. */
  run(spec: ScheduleSpec, dueAt: number): Promise<void>;
  onError(spec: ScheduleSpec, err: unknown): void;
}

/** Ticks every enabled schedule; returns a function that stops them all. */
function startScheduler(list: () => ScheduleSpec[], runner: ScheduleRunner): () => void {
  const running = new Set<string>();
  const nextRun = new Map<string, { key: string; at: number }>();
  const tick = () => {
    const now = Date.now();
    for (const spec of list()) {
      if (!spec.enabled) continue;
      const id = `${spec.workspace}/${spec.path}`;
      const key = `${spec.schedule}|${spec.timezone}`;
      let next = nextRun.get(id);
      if (!next || next.key !== key) {
        next = { key, at: checkCron(spec.schedule, spec.timezone).nextRun()?.getTime() ?? Infinity };
        nextRun.set(id, next);
      }
      if (next.at > now) continue;
      nextRun.delete(id);
      // Windmill skips a tick whose previous run is still going when overlap is off.
      if (spec.no_flow_overlap && running.has(id)) continue;
      running.add(id);
      runner.run(spec, next.at).catch((err: unknown) => runner.onError(spec, err)).finally(() => running.delete(id));
    }
  };
  /** Ticks 4 times a second so a 1-second cron fires on time. */
  const timer = setInterval(tick, 250);
  return () => clearInterval(timer);
}

/** Runs the schedules `wmill sync push` stored in each workspace as jobs of `engine`; returns the stop function. */
export function scheduleWorkspaces(workspaces: ReadonlyMap<string, WorkspaceState>, engine: JobEngine): () => void {
  return startScheduler(
    () => [...workspaces.values()].flatMap((ws) =>
      [...ws.sync.schedules.values()].map((s) => ({
        workspace: ws.id, username: s.edited_by, email: s.email, path: s.path, schedule: s.schedule, timezone: s.timezone,
        script_path: s.script_path, is_flow: s.is_flow, enabled: s.enabled ?? false,
        args: (s.args ?? {}) as Record<string, unknown>, no_flow_overlap: s.no_flow_overlap,
      }))),
    {
      async run(spec, dueAt) {
        const ws = workspaces.get(spec.workspace) as WorkspaceState;
        // windmill-queue/src/schedule.rs push_scheduled_job: created_by = schedule_to_user(path)
        // (`schedule-<path, / as ->`), permissioned_as = username_to_permissioned_as(&schedule.edited_by),
        // email = schedule.email, scheduled_for = the tick; the path is resolved without RLS (db, not user_db).
        const caller: Caller = { workspace: spec.workspace, email: spec.email, username: spec.username };
        const job = engine.start(caller, ws, spec.is_flow ? "flow" : "script", spec.script_path, spec.args ?? {}, {
          schedulePath: spec.path, createdBy: scheduleToUser(spec.path), scheduledFor: new Date(dueAt).toISOString(),
        });
        await engine.wait(job.id);
      },
      onError(spec, err) {
        console.error(`Windmill stand-in: schedule ${spec.path} could not start: ${(err as Error).message}`);
      },
    },
  );
}
