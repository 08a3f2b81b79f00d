// IAM policy grammar and evaluation for the STS stand-in: trust policies (who may assume a
// role) and permission policies (what a session may do). Pure functions, no I/O, so the
// rules can be unit-tested apart from the HTTP layer. Follows the IAM policy evaluation
// logic: an explicit Deny wins, then an Allow, otherwise the request is implicitly denied.
import { isRecord } from "./json.ts";

export type StringOrList = string | string[];
export type PrincipalType = "AWS" | "Federated" | "Service" | "CanonicalUser";
export type PrincipalBlock = "*" | Partial<Record<PrincipalType, StringOrList>>;
export type ConditionScalar = string | number | boolean;
/** `{ operator: { conditionKey: value or values } }` */
export type ConditionBlock = Record<string, Record<string, ConditionScalar | ConditionScalar[]>>;

export interface PolicyStatement {
  Sid?: string;
  Effect: "Allow" | "Deny";
  Action?: StringOrList;
  NotAction?: StringOrList;
  Resource?: StringOrList;
  NotResource?: StringOrList;
  Principal?: PrincipalBlock;
  NotPrincipal?: PrincipalBlock;
  Condition?: ConditionBlock;
}

export interface PolicyDocument {
  Version?: string;
  Id?: string;
  Statement: PolicyStatement | PolicyStatement[];
}

/** Request context for conditions. Keys are matched case-insensitively, as IAM does. */
export type ConditionContext = Record<string, StringOrList | undefined>;

export interface Decision {
  allowed: boolean;
  reason: string;
}

/** Trust policies carry a Principal and no Resource; identity (permission and session) policies the reverse. */
export type PolicyKind = "trust" | "identity";

export interface TrustRequest {
  action: string;
  /** Every identifier the caller can be named by (role ARN, account root ARN, account id...). */
  principal: { type: PrincipalType; ids: string[] };
  conditionContext: ConditionContext;
}

export interface PermissionRequest {
  action: string;
  resource: string;
  conditionContext?: ConditionContext;
}

/** The only policy language versions IAM accepts. */
const POLICY_VERSIONS = new Set(["2012-10-17", "2008-10-17"]);
const STATEMENT_KEYS = new Set(["Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Principal", "NotPrincipal", "Condition"]);
const PRINCIPAL_TYPES = new Set<string>(["AWS", "Federated", "Service", "CanonicalUser"]);
/** `service:ActionPattern` (IAM service prefixes are lower-case letters, digits and dashes) or a lone `*`. */
const ACTION_PATTERN = /^(\*|[a-zA-Z0-9-]+:[a-zA-Z0-9*?]+)$/;
const SET_OPERATOR_PREFIXES = ["ForAnyValue:", "ForAllValues:"] as const;
const IF_EXISTS_SUFFIX = "IfExists";

// ---------------------------------------------------------------------------------------
// Wildcards

/** IAM's wildcard match: `*` is any run of characters (even none), `?` exactly one. */
export function stringLike(pattern: string, value: string, ignoreCase = false): boolean {
  const p = ignoreCase ? pattern.toLowerCase() : pattern;
  const v = ignoreCase ? value.toLowerCase() : value;
  // Greedy match that backtracks only to the most recent `*`: linear in practice, and no
  // regex built from user text, so patterns cannot smuggle regex syntax.
  let pi = 0;
  let vi = 0;
  let starAt = -1;
  let starMatchedUpTo = 0;
  while (vi < v.length) {
    if (pi < p.length && p[pi] === "*") {
      starAt = pi++;
      starMatchedUpTo = vi;
    } else if (pi < p.length && (p[pi] === "?" || p[pi] === v[vi])) {
      pi++;
      vi++;
    } else if (starAt >= 0) {
      pi = starAt + 1;
      vi = ++starMatchedUpTo;
    } else {
      return false;
    }
  }
  while (pi < p.length && p[pi] === "*") pi++;
  return pi === p.length;
}

/** ArnLike: each of the six colon-separated parts is matched on its own, so `*` never spans a colon boundary. */
export function arnLike(pattern: string, arn: string): boolean {
  const patternParts = splitArn(pattern);
  const arnParts = splitArn(arn);
  // Something that is not a six-part ARN matches only a bare `*`.
  if (!patternParts || !arnParts) return pattern === "*";
  return patternParts.every((part, i) => stringLike(part, arnParts[i]!));
}

function splitArn(arn: string): string[] | undefined {
  const parts = arn.split(":");
  if (parts.length < 6 || parts[0] !== "arn") return undefined;
  return [...parts.slice(0, 5), parts.slice(5).join(":")];
}

// ---------------------------------------------------------------------------------------
// Grammar

