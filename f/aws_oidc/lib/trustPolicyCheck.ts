// The offline trust-policy check: evaluates a role's trust policy against an ID token's
// claims as STS does for AssumeRoleWithWebIdentity, and says which condition refuses the
// token and which `sub` pattern would admit it. It follows the IAM policy evaluation logic
// (IAM User Guide, "Policy evaluation logic" and "Condition operators"): an explicit Deny
// wins, then an Allow, otherwise the request is implicitly denied; every operator and key
// of a Condition must match, the values listed for one key are alternatives.
// Pure: no AWS call. The STS stand-in has its own evaluator (local/sts/iamPolicy.ts); the
// bundle never imports local/, and tests/bundle/doctor.test.ts checks that the two agree.
import { subPatterns } from "./awsSetup.ts";
import { row, type DoctorRow } from "./doctorRow.ts";
import { InputError } from "./validate.ts";

export const TRUST_POLICY_CHECK = "trust policy";
const ACTION = "sts:AssumeRoleWithWebIdentity";
/** The claims AWS offers a trust policy for an OIDC provider (`<provider>:aud` etc.). */
const CLAIM_KEYS = ["aud", "sub", "email"] as const;
type ClaimName = (typeof CLAIM_KEYS)[number];
/** The four parts of Windmill's `sub`: `<email>::<script path>::<flow path>::<workspace>`. */
const SUB_PARTS = ["email", "script path", "flow path", "workspace"];

/** What a trust policy can see of a token. */
export interface PolicyClaims {
  iss: string;
  aud: string[];
  sub: string;
  email?: string;
}

type Scalar = string | number | boolean;
type StringOrList = string | string[];

interface Statement {
  Sid?: string;
  Effect?: string;
  Action?: StringOrList;
  NotAction?: StringOrList;
  Principal?: "*" | Record<string, StringOrList>;
  NotPrincipal?: "*" | Record<string, StringOrList>;
  Condition?: Record<string, Record<string, Scalar | Scalar[]>>;
}

export interface TrustPolicy {
  Version?: string;
  Statement: Statement | Statement[];
}

const PASTE_FIX = "Paste the role's trust policy from IAM > Roles > <role> > Trust relationships (the JSON document with Statement)";

/** Reads the policy as pasted: JSON text (URL-encoded too, as older `aws iam get-role` prints it), an object, or get-role's whole answer. */
export function parseTrustPolicy(input: string, value: unknown): TrustPolicy {
  let doc = value;
  if (typeof value === "string") {
    const text = value.trim();
    try {
      doc = JSON.parse(text.startsWith("%7B") ? decodeURIComponent(text) : text);
    } catch (err) {
      throw new InputError(input, `it is not valid JSON (${(err as Error).message})`, PASTE_FIX);
    }
  }
  const role = (doc as { Role?: { AssumeRolePolicyDocument?: unknown } } | null)?.Role;
  if (role?.AssumeRolePolicyDocument) return parseTrustPolicy(input, role.AssumeRolePolicyDocument);
  if (!doc || typeof doc !== "object" || !("Statement" in doc)) throw new InputError(input, "it has no Statement", PASTE_FIX);
  return doc as TrustPolicy;
}

