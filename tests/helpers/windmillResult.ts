// How Windmill's result view shows a job's result, for the kinds this bundle cares about:
// a table, or JSON. Mirrors windmill-labs/windmill frontend/src/lib/components/DisplayResult.svelte
// (`inferResultKind`, `isTableRow`, `isTableRowObject`, `isTableCol`, `checkIfHasBigInt`) and
// `roughSizeOfObject` in frontend/src/lib/utils.ts. Branches for images, files, maps, HTML,
// markdown and approvals are folded into "other": no script here returns those shapes.

export type ResultKind = "table-row-object" | "table-row" | "table-col" | "json" | "plain" | "other";

/** DisplayResult.svelte TABLE_MAX_SIZE: a bigger result is shown as JSON (with a CSV download). */
const TABLE_MAX_SIZE = 5_000_000;
/** DisplayResult.svelte DISPLAY_MAX_SIZE: above it the result is "large" (no big-int check, no table-col). */
const DISPLAY_MAX_SIZE = 100_000;
/** isTableRowObjectInner: a row object with more keys than this is not a table row (without a header row). */
const MAX_TABLE_KEYS = 50;

/** utils.ts roughSizeOfObject: 2 bytes a string character, 8 a number, 4 a boolean; keys are not counted. */
function roughSizeOfObject(value: unknown): number {
  if (typeof value === "string") return value.length * 2;
  const seen: unknown[] = [];
  const stack = [value];
  let bytes = 0;
  while (stack.length) {
    const v = stack.pop();
    if (typeof v === "boolean") bytes += 4;
    else if (typeof v === "string") bytes += v.length * 2;
    else if (typeof v === "number") bytes += 8;
    else if (typeof v === "object" && v !== null && !seen.includes(v)) {
      seen.push(v);
      stack.push(...Object.values(v));
    }
  }
  return bytes;
}

function hasUnsafeInteger(value: unknown): boolean {
  if (typeof value === "number") return Number.isInteger(value) && !Number.isSafeInteger(value);
  if (Array.isArray(value)) return value.some(hasUnsafeInteger);
  if (value && typeof value === "object") return Object.values(value).some(hasUnsafeInteger);
  return false;
}

function isTableRow(result: unknown[]): boolean {
  return result.every((x) => Array.isArray(x));
}

/** An array of non-empty objects (at most 50 keys each), optionally after a first row of header strings. */
export function isTableRowObject(json: unknown): boolean {
  if (!Array.isArray(json)) return false;
  const first = json[0];
  const hasHeaders = Array.isArray(first) && first.length > 0 && first.length <= MAX_TABLE_KEYS && first.every((h) => typeof h === "string");
  return json.length > (hasHeaders ? 1 : 0) && json.every((item, index) => {
    if (hasHeaders && index === 0) return true;
    if (!item || typeof item !== "object" || Array.isArray(item)) return false;
    const keys = Object.keys(item);
    return keys.length > 0 && (hasHeaders || keys.length <= MAX_TABLE_KEYS);
  });
}

/** What DisplayResult.svelte's inferResultKind picks for `result`. */
export function windmillResultKind(result: unknown): ResultKind {
  if (typeof result === "string") return /s3:\/\/[^/]*\/.+/.test(result) ? "other" : "plain";
  if (result === undefined || result === null) return "json";
  const keys = typeof result === "object" ? Object.keys(result) : [];
  const size = roughSizeOfObject(result);
  if (size > TABLE_MAX_SIZE) return "json";
  const large = size > DISPLAY_MAX_SIZE;
  if (!large && hasUnsafeInteger(result)) return "json";
  if (Array.isArray(result)) {
    if (result.length === 0) return "json";
    if (result.every((e) => typeof e === "object" && e !== null && typeof (e as { s3?: unknown }).s3 === "string")) return "other";
    if (isTableRow(result)) return "table-row";
    return isTableRowObject(result) ? "table-row-object" : "json";
  }
  if (keys.length === 1 && ["table-row", "table-row-object", "table-col"].includes(keys[0]!)) return keys[0] as ResultKind;
  const record = result as Record<string, unknown>;
  if (keys.length && isRichObject(record, keys)) return "other";
  if (!large && keys.length && keys.every((k) => Array.isArray(record[k]))) return "table-col";
  if (keys.includes("wm_renderer")) return "other";
  return "json";
}

/** The object shapes inferResultKind renders as something else than a table or JSON (checked before table-col). */
function isRichObject(record: Record<string, unknown>, keys: string[]): boolean {
  if (keys.length === 1 && RICH_KEYS.includes(keys[0]!)) return true;
  if (typeof record.windmill_content_type === "string" && record.windmill_content_type.startsWith("text/")) return true;
  if (keys.includes("file") && keys.includes("filename")) return true;
  if (keys.includes("resume") && keys.includes("cancel") && keys.includes("approvalPage")) return true;
  return typeof record.s3 === "string";
}

const RICH_KEYS = ["png", "svg", "jpeg", "gif", "html", "map", "pdf", "file", "error", "md", "markdown", "render_all"];