export function listOf(value: StringOrList | undefined): string[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

export function statementsOf(doc: PolicyDocument): PolicyStatement[] {
  return Array.isArray(doc.Statement) ? doc.Statement : [doc.Statement];
}

function isStringOrList(value: unknown): value is StringOrList {
  if (typeof value === "string") return value.length > 0;
  return Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === "string" && v.length > 0);
}

/** Lists what makes `value` an invalid policy of this kind; empty when it is valid. */
export function policyProblems(value: unknown, kind: PolicyKind): string[] {
  if (!isRecord(value)) return ["the policy must be a JSON object"];
  const problems: string[] = [];
  for (const key of Object.keys(value)) {
    if (!["Version", "Id", "Statement"].includes(key)) problems.push(`unknown top-level field ${key}`);
  }
  if (value.Version !== undefined && !POLICY_VERSIONS.has(String(value.Version))) {
    problems.push(`Version must be "2012-10-17" or "2008-10-17", not ${JSON.stringify(value.Version)}`);
  }
  const statements = Array.isArray(value.Statement) ? value.Statement : value.Statement === undefined ? [] : [value.Statement];
  if (statements.length === 0) problems.push("Statement is missing or empty");
  statements.forEach((statement, i) => problems.push(...statementProblems(statement, kind).map((p) => `Statement[${i}]: ${p}`)));
  return problems;
}

function statementProblems(statement: unknown, kind: PolicyKind): string[] {
  if (!isRecord(statement)) return ["a statement must be a JSON object"];
  const problems: string[] = [];
  for (const key of Object.keys(statement)) {
    if (!STATEMENT_KEYS.has(key)) problems.push(`unknown field ${key}`);
  }
  if (statement.Effect !== "Allow" && statement.Effect !== "Deny") {
    problems.push(`Effect must be "Allow" or "Deny", not ${JSON.stringify(statement.Effect)}`);
  }
  problems.push(...exactlyOne(statement, "Action", "NotAction"));
  for (const action of [...listIfValid(statement.Action), ...listIfValid(statement.NotAction)]) {
    if (!ACTION_PATTERN.test(action)) problems.push(`action ${JSON.stringify(action)} is not of the form service:Action`);
  }
  if (kind === "identity") {
    problems.push(...exactlyOne(statement, "Resource", "NotResource"));
    // IAM's own wording for a principal in an identity-based policy.
    if ("Principal" in statement || "NotPrincipal" in statement) problems.push("Policy document should not specify a principal.");
  } else {
    const principals = (["Principal", "NotPrincipal"] as const).filter((k) => k in statement);
    if (principals.length !== 1) problems.push("needs exactly one of Principal or NotPrincipal");
    for (const key of principals) problems.push(...principalProblems(statement[key]));
    // IAM's own wording for a Resource in a trust policy.
    if ("Resource" in statement || "NotResource" in statement) problems.push("Has prohibited field Resource.");
  }
  if ("Condition" in statement) problems.push(...conditionProblems(statement.Condition));
  return problems;
}

function listIfValid(value: unknown): string[] {
  return isStringOrList(value) ? listOf(value) : [];
}

function exactlyOne(statement: Record<string, unknown>, a: string, b: string): string[] {
  const present = [a, b].filter((k) => k in statement);
  if (present.length !== 1) return [`needs exactly one of ${a} or ${b}`];
  return isStringOrList(statement[present[0]!]) ? [] : [`${present[0]} must be a non-empty string or list of strings`];
}

function principalProblems(principal: unknown): string[] {
  if (principal === "*") return [];
  if (!isRecord(principal) || Object.keys(principal).length === 0) return ['Principal must be "*" or an object such as {"AWS": "<arn>"}'];
  return Object.entries(principal).flatMap(([type, ids]) => {
    if (!PRINCIPAL_TYPES.has(type)) return [`unknown principal type ${type}`];
    return isStringOrList(ids) ? [] : [`Principal.${type} must be a non-empty string or list of strings`];
  });
}

function conditionProblems(condition: unknown): string[] {
  if (!isRecord(condition)) return ["Condition must be an object of operators"];
  return Object.entries(condition).flatMap(([operator, entries]) => {
    if (!parseOperator(operator)) return [`condition operator ${operator} is not supported`];
    if (!isRecord(entries) || Object.keys(entries).length === 0) return [`Condition.${operator} must map condition keys to values`];
    return Object.entries(entries).flatMap(([key, v]) => (isConditionValue(v) ? [] : [`Condition.${operator}.${key} must be a string, number, boolean or a non-empty list of them`]));
  });
}

function isScalar(value: unknown): value is ConditionScalar {
  return typeof value === "string" || typeof value === "number" || typeof value === "boolean";
}

