// IAM's policy strings: the `*` and `?` wildcards, ArnLike's part-by-part match, and policy
// variables (`${aws:username}`, `${aws:PrincipalTag/team, 'default'}`, `${*}`, `${?}`, `${$}`)
// filled in from the request context before a string is compared (IAM User Guide, "IAM
// policy elements: Variables and tags"). Also the request context itself and its lookup.

export type StringOrList = string | string[];

/** Request context for conditions. Keys are matched case-insensitively, as IAM does. */
export type ConditionContext = Record<string, StringOrList | undefined>;

export function listOf(value: StringOrList | undefined): string[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

/** A key's entry in the context, whatever the case it is written in ("Key names are case-insensitive"). */
function contextEntry(context: ConditionContext, key: string): StringOrList | undefined {
  const wanted = key.toLowerCase();
  for (const [name, value] of Object.entries(context)) {
    if (name.toLowerCase() === wanted) return value;
  }
  return undefined;
}

/** The values of a context key; none when the request context lacks it. */
export function contextValues(context: ConditionContext, key: string): string[] {
  return listOf(contextEntry(context, key));
}

// ---------------------------------------------------------------------------------------
// Wildcards

const ANY_RUN = { wildcard: "*" } as const;
const ANY_ONE = { wildcard: "?" } as const;
type Wildcard = typeof ANY_RUN | typeof ANY_ONE;

/** A policy string ready to match: each element is one literal character or a wildcard. */
export type Pattern = readonly (string | Wildcard)[];

/** A policy string as written: `*` and `?` are wildcards, every other character is itself. */
export function compilePattern(text: string): Pattern {
  return Array.from(text, (c) => (c === "*" ? ANY_RUN : c === "?" ? ANY_ONE : c));
}

/** The pattern written out again, its wildcards as `*` and `?` (what the equality operators compare). */
export function textOf(pattern: Pattern): string {
  return pattern.map((t) => (typeof t === "string" ? t : t.wildcard)).join("");
}

/** IAM's wildcard match: `*` is any run of characters (even none), `?` exactly one. */
export function stringLike(pattern: string | Pattern, value: string, ignoreCase = false): boolean {
  const p = typeof pattern === "string" ? compilePattern(pattern) : pattern;
  const fold = (c: string) => (ignoreCase ? c.toLowerCase() : c);
  const v = Array.from(value, fold);
  // Greedy match that backtracks only to the most recent `*`: linear in practice, and no
  // regex built from user text, so patterns cannot smuggle regex syntax.
  let pi = 0;
  let vi = 0;
  let starAt = -1;
  let starMatchedUpTo = 0;
  while (vi < v.length) {
    const token = p[pi];
    if (token === ANY_RUN) {
      starAt = pi++;
      starMatchedUpTo = vi;
    } else if (token === ANY_ONE || (typeof token === "string" && fold(token) === v[vi])) {
      pi++;
      vi++;
    } else if (starAt >= 0) {
      pi = starAt + 1;
      vi = ++starMatchedUpTo;
    } else {
      return false;
    }
  }
  while (p[pi] === ANY_RUN) pi++;
  return pi === p.length;
}

/** The six colon-separated parts of an ARN (the resource part keeps its own colons), or undefined. */
function arnParts(tokens: Pattern): Pattern[] | undefined {
  const parts: (string | Wildcard)[][] = [[]];
  for (const token of tokens) {
    if (token === ":" && parts.length < 6) parts.push([]);
    else parts[parts.length - 1]!.push(token);
  }
  if (parts.length < 6 || textOf(parts[0]!) !== "arn") return undefined;
  return parts;
}

/** ArnLike (and ArnEquals, which behaves identically): each of the six parts is matched on its own, so `*` never spans a colon. */
export function arnLike(pattern: string | Pattern, arn: string): boolean {
  const p = typeof pattern === "string" ? compilePattern(pattern) : pattern;
  const patternParts = arnParts(p);
  const valueParts = arnParts(Array.from(arn));
  // Something that is not a six-part ARN matches only a bare `*`.
  if (!patternParts || !valueParts) return p.length === 1 && p[0] === ANY_RUN;
  return patternParts.every((part, i) => stringLike(part, textOf(valueParts[i]!)));
}

// ---------------------------------------------------------------------------------------
// Policy variables

/** `${...}`: a policy variable. */
const VARIABLE = /\$\{([^}]*)\}/g;
/** `${key, 'default'}`: "surround the default value with single quotes, and separate the variable text and the default value with a comma and space". */
const WITH_DEFAULT = /^([^,]+),\s*'([^']*)'$/;
/** "${*} - use where you need an * (asterisk) character", likewise ${?} and ${$}. */
const SPECIAL_CHARACTERS = new Map([["*", "*"], ["?", "?"], ["$", "$"]]);

function variableValue(body: string, context: ConditionContext): string | undefined {
  const special = SPECIAL_CHARACTERS.get(body.trim());
  if (special) return special;
  const withDefault = WITH_DEFAULT.exec(body.trim());
  const value = contextEntry(context, (withDefault ? withDefault[1]! : body).trim());
  // "You can use any single-valued condition key as a variable. You can't use a multivalued condition key as a variable."
  return typeof value === "string" ? value : withDefault?.[2];
}

/**
 * A policy string with its variables filled in. The text around them keeps its wildcards;
 * a substituted value, a default and `${*}` `${?}` `${$}` are literal characters.
 * Undefined when a variable names a key the request has no (single) value for and gives no
 * default: such a string matches nothing. IAM: "When policy variables reference a condition
 * context key that has no value or is not present in an authorization context for a
 * request, the value is effectively null. There is no equal or like value", and in Resource
 * or NotResource "the resource that includes a policy variable with no value will not match
 * any resource".
 */
export function resolveVariables(text: string, context: ConditionContext): Pattern | undefined {
  const pattern: (string | Wildcard)[] = [];
  let rest = 0;
  for (const match of text.matchAll(VARIABLE)) {
    pattern.push(...compilePattern(text.slice(rest, match.index)));
    const value = variableValue(match[1]!, context);
    if (value === undefined) return undefined;
    pattern.push(...Array.from(value));
    rest = match.index + match[0].length;
  }
  pattern.push(...compilePattern(text.slice(rest)));
  return pattern;
}