/** The provider as IAM writes it in condition keys and ARNs: the issuer without its scheme. */
export function providerOf(issuer: string): string {
  return issuer.replace(/^https?:\/\//, "");
}

// ---------------------------------------------------------------------------------------
// Matching

function listOf(value: StringOrList | undefined): string[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

/** Regex source for a literal run of characters. */
function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
}

/** Regex source for policy text as written: `*` is any run of characters (even none), `?` exactly one. */
function wildcardSource(pattern: string): string {
  return pattern.split("*").map((part) => part.split("?").map(escapeRegex).join(".")).join(".*");
}

/** IAM's wildcard match: `*` is any run of characters (even none), `?` exactly one. */
export function wildcardMatch(pattern: string, value: string, ignoreCase = false): boolean {
  return new RegExp(`^${wildcardSource(pattern)}$`, ignoreCase ? "si" : "s").test(value);
}

/** A condition value ready to compare: its text (for the Equals operators) and its wildcard pattern (for Like). */
interface PolicyValue {
  text: string;
  like: RegExp;
}

interface BaseOperator {
  negated: boolean;
  matches(policy: PolicyValue, value: string): boolean;
}

const OPERATORS: Record<string, BaseOperator> = {
  StringEquals: { negated: false, matches: (p, v) => p.text === v },
  StringNotEquals: { negated: true, matches: (p, v) => p.text === v },
  StringEqualsIgnoreCase: { negated: false, matches: (p, v) => p.text.toLowerCase() === v.toLowerCase() },
  StringNotEqualsIgnoreCase: { negated: true, matches: (p, v) => p.text.toLowerCase() === v.toLowerCase() },
  StringLike: { negated: false, matches: (p, v) => p.like.test(v) },
  StringNotLike: { negated: true, matches: (p, v) => p.like.test(v) },
};

interface Operator {
  set?: "ForAnyValue" | "ForAllValues";
  base: BaseOperator | "Null";
  ifExists: boolean;
}

function parseOperator(name: string): Operator | undefined {
  const set = name.startsWith("ForAnyValue:") ? "ForAnyValue" : name.startsWith("ForAllValues:") ? "ForAllValues" : undefined;
  let rest = set ? name.slice(set.length + 1) : name;
  if (rest === "Null") return set ? undefined : { base: "Null", ifExists: false };
  const ifExists = rest.endsWith("IfExists");
  if (ifExists) rest = rest.slice(0, -"IfExists".length);
  const base = OPERATORS[rest];
  return base ? { set, base, ifExists } : undefined;
}

/** Does one operator on one key hold for the request's values (none when the key is absent)? */
function operatorHolds(operator: Operator, rawValues: string[], policyValues: PolicyValue[], values: string[]): boolean {
  if (operator.base === "Null") return (values.length === 0) === rawValues.some((p) => p.toLowerCase() === "true");
  const { base, set, ifExists } = operator;
  if (values.length === 0) {
    if (ifExists || set === "ForAllValues") return true;
    if (set === "ForAnyValue") return false;
    return base.negated;
  }
  const satisfied = (v: string) => policyValues.some((p) => base.matches(p, v)) !== base.negated;
  if (set === "ForAllValues") return values.every(satisfied);
  if (set === "ForAnyValue") return values.some(satisfied);
  return base.negated ? values.every(satisfied) : values.some(satisfied);
}

// ---------------------------------------------------------------------------------------
// Policy variables (IAM User Guide, "IAM policy elements: Variables and tags"): in a
// 2012-10-17 policy `${key}` in a String condition value is replaced by the request's value
// of that key, `${key, 'default'}` falls back to the default, and `${*}` `${?}` `${$}` are
// those characters. A substituted value is literal text, even inside StringLike. A key with
// no value and no default makes the value "effectively null": it matches nothing.

const VARIABLE = /\$\{([^}]*)\}/g;
const WITH_DEFAULT = /^([^,]+),\s*'([^']*)'$/;
const SPECIAL_CHARACTERS = new Set(["*", "?", "$"]);

/** A value with its variables substituted; undefined when it matches nothing; `{ undecided }` naming a key only AWS knows. */
type Resolved = PolicyValue | undefined | { undecided: string };

function resolveValue(raw: string, ctx: Context, variables: boolean): Resolved {
  if (!variables || !raw.includes("${")) return { text: raw, like: new RegExp(`^${wildcardSource(raw)}$`, "s") };
  let text = "";
  let like = "";
  let rest = 0;
  for (const match of raw.matchAll(VARIABLE)) {
    const literal = raw.slice(rest, match.index);
    text += literal;
    like += wildcardSource(literal);
    const value = variableValue(match[1].trim(), ctx);
    if (value === undefined || typeof value === "object") return value;
    text += value;
    like += escapeRegex(value);
    rest = match.index + match[0].length;
  }
  text += raw.slice(rest);
  like += wildcardSource(raw.slice(rest));
  return { text, like: new RegExp(`^${like}$`, "s") };
}

/** The value a variable stands for; undefined: none; `{ undecided }`: a key the token does not carry (aws:…, sts:…). */
function variableValue(body: string, ctx: Context): string | undefined | { undecided: string } {
  if (SPECIAL_CHARACTERS.has(body)) return body;
  const withDefault = WITH_DEFAULT.exec(body);
  const key = (withDefault ? withDefault[1] : body).trim();
  const claim = claimOfKey(key);
  if (!claim) return { undecided: key };
  const values = ownProvider(key, ctx) ? claimValues(ctx.claims, claim) : [];
  // "You can't use a multivalued condition key as a variable": one value, or the default.
  return values.length === 1 ? values[0] : withDefault?.[2];
}

// ---------------------------------------------------------------------------------------
// Evaluation

interface Refusal {
  /** Which part of the statement refuses the token, with the values compared. */
  detail: string;
  claim?: ClaimName;
  policyValues?: string[];
  what: "action" | "principal" | "condition";
}