function isConditionValue(value: unknown): value is ConditionScalar | ConditionScalar[] {
  return isScalar(value) || (Array.isArray(value) && value.length > 0 && value.every(isScalar));
}

export type ParsedPolicy = { ok: true; document: PolicyDocument } | { ok: false; problem: string };

/** Parses policy JSON text (a session policy, say) and checks its grammar. */
export function parsePolicyDocument(text: string, kind: PolicyKind): ParsedPolicy {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, problem: "The policy is not in the valid JSON format." };
  }
  const problems = policyProblems(value, kind);
  if (problems.length > 0) return { ok: false, problem: `Syntax errors in policy: ${problems.join("; ")}` };
  return { ok: true, document: value as PolicyDocument };
}

// ---------------------------------------------------------------------------------------
// Conditions

type SetOperator = "ForAnyValue" | "ForAllValues";

interface BaseOperator {
  /** Negated operators ("Not") match when no policy value matches. */
  negated: boolean;
  matches(policyValue: string, contextValue: string): boolean;
}

const BASE_OPERATORS: Record<string, BaseOperator> = {
  StringEquals: { negated: false, matches: (p, v) => p === v },
  StringNotEquals: { negated: true, matches: (p, v) => p === v },
  StringEqualsIgnoreCase: { negated: false, matches: (p, v) => p.toLowerCase() === v.toLowerCase() },
  StringNotEqualsIgnoreCase: { negated: true, matches: (p, v) => p.toLowerCase() === v.toLowerCase() },
  StringLike: { negated: false, matches: (p, v) => stringLike(p, v) },
  StringNotLike: { negated: true, matches: (p, v) => stringLike(p, v) },
  ArnEquals: { negated: false, matches: arnLike },
  ArnLike: { negated: false, matches: arnLike },
  ArnNotEquals: { negated: true, matches: arnLike },
  ArnNotLike: { negated: true, matches: arnLike },
  Bool: { negated: false, matches: (p, v) => p.toLowerCase() === v.toLowerCase() },
};

interface ParsedOperator {
  set?: SetOperator;
  /** `Null` is special: it tests whether the key is present at all. */
  base: BaseOperator | "Null";
  ifExists: boolean;
}

function parseOperator(name: string): ParsedOperator | undefined {
  let rest = name;
  let set: SetOperator | undefined;
  for (const prefix of SET_OPERATOR_PREFIXES) {
    if (rest.startsWith(prefix)) {
      set = prefix.slice(0, -1) as SetOperator;
      rest = rest.slice(prefix.length);
    }
  }
  if (rest === "Null") return set ? undefined : { base: "Null", ifExists: false };
  const ifExists = rest.endsWith(IF_EXISTS_SUFFIX);
  if (ifExists) rest = rest.slice(0, -IF_EXISTS_SUFFIX.length);
  const base = BASE_OPERATORS[rest];
  return base ? { set, base, ifExists } : undefined;
}

function contextValues(context: ConditionContext, key: string): string[] {
  const wanted = key.toLowerCase();
  for (const [name, value] of Object.entries(context)) {
    if (name.toLowerCase() === wanted) return listOf(value);
  }
  return [];
}

function operatorMatches(operator: ParsedOperator, policyValues: string[], values: string[]): boolean {
  if (operator.base === "Null") {
    const wantAbsent = policyValues.some((p) => p.toLowerCase() === "true");
    return (values.length === 0) === wantAbsent;
  }
  const { base, set, ifExists } = operator;
  if (values.length === 0) {
    if (ifExists || set === "ForAllValues") return true;
    if (set === "ForAnyValue") return false;
    return base.negated;
  }
  const matchesAny = (v: string) => policyValues.some((p) => base.matches(p, v));
  const satisfied = (v: string) => (base.negated ? !matchesAny(v) : matchesAny(v));
  if (set === "ForAllValues") return values.every(satisfied);
  if (set === "ForAnyValue") return values.some(satisfied);
  return base.negated ? values.every(satisfied) : values.some(satisfied);
}

/** Every operator and every key must match (AND); the values listed for one key are alternatives (OR). */
export function conditionsMatch(condition: ConditionBlock | undefined, context: ConditionContext): boolean {
  if (!condition) return true;
  return Object.entries(condition).every(([operatorName, entries]) => {
    const operator = parseOperator(operatorName);
    if (!operator) return false;
    return Object.entries(entries).every(([key, value]) => {
      const policyValues = (Array.isArray(value) ? value : [value]).map(String);
      return operatorMatches(operator, policyValues, contextValues(context, key));
    });
  });
}

// ---------------------------------------------------------------------------------------
// Evaluation

