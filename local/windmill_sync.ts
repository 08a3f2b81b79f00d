// The part of the Windmill stand-in's API that `wmill sync push` / `wmill sync pull` use:
// scripts, flows, folders and schedules of a workspace.
import type { Route } from "./windmill.ts";

export interface SyncState {
  scripts: Map<string, Record<string, unknown>>;
  flows: Map<string, Record<string, unknown>>;
  folders: Map<string, Record<string, unknown>>;
  schedules: Map<string, Record<string, unknown>>;
}

export function createSyncState(): SyncState {
  return { scripts: new Map(), flows: new Map(), folders: new Map(), schedules: new Map() };
}

export function syncRoutes(): Route[] {
  return [];
}