interface StatementVerdict {
  label: string;
  effect: "Allow" | "Deny";
  refusals: Refusal[];
  /** Conditions on keys the token does not decide (aws:SourceIp, sts:RoleSessionName…). */
  unchecked: string[];
  /** The `sub` values of the statement's conditions, for the broadness warning. */
  subValues: string[] | undefined;
}

interface Context {
  provider: string;
  providerArn: RegExp;
  claims: PolicyClaims;
}

function claimValues(claims: PolicyClaims, claim: ClaimName): string[] {
  if (claim === "aud") return claims.aud;
  if (claim === "sub") return [claims.sub];
  return claims.email ? [claims.email] : [];
}

function describeValues(values: string[]): string {
  return values.length === 1 ? JSON.stringify(values[0]) : JSON.stringify(values);
}

/** `variables`: the policy's Version is 2012-10-17, the only one in which `${…}` are policy variables. */
function evaluateStatement(statement: Statement, index: number, ctx: Context, variables: boolean): StatementVerdict {
  const label = `statement ${statement.Sid ? JSON.stringify(statement.Sid) : index}`;
  const verdict: StatementVerdict = { label, effect: statement.Effect === "Deny" ? "Deny" : "Allow", refusals: [], unchecked: [], subValues: undefined };
  const actions = statement.Action !== undefined ? listOf(statement.Action) : undefined;
  const actionOk = actions ? actions.some((a) => wildcardMatch(a, ACTION, true)) : !listOf(statement.NotAction).some((a) => wildcardMatch(a, ACTION, true));
  if (!actionOk) verdict.refusals.push({ what: "action", detail: `its Action ${JSON.stringify(statement.Action ?? { NotAction: statement.NotAction })} does not include ${ACTION}` });
  const principalRefusal = refusePrincipal(statement, ctx);
  if (principalRefusal) verdict.refusals.push(principalRefusal);
  for (const [operatorName, entries] of Object.entries(statement.Condition ?? {})) {
    const operator = parseOperator(operatorName);
    for (const [key, value] of Object.entries(entries ?? {})) {
      const rawValues = (Array.isArray(value) ? value : [value]).map(String);
      const claim = claimOfKey(key);
      if (!operator || !claim) {
        // A key the token does not carry is named alone; an operator the check does not know, with its key.
        verdict.unchecked.push(claim ? `${operatorName} ${key}` : key);
        continue;
      }
      const resolved = rawValues.map((raw) => resolveValue(raw, ctx, variables));
      const undecided = resolved.find((r): r is { undecided: string } => r !== undefined && "undecided" in r);
      if (undecided) {
        verdict.unchecked.push(`${key} (its value names ${undecided.undecided})`);
        continue;
      }
      const policyValues = resolved.filter((r): r is PolicyValue => r !== undefined);
      const own = ownProvider(key, ctx);
      const values = own ? claimValues(ctx.claims, claim) : [];
      const shown = policyValues.map((p) => p.text);
      if (claim === "sub" && own) verdict.subValues = shown;
      if (operatorHolds(operator, rawValues, policyValues, values)) continue;
      verdict.refusals.push({
        what: "condition",
        claim,
        policyValues: shown,
        detail: own
          ? `${operatorName} ${key}: the token's ${claim} ${values.length ? describeValues(values) : "(absent)"} does not satisfy ${describeValues(shown.length ? shown : rawValues)}${claim === "sub" ? closestSubPattern(ctx.claims.sub, shown) : ""}`
          : `${operatorName} ${key}: the key names provider ${key.slice(0, key.lastIndexOf(":"))}, but the token's issuer is ${ctx.provider}, so AWS sees no such key`,
      });
    }
  }
  return verdict;
}

/** `<provider>:aud|sub|email` → the claim; any other key (aws:*, sts:*, amr…) is not decided by the token. */
function claimOfKey(key: string): ClaimName | undefined {
  const name = key.slice(key.lastIndexOf(":") + 1).toLowerCase();
  return key.includes(":") && !/^(aws|sts):/i.test(key) ? CLAIM_KEYS.find((c) => c === name) : undefined;
}

/** Condition key names are case-insensitive in IAM, the provider part included. */
function ownProvider(key: string, ctx: Context): boolean {
  return key.slice(0, key.lastIndexOf(":")).toLowerCase() === ctx.provider.toLowerCase();
}

