// What the STS stand-in keeps between calls (sessions, call counts, injected faults) and
// what one call carries to its action.
import type { IncomingMessage } from "node:http";
import type { StsConfig } from "./config.ts";
import type { SessionStore } from "./sessions.ts";

export type ActionName = "AssumeRoleWithWebIdentity" | "AssumeRole" | "GetCallerIdentity";
export const ACTION_NAMES: ActionName[] = ["AssumeRoleWithWebIdentity", "AssumeRole", "GetCallerIdentity"];
export type FaultCode = "Throttling" | "IDPCommunicationError" | "InternalFailure";

export function isActionName(value: string | null): value is ActionName {
  return value !== null && (ACTION_NAMES as string[]).includes(value);
}

export interface Fault {
  action?: ActionName;
  code: FaultCode;
  remaining: number;
}

export interface StsState extends SessionStore {
  configPath: string;
  calls: Record<ActionName, number>;
  failures: Record<ActionName, number>;
  faults: Fault[];
}

export function zeroCounts(): Record<ActionName, number> {
  return { AssumeRoleWithWebIdentity: 0, AssumeRole: 0, GetCallerIdentity: 0 };
}

export interface StsCall {
  params: URLSearchParams;
  config: StsConfig;
  state: StsState;
  req: IncomingMessage;
  url: URL;
  body: Buffer;
  now: Date;
}
