// Input checks that run before any network call, so a typo in the run form is reported
// against the field that holds it instead of as an STS error three calls later.

/**
 * Raised for a bad input: names the input and says what a valid value looks like, on a
 * `Fix:` line of its own (a flow's failure report picks up that line, see flowReports.ts).
 */
export class InputError extends Error {
  override name = "InputError";
  constructor(
    readonly input: string,
    problem: string,
    fix: string,
  ) {
    super(`Invalid input "${input}": ${problem}.\nFix: ${fix}`);
  }
}

// STS limits (AssumeRoleWithWebIdentity API reference).
/** RoleSessionName: 2–64 characters from [\w+=,.@-]. */
const SESSION_NAME_PATTERN = /^[\w+=,.@-]{2,64}$/;
const SESSION_NAME_MAX = 64;
/** DurationSeconds: 15 minutes to 12 hours (further capped by the role's MaxSessionDuration). */
export const MIN_DURATION_SECONDS = 900;
export const MAX_DURATION_SECONDS = 43_200;
/** The inline session policy's plaintext may not exceed 2048 characters. */
const MAX_INLINE_POLICY_CHARS = 2048;
/** At most 10 managed policy ARNs may be passed as session policies. */
const MAX_POLICY_ARNS = 10;

/** Every AWS partition: commercial, China, GovCloud, the ISO regions and the European Sovereign Cloud. */
const PARTITION = "aws|aws-cn|aws-us-gov|aws-iso|aws-iso-b|aws-iso-e|aws-iso-f|aws-eusc";
/** IAM role names are 1–64 chars of [\w+=,.@-], optionally behind a /path/. */
const ROLE_ARN_PATTERN = new RegExp(`^arn:(${PARTITION}):iam::(\\d{12}):role/((?:[\\x21-\\x7e]*/)?[\\w+=,.@-]{1,64})$`);
const POLICY_ARN_PATTERN = new RegExp(`^arn:(${PARTITION}):iam::(\\d{12}|aws):policy/[\\x21-\\x7e]{1,}$`);
/** e.g. us-east-1, eu-central-2, us-gov-west-1, cn-northwest-1, us-isob-east-1. */
const REGION_PATTERN = /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/;
/** Windmill paths: u/<user>/<name> or f/<folder>/<name>, names may nest. */
const WINDMILL_PATH_PATTERN = /^(u|f)\/[\w-]+\/[\w-]+(\/[\w-]+)*$/;

export interface RoleArnParts {
  partition: string;
  accountId: string;
  roleName: string;
}

export function parseRoleArn(input: string, value: unknown): RoleArnParts {
  const arn = typeof value === "string" ? value.trim() : "";
  const match = ROLE_ARN_PATTERN.exec(arn);
  if (!match) {
    throw new InputError(input, `${describe(value)} is not an IAM role ARN`,
      "Use the role's ARN from the IAM console, e.g. arn:aws:iam::123456789012:role/windmill-s3");
  }
  const roleName = match[3].split("/").pop() ?? match[3];
  return { partition: match[1], accountId: match[2], roleName };
}

export function checkRegion(input: string, value: unknown): string {
  const region = typeof value === "string" ? value.trim() : "";
  if (!REGION_PATTERN.test(region)) {
    throw new InputError(input, `${describe(value)} is not an AWS region`, "Use a region code such as us-east-1 or eu-west-3");
  }
  return region;
}

export function checkSessionName(input: string, value: string): string {
  if (!SESSION_NAME_PATTERN.test(value)) {
    throw new InputError(input, `${describe(value)} is not a valid role session name`,
      "Use 2 to 64 characters from letters, digits and + = , . @ _ -, or leave it empty for a name derived from the job");
  }
  return value;
}

/**
 * A session name that shows in CloudTrail which Windmill job made the calls:
 * `wm-<script path>-<job id>`, with characters STS refuses replaced and the path cut
 * so the job id always fits.
 */