function refusePrincipal(statement: Statement, ctx: Context): Refusal | undefined {
  const listed = (block: Statement["Principal"]) =>
    block === "*" || listOf(block?.Federated).some((id) => id === "*" || ctx.providerArn.test(id));
  const ok = statement.Principal !== undefined ? listed(statement.Principal) : statement.NotPrincipal !== undefined && !listed(statement.NotPrincipal);
  if (ok) return undefined;
  const named = statement.Principal === undefined ? "none" : JSON.stringify(statement.Principal);
  return { what: "principal", detail: `its Principal ${named} is not the OIDC provider ${ctx.provider} that issued the token` };
}

/** Which part of the nearest `sub` pattern differs from the token's, e.g. the workspace. */
function closestSubPattern(sub: string, patterns: string[]): string {
  const parts = sub.split("::");
  if (parts.length !== SUB_PARTS.length) return "";
  let best: { pattern: string; differ: string[] } | undefined;
  for (const pattern of patterns) {
    const patternParts = pattern.split("::");
    if (patternParts.length !== SUB_PARTS.length) continue;
    const differ = SUB_PARTS.flatMap((name, i) => (wildcardMatch(patternParts[i], parts[i]) ? [] : [`its ${name} is ${JSON.stringify(patternParts[i])}, the token's ${JSON.stringify(parts[i])}`]));
    if (!best || differ.length < best.differ.length) best = { pattern, differ };
  }
  return best ? ` (closest: ${JSON.stringify(best.pattern)}, where ${best.differ.join("; ")})` : "";
}

/** Windmill's loop iterations run at `<flow>/forloop-<i>` or `<flow>/loop-<i>` (see awsSetup.ts subPatterns). */
const LOOP_ITERATION = /\/(forloop|loop)-\d+$/;

/** The patterns f/aws_oidc/trust_policy would write for the script or flow this token comes from. */
export function suggestedSubPatterns(sub: string): string[] {
  const [, path, flowPath, workspace, ...rest] = sub.split("::");
  if (workspace === undefined || rest.length) return [sub];
  if (flowPath !== "no_flow") return subPatterns({ scripts: [], flows: [flowPath.replace(LOOP_ITERATION, "")], workspace });
  return subPatterns({ scripts: path === "no_path" ? [] : [path], flows: [], workspace });
}

function refusalFix(refusal: Refusal, ctx: Context): string {
  const { provider, claims } = ctx;
  const wanted = describeValues(refusal.policyValues ?? []);
  if (refusal.what === "action") return `the statement's Action must include ${ACTION}.`;
  if (refusal.what === "principal") {
    return `the statement's Principal must be {"Federated": "arn:aws:iam::<account>:oidc-provider/${provider}"}: the token's issuer is ${claims.iss}, and IAM > Identity providers must hold exactly that URL.`;
  }
  if (refusal.claim === "aud") {
    return `the token's audience is ${describeValues(claims.aud)} (the audience input): put it in the condition on ${provider}:aud, or run with audience = ${wanted} (the OIDC provider in IAM must list that audience too).`;
  }
  if (refusal.claim === "email") {
    return `the token's email is ${claims.email ? JSON.stringify(claims.email) : "absent"}: add it to the condition on ${provider}:email, or run as a user it lists.`;
  }
  const patterns = suggestedSubPatterns(claims.sub);
  return `to admit this job, add ${patterns.map((p) => JSON.stringify(p)).join(", ")} to StringLike ${provider}:sub (f/aws_oidc/trust_policy writes these for the scripts and flows you list).`;
}

/** A statement that admits every job of the instance, or of any workspace, is a hole even when it works. */
function broadnessWarning(verdict: StatementVerdict, ctx: Context): DoctorRow | undefined {
  const workspace = ctx.claims.sub.split("::")[3];
  const pinned = (p: string) => {
    const parts = p.split("::");
    return parts.length === SUB_PARTS.length && parts[3] === workspace;
  };
  if (verdict.subValues && verdict.subValues.every(pinned)) return undefined;
  const problem = verdict.subValues
    ? `${verdict.label} admits this token, but its sub pattern ${describeValues(verdict.subValues.filter((p) => !pinned(p)))} is not pinned to a workspace: jobs of other workspaces of this Windmill instance match it too`
    : `${verdict.label} admits this token, but it has no condition on ${ctx.provider}:sub: every job of every workspace of this Windmill instance can assume the role`;
  return row(TRUST_POLICY_CHECK, "warning", problem, `narrow it: StringLike ${ctx.provider}:sub = ${suggestedSubPatterns(ctx.claims.sub).map((p) => JSON.stringify(p)).join(", ")} (one pattern per allowed script or flow, each ending in ::<workspace>).`);
}

