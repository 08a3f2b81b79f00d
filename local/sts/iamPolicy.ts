// IAM policy grammar and evaluation for the STS stand-in: trust policies (who may assume a
// role) and permission policies (what a session may do). Pure functions, no I/O, so the
// rules can be unit-tested apart from the HTTP layer. Follows the IAM policy evaluation
// logic: an explicit Deny wins, then an Allow, otherwise the request is implicitly denied.
import { conditionProblems, conditionsMatch, type ConditionBlock } from "./iamConditions.ts";
import { compilePattern, listOf, resolveVariables, stringLike, type ConditionContext, type StringOrList } from "./iamPatterns.ts";
import { isRecord } from "./json.ts";

export type PrincipalType = "AWS" | "Federated" | "Service" | "CanonicalUser";
export type PrincipalBlock = "*" | Partial<Record<PrincipalType, StringOrList>>;

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
/** "Variables were introduced in version 2012-10-17." */
const VARIABLES_VERSION = "2012-10-17";
const STATEMENT_KEYS = new Set(["Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Principal", "NotPrincipal", "Condition"]);
const PRINCIPAL_TYPES = new Set<string>(["AWS", "Federated", "Service", "CanonicalUser"]);
/** `service:ActionPattern` (IAM service prefixes are lower-case letters, digits and dashes) or a lone `*`. */
const ACTION_PATTERN = /^(\*|[a-zA-Z0-9-]+:[a-zA-Z0-9*?]+)$/;

// ---------------------------------------------------------------------------------------
// Grammar

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
// Evaluation

function actionMatches(statement: PolicyStatement, action: string): boolean {
  // Action names are case-insensitive in IAM ("s3:getobject" = "s3:GetObject").
  if (statement.Action !== undefined) return listOf(statement.Action).some((p) => stringLike(p, action, true));
  return !listOf(statement.NotAction).some((p) => stringLike(p, action, true));
}

/** A Resource or NotResource entry whose policy variable has no value "will not match any resource". */
function resourceMatches(labelled: LabelledStatement, resource: string, context: ConditionContext): boolean {
  const { statement, policyVariables } = labelled;
  const listed = (entry: string) => {
    const pattern = policyVariables ? resolveVariables(entry, context) : compilePattern(entry);
    return pattern !== undefined && stringLike(pattern, resource);
  };
  if (statement.Resource !== undefined) return listOf(statement.Resource).some(listed);
  return !listOf(statement.NotResource).some(listed);
}

/**
 * Principal ids are compared exactly: an OIDC provider's URL is case-sensitive and must be the
 * token's iss (IAM User Guide, "Create an OpenID Connect (OIDC) identity provider in IAM").
 */
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

function decide(labelled: LabelledStatement[], applies: (s: LabelledStatement) => boolean): Outcome {
  const matching = labelled.filter(applies);
  const deny = matching.find(({ statement }) => statement.Effect === "Deny");
  if (deny) return { effect: "Deny", reason: `explicitly denied by ${deny.label}` };
  const allow = matching.find(({ statement }) => statement.Effect === "Allow");
  if (allow) return { effect: "Allow", reason: `allowed by ${allow.label}` };
  return { effect: "None" };
}

interface LabelledStatement {
  statement: PolicyStatement;
  label: string;
  /** Policy variables exist only in the 2012-10-17 language; in older policies `${...}` is literal text. */
  policyVariables: boolean;
}

function labelStatements(docs: PolicyDocument[], where: string): LabelledStatement[] {
  return docs.flatMap((doc, d) =>
    statementsOf(doc).map((statement, s) => ({
      statement,
      label: statementLabel(statement, s, docs.length > 1 ? `${where} ${d}` : where),
      policyVariables: doc.Version === VARIABLES_VERSION,
    })),
  );
}

export interface TrustDecision extends Decision {
  /**
   * When allowed: the caller's names that the allowing statements list, "*" for a statement
   * that lists every principal. Empty when only a NotPrincipal statement allows.
   */
  namedIds?: string[];
}

