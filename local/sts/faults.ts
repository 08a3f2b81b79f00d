// Faults a test injects through POST /_local/faults: the next N calls (of one action, or
// any) fail with a transient STS error, so retries can be exercised.
import { HttpError } from "../shared/http.ts";
import { idpUnreachable, internalFailure, throttling, type StsErrorReply } from "./errors.ts";
import { ACTION_NAMES, isActionName, type ActionName, type FaultCode, type StsState } from "./state.ts";

const FAULT_ERRORS: Record<FaultCode, () => StsErrorReply> = {
  Throttling: throttling,
  IDPCommunicationError: idpUnreachable,
  InternalFailure: internalFailure,
};

export function takeFault(state: StsState, action: ActionName): StsErrorReply | undefined {
  const fault = state.faults.find((f) => f.remaining > 0 && (f.action === undefined || f.action === action));
  if (!fault) return undefined;
  fault.remaining--;
  state.faults = state.faults.filter((f) => f.remaining > 0);
  return FAULT_ERRORS[fault.code]();
}

export function addFault(state: StsState, body: { action?: unknown; code?: unknown; count?: unknown }): void {
  const { action, code, count } = body;
  if (action !== undefined && !isActionName(typeof action === "string" ? action : null)) throw new HttpError(400, `action must be one of ${ACTION_NAMES.join(", ")}`);
  if (typeof code !== "string" || !(code in FAULT_ERRORS)) throw new HttpError(400, `code must be one of ${Object.keys(FAULT_ERRORS).join(", ")}`);
  if (typeof count !== "number" || !Number.isInteger(count) || count < 1) throw new HttpError(400, "count must be a positive integer");
  state.faults.push({ action: action as ActionName | undefined, code: code as FaultCode, remaining: count });
}