/** "cannot check offline: <keys>, AWS will evaluate it": a condition only AWS can decide is neither passed nor failed. */
export const CANNOT_CHECK_OFFLINE = "cannot check offline";

function undecidedKeys(verdicts: StatementVerdict[]): string {
  const keys = [...new Set(verdicts.flatMap((v) => v.unchecked))];
  return `${CANNOT_CHECK_OFFLINE}: ${keys.join(", ")}, AWS will evaluate ${keys.length > 1 ? "them" : "it"}`;
}

/**
 * The trust-policy row of the doctor's table: does this policy admit a token with these
 * claims? The Federated principal is compared exactly: the provider URL is case-sensitive and
 * must be the token's iss (IAM User Guide, "Create an OpenID Connect (OIDC) identity provider
 * in IAM"; IAM API reference, CreateOpenIDConnectProvider: Url "should correspond to the iss
 * claim"), as the STS stand-in compares it.
 */
export function checkTrustPolicy(policy: TrustPolicy, claims: PolicyClaims, accountId = "*"): DoctorRow {
  const provider = providerOf(claims.iss);
  const account = accountId === "*" ? "\\d{12}" : accountId;
  const ctx: Context = { provider, claims, providerArn: new RegExp(`^arn:aws[\\w-]*:iam::${account}:oidc-provider/${escapeRegex(provider)}$`) };
  const statements = Array.isArray(policy.Statement) ? policy.Statement : [policy.Statement];
  const verdicts = statements.map((s, i) => evaluateStatement(s, i, ctx, policy.Version === "2012-10-17"));
  const holding = verdicts.filter((v) => v.refusals.length === 0);
  const deny = holding.find((v) => v.effect === "Deny" && v.unchecked.length === 0);
  if (deny) return row(TRUST_POLICY_CHECK, "failed", `${deny.label} explicitly denies this token`, `remove or narrow ${deny.label}: an explicit Deny wins over every Allow.`);
  const allows = holding.filter((v) => v.effect === "Allow");
  if (allows.length === 0) return refusalRow(verdicts, ctx);
  const allow = allows.find((v) => v.unchecked.length === 0);
  const undecidedDenies = holding.filter((v) => v.effect === "Deny");
  if (undecidedDenies.length) {
    const admits = allow ? `; otherwise ${allow.label} admits it` : `; otherwise ${allows[0].label} admits it only if ${allows[0].unchecked.join(", ")} hold too`;
    return row(TRUST_POLICY_CHECK, "warning", `${undecidedKeys(undecidedDenies)}: if it holds, ${undecidedDenies.map((v) => v.label).join(" and ")} denies this token${admits}`,
      "see the AssumeRoleWithWebIdentity row for AWS's answer, or check those conditions by hand.");
  }
  if (!allow) {
    return row(TRUST_POLICY_CHECK, "warning", `${undecidedKeys(allows)}: ${allows.map((v) => v.label).join(" or ")} admits this token's aud, sub and email only if it holds`,
      "see the AssumeRoleWithWebIdentity row for AWS's answer, or check those conditions by hand.");
  }
  return broadnessWarning(allow, ctx) ?? row(TRUST_POLICY_CHECK, "ok", `${allow.label} admits this token (aud ${describeValues(claims.aud)}, sub ${JSON.stringify(claims.sub)})`);
}

/** No Allow statement admits the token: the one closest to admitting it names what to change. */
function refusalRow(verdicts: StatementVerdict[], ctx: Context): DoctorRow {
  const relevant = verdicts.filter((v) => v.effect === "Allow" && !v.refusals.some((r) => r.what === "action"));
  if (relevant.length === 0) {
    return row(TRUST_POLICY_CHECK, "failed", `no Allow statement is for ${ACTION}`, `add a statement with Effect Allow, Action ${ACTION} and Principal {"Federated": "arn:aws:iam::<account>:oidc-provider/${ctx.provider}"}.`);
  }
  const closest = [...relevant].sort((a, b) => a.refusals.length - b.refusals.length)[0];
  const detail = relevant.map((v) => `${v.label} refuses it: ${v.refusals.map((r) => r.detail).join("; ")}`).join(". ");
  const fixes = closest.refusals.map((r) => refusalFix(r, ctx));
  return row(TRUST_POLICY_CHECK, "failed", detail, fixes.length === 1 ? fixes[0] : fixes.map((f, i) => `(${i + 1}) ${f}`).join(" "));
}