export function defaultSessionName(jobPath: string | undefined, jobId: string | undefined): string {
  const id = (jobId ?? "").replace(/[^\w]/g, "").slice(0, 12) || "local";
  const path = (jobPath ?? "").replace(/\//g, ".").replace(/[^\w+=,.@-]/g, "-");
  const room = SESSION_NAME_MAX - "wm-".length - id.length - 1;
  return path ? `wm-${path.slice(0, room)}-${id}` : `wm-${id}`;
}

const DURATION_UNITS: Record<string, number> = { d: 86_400, h: 3600, m: 60, s: 1 };

/** Accepts 3600, "3600", "1h30m", "45m", "12h", "7d" and returns seconds within the range. */
export function parseDuration(input: string, value: unknown, min = MIN_DURATION_SECONDS, max = MAX_DURATION_SECONDS): number {
  const seconds = durationSeconds(value);
  const range = `between ${formatSeconds(min)} and ${formatSeconds(max)}`;
  if (seconds === undefined) {
    throw new InputError(input, `${describe(value)} is not a duration`, `Use seconds (3600) or hours/minutes/seconds like "1h30m", ${range}`);
  }
  if (seconds < min || seconds > max) {
    throw new InputError(input, `${formatSeconds(seconds)} is out of range`, `Use a duration ${range}`);
  }
  return seconds;
}

function durationSeconds(value: unknown): number | undefined {
  if (typeof value === "number") return Number.isInteger(value) ? value : undefined;
  if (typeof value !== "string") return undefined;
  const text = value.trim().toLowerCase();
  if (/^\d+$/.test(text)) return Number(text);
  if (!/^(\d+d)?(\d+h)?(\d+m)?(\d+s)?$/.test(text) || text === "") return undefined;
  let total = 0;
  for (const [, amount, unit] of text.matchAll(/(\d+)([dhms])/g)) total += Number(amount) * DURATION_UNITS[unit];
  return total;
}

export function formatSeconds(seconds: number): string {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return [h ? `${h}h` : "", m ? `${m}m` : "", s || (!h && !m) ? `${s}s` : ""].join("");
}

/** Returns the session policy as the compact JSON STS receives, or undefined when empty. */
export function checkSessionPolicy(input: string, value: unknown): string | undefined {
  if (value === undefined || value === null || value === "") return undefined;
  let doc: unknown = value;
  if (typeof value === "string") {
    try {
      doc = JSON.parse(value);
    } catch (err) {
      throw new InputError(input, `it is not valid JSON (${(err as Error).message})`, "Paste an IAM policy document: {\"Version\":\"2012-10-17\",\"Statement\":[...]}");
    }
  }
  if (!doc || typeof doc !== "object" || !("Statement" in doc)) {
    throw new InputError(input, "it has no Statement", "Paste an IAM policy document: {\"Version\":\"2012-10-17\",\"Statement\":[...]}");
  }
  const compact = JSON.stringify(doc);
  if (compact.length > MAX_INLINE_POLICY_CHARS) {
    throw new InputError(input, `it is ${compact.length} characters once compacted, over STS's limit of ${MAX_INLINE_POLICY_CHARS}`,
      "Shorten it (wildcards, fewer statements) or move the permissions into a managed policy passed in policy_arns");
  }
  return compact;
}

export function checkPolicyArns(input: string, value: unknown): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new InputError(input, "it is not a list", "Give a list of managed policy ARNs");
  if (value.length > MAX_POLICY_ARNS) {
    throw new InputError(input, `${value.length} ARNs given, STS accepts at most ${MAX_POLICY_ARNS}`, "Combine policies or use an inline session policy");
  }
  for (const arn of value) {
    if (typeof arn !== "string" || !POLICY_ARN_PATTERN.test(arn)) {
      throw new InputError(input, `${describe(arn)} is not a managed policy ARN`, "Use ARNs like arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess");
    }
  }
  return value as string[];
}

export function checkWindmillPath(input: string, value: unknown): string {
  const path = typeof value === "string" ? value.trim().replace(/^\$res:/, "") : "";
  if (!WINDMILL_PATH_PATTERN.test(path)) {
    throw new InputError(input, `${describe(value)} is not a Windmill path`, "Use f/<folder>/<name> or u/<user>/<name>, e.g. f/aws_oidc/aws_credentials");
  }
  return path;
}

/** Quotes a value for an error message; long values are cut so a pasted secret never shows whole. */
function describe(value: unknown): string {
  if (value === undefined || value === null || value === "") return "an empty value";
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 40)}…` : text);
}