/** May this principal perform `action` (sts:AssumeRole...) on the role whose trust policy is `doc`? */
export function evaluateTrustPolicy(doc: PolicyDocument, request: TrustRequest): TrustDecision {
  const labelled = labelStatements([doc], "trust policy");
  const applies = (l: LabelledStatement) => principalMatches(l.statement, request.principal) && actionMatches(l.statement, request.action)
    && conditionsMatch(l.statement.Condition, request.conditionContext, l.policyVariables);
  const outcome = decide(labelled, applies);
  if (outcome.effect === "None") {
    return { allowed: false, reason: `no trust policy statement allows ${request.action} for ${request.principal.type} ${request.principal.ids[0] ?? "?"} with this context` };
  }
  if (outcome.effect === "Deny") return { allowed: false, reason: outcome.reason };
  const allowing = labelled.filter((l) => l.statement.Effect === "Allow" && applies(l));
  return { allowed: true, reason: outcome.reason, namedIds: [...new Set(allowing.flatMap((l) => namedIn(l.statement.Principal, request.principal)))] };
}

/** Which of the caller's names a Principal block lists ("*" for all principals). */
function namedIn(block: PrincipalBlock | undefined, principal: TrustRequest["principal"]): string[] {
  if (block === undefined) return [];
  if (block === "*") return ["*"];
  return listOf(block[principal.type]).filter((id) => id === "*" || principal.ids.includes(id));
}

function permissionOutcome(docs: PolicyDocument[], where: string, request: PermissionRequest): Outcome {
  const context = request.conditionContext ?? {};
  return decide(
    labelStatements(docs, where),
    (l) => actionMatches(l.statement, request.action) && resourceMatches(l, request.resource, context)
      && conditionsMatch(l.statement.Condition, context, l.policyVariables),
  );
}

/** One set of identity policies (e.g. a role's permission policies): deny wins, then allow, else implicit deny. */
export function evaluatePermission(docs: PolicyDocument[], request: PermissionRequest, where = "permission policy"): Decision {
  const outcome = permissionOutcome(docs, where, request);
  if (outcome.effect === "None") return { allowed: false, reason: `implicitly denied: no ${where} allows ${request.action} on ${request.resource}` };
  return { allowed: outcome.effect === "Allow", reason: outcome.reason };
}

/**
 * How a resource-based policy (a role's trust policy) that lists the caller grants it:
 * "session" when it names the role session's ARN, "principal" when it names the role's ARN
 * (or every principal, "*"). Absent: it names the account, or grants nothing itself.
 */
export type ResourceGrant = "session" | "principal";

/**
 * What a role session may do: the role's permission policies, intersected with the session
 * policies (inline Policy plus PolicyArns) when the session was created with any. In one
 * account a resource-based policy can grant on its own (IAM User Guide, "Policy evaluation
 * logic": "If either the identity-based policy or the resource-based policy within the same
 * account allows the request and the other doesn't, the request is still allowed"); an
 * explicit Deny still wins. Session policies: a resource-based policy that names the user's or
 * role's ARN is limited by the session policy; one that names the session's ARN is not (IAM
 * User Guide, "Policies and permissions in IAM", Session policies).
 */
export function evaluateSessionPermission(
  policies: { rolePolicies: PolicyDocument[]; sessionPolicies?: PolicyDocument[] },
  request: PermissionRequest,
  resourceGrant?: ResourceGrant,
): Decision {
  const role = permissionOutcome(policies.rolePolicies, "role policy", request);
  const session = policies.sessionPolicies ? permissionOutcome(policies.sessionPolicies, "session policy", request) : undefined;
  if (role.effect === "Deny") return { allowed: false, reason: role.reason };
  if (session?.effect === "Deny") return { allowed: false, reason: session.reason };
  if (resourceGrant === "session") return { allowed: true, reason: "allowed by the resource-based policy, which names the session" };
  if (resourceGrant === "principal") {
    if (session && session.effect === "None") return { allowed: false, reason: "implicitly denied: the resource-based policy names the role, and the session policy does not allow it" };
    return { allowed: true, reason: "allowed by the resource-based policy, which names the role" };
  }
  if (role.effect === "None") return { allowed: false, reason: `implicitly denied: no role policy allows ${request.action} on ${request.resource}` };
  if (session && session.effect === "None") {
    return { allowed: false, reason: `implicitly denied: the role allows it (${role.reason}) but the session policy does not` };
  }
  return { allowed: true, reason: session?.effect === "Allow" ? `${role.reason} and ${session.reason}` : role.reason };
}