function actionMatches(statement: PolicyStatement, action: string): boolean {
  // Action names are case-insensitive in IAM ("s3:getobject" = "s3:GetObject").
  if (statement.Action !== undefined) return listOf(statement.Action).some((p) => stringLike(p, action, true));
  return !listOf(statement.NotAction).some((p) => stringLike(p, action, true));
}

function resourceMatches(statement: PolicyStatement, resource: string): boolean {
  if (statement.Resource !== undefined) return listOf(statement.Resource).some((p) => stringLike(p, resource));
  return !listOf(statement.NotResource).some((p) => stringLike(p, resource));
}

function principalListed(block: PrincipalBlock, principal: TrustRequest["principal"]): boolean {
  if (block === "*") return true;
  return listOf(block[principal.type]).some((id) => id === "*" || principal.ids.includes(id));
}

function principalMatches(statement: PolicyStatement, principal: TrustRequest["principal"]): boolean {
  if (statement.Principal !== undefined) return principalListed(statement.Principal, principal);
  if (statement.NotPrincipal !== undefined) return !principalListed(statement.NotPrincipal, principal);
  return false;
}

function statementLabel(statement: PolicyStatement, index: number, where: string): string {
  return `${where} statement ${statement.Sid ? `"${statement.Sid}"` : index}`;
}

type Outcome = { effect: "Allow" | "Deny"; reason: string } | { effect: "None" };

function decide(labelled: { statement: PolicyStatement; label: string }[], applies: (s: PolicyStatement) => boolean): Outcome {
  const matching = labelled.filter(({ statement }) => applies(statement));
  const deny = matching.find(({ statement }) => statement.Effect === "Deny");
  if (deny) return { effect: "Deny", reason: `explicitly denied by ${deny.label}` };
  const allow = matching.find(({ statement }) => statement.Effect === "Allow");
  if (allow) return { effect: "Allow", reason: `allowed by ${allow.label}` };
  return { effect: "None" };
}

function labelStatements(docs: PolicyDocument[], where: string): { statement: PolicyStatement; label: string }[] {
  return docs.flatMap((doc, d) =>
    statementsOf(doc).map((statement, s) => ({ statement, label: statementLabel(statement, s, docs.length > 1 ? `${where} ${d}` : where) })),
  );
}

/** May this principal perform `action` (sts:AssumeRole...) on the role whose trust policy is `doc`? */
export function evaluateTrustPolicy(doc: PolicyDocument, request: TrustRequest): Decision {
  const outcome = decide(
    labelStatements([doc], "trust policy"),
    (s) => principalMatches(s, request.principal) && actionMatches(s, request.action) && conditionsMatch(s.Condition, request.conditionContext),
  );
  if (outcome.effect === "None") {
    return { allowed: false, reason: `no trust policy statement allows ${request.action} for ${request.principal.type} ${request.principal.ids[0] ?? "?"} with this context` };
  }
  return { allowed: outcome.effect === "Allow", reason: outcome.reason };
}

function permissionOutcome(docs: PolicyDocument[], where: string, request: PermissionRequest): Outcome {
  return decide(
    labelStatements(docs, where),
    (s) => actionMatches(s, request.action) && resourceMatches(s, request.resource) && conditionsMatch(s.Condition, request.conditionContext ?? {}),
  );
}

/** One set of identity policies (e.g. a role's permission policies): deny wins, then allow, else implicit deny. */
export function evaluatePermission(docs: PolicyDocument[], request: PermissionRequest, where = "permission policy"): Decision {
  const outcome = permissionOutcome(docs, where, request);
  if (outcome.effect === "None") return { allowed: false, reason: `implicitly denied: no ${where} allows ${request.action} on ${request.resource}` };
  return { allowed: outcome.effect === "Allow", reason: outcome.reason };
}

/**
 * What a role session may do: the role's permission policies, intersected with the session
 * policies (inline Policy plus PolicyArns) when the session was created with any.
 */
export function evaluateSessionPermission(
  policies: { rolePolicies: PolicyDocument[]; sessionPolicies?: PolicyDocument[] },
  request: PermissionRequest,
): Decision {
  const role = permissionOutcome(policies.rolePolicies, "role policy", request);
  const session = policies.sessionPolicies ? permissionOutcome(policies.sessionPolicies, "session policy", request) : undefined;
  if (role.effect === "Deny") return { allowed: false, reason: role.reason };
  if (session?.effect === "Deny") return { allowed: false, reason: session.reason };
  if (role.effect === "None") return { allowed: false, reason: `implicitly denied: no role policy allows ${request.action} on ${request.resource}` };
  if (session && session.effect === "None") {
    return { allowed: false, reason: `implicitly denied: the role allows it (${role.reason}) but the session policy does not` };
  }
  return { allowed: true, reason: session?.effect === "Allow" ? `${role.reason} and ${session.reason}` : role.reason };
}
