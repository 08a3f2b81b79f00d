// The part of the Windmill stand-in's API that `wmill sync push` / `wmill sync pull` use:
// scripts, flows, folders and schedules of a workspace.
import type { Route } from "./windmill.ts";

/** A pushed script version (fields the job engine relies on: path, hash, content). */
export interface ScriptRecord {
  path: string;
  hash: string;
  content: string;
  language: string;
  summary: string;
  description: string;
  schema: unknown;
}

/** A pushed flow (fields the job engine relies on: path, value). */
export interface FlowRecord {
  path: string;
  summary: string;
  description: string;
  value: unknown;
  schema: unknown;
}

export interface SyncState {
  scripts: Map<string, ScriptRecord>;
  flows: Map<string, FlowRecord>;
  folders: Map<string, Record<string, unknown>>;
  schedules: Map<string, Record<string, unknown>>;
}

export function createSyncState(): SyncState {
  return { scripts: new Map(), flows: new Map(), folders: new Map(), schedules: new Map() };
}

export function syncRoutes(): Route[] {
  return [];
}
