// IAM condition operators, as the IAM User Guide's "IAM JSON policy elements: Condition
// operators" describes them: String, Numeric, Date, Bool, Binary, IP address and ARN, each
// also as ...IfExists, plus Null, with the ForAnyValue:/ForAllValues: set qualifiers. Their
// grammar, and how a Condition block is matched against the request context.
import { BlockList, isIP } from "node:net";
import { isRecord } from "./json.ts";
import { arnLike, compilePattern, contextValues, resolveVariables, stringLike, textOf, type ConditionContext, type Pattern } from "./iamPatterns.ts";

export type ConditionScalar = string | number | boolean;
/** `{ operator: { conditionKey: value or values } }` */
export type ConditionBlock = Record<string, Record<string, ConditionScalar | ConditionScalar[]>>;

/** One value written in a condition: as text, and as a wildcard pattern for the Like operators. */
interface PolicyValue {
  text: string;
  pattern: Pattern;
}

interface BaseOperator {
  /** Negated operators ("Not") match when no policy value matches. */
  negated: boolean;
  /** "You can use a policy variable for Condition values in any condition that involves the string operators or the ARN operators" (and Bool). */
  variables: boolean;
  matches(policy: PolicyValue, contextValue: string): boolean;
}

// ---------------------------------------------------------------------------------------
// Values of each type

/** An integer or decimal; anything else (hex, Infinity, "") is no number. */
function parseNumber(text: string): number | undefined {
  return /^[+-]?(\d+(\.\d*)?|\.\d+)$/.test(text) ? Number(text) : undefined;
}

/** The W3C profile of ISO 8601 IAM names: YYYY, YYYY-MM, YYYY-MM-DD, then Thh:mm, :ss and .s, with a zone. */
const W3C_DATE = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;

/**
 * "You must specify date/time values with one of the W3C implementations of the ISO 8601
 * date formats or in epoch (UNIX) time." All digits is epoch seconds, except exactly four,
 * which W3C reads as a year. A time without a zone is taken as UTC.
 */
function parseDate(text: string): number | undefined {
  if (/^\d+$/.test(text) && text.length !== 4) return Number(text) * 1000;
  const m = W3C_DATE.exec(text);
  if (!m) return undefined;
  const [, year, month = "01", day = "01", hour = "00", minute = "00", second = "00", fraction = "", zone = "Z"] = m;
  const utc = Date.UTC(Number(year), Number(month) - 1, Number(day), Number(hour), Number(minute), Number(second), fraction ? Math.round(Number(fraction) * 1000) : 0);
  if (zone === "Z") return utc;
  const offsetMinutes = Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6));
  return utc - (zone.startsWith("-") ? -1 : 1) * offsetMinutes * 60_000;
}

/**
 * "The value must be in the standard CIDR format (for example, 203.0.113.0/24 or
 * 2001:DB8:1234:5678::/64). If you specify an IP address without the associated routing
 * prefix, IAM uses the default prefix value of /32" (a bare IPv6 address is that one address).
 */
function ipRange(cidr: string): BlockList | undefined {
  const [address = "", prefix, extra] = cidr.split("/");
  const family = isIP(address);
  if (family === 0 || extra !== undefined) return undefined;
  const type = family === 4 ? "ipv4" : "ipv6";
  const range = new BlockList();
  if (prefix === undefined) {
    range.addAddress(address, type);
  } else {
    if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > (family === 4 ? 32 : 128)) return undefined;
    range.addSubnet(address, Number(prefix), type);
  }
  return range;
}

function inIpRange(policy: PolicyValue, address: string): boolean {
  const family = isIP(address);
  const range = ipRange(policy.text);
  // BlockList also matches an IPv4-mapped IPv6 address (::ffff:a.b.c.d) against IPv4 ranges.
  return range !== undefined && family !== 0 && range.check(address, family === 4 ? "ipv4" : "ipv6");
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** BinaryEquals "compares the value of the specified key byte for byte against a base-64 encoded representation of the binary value in the policy". */
function binaryEquals(policy: PolicyValue, value: string): boolean {
  return BASE64.test(policy.text) && BASE64.test(value) && Buffer.from(policy.text, "base64").equals(Buffer.from(value, "base64"));
}

const BOOLEAN = /^(true|false)$/i;

// ---------------------------------------------------------------------------------------
// Operators

type Comparison = (contextValue: number, policyValue: number) => boolean;

/** Numeric* and Date*: each name ending, whether it is negated, and its comparison (of the request's value to the policy's). */
const ORDERINGS: [suffix: string, negated: boolean, compare: Comparison][] = [
  ["Equals", false, (c, p) => c === p],
  ["NotEquals", true, (c, p) => c === p],
  ["LessThan", false, (c, p) => c < p],
  ["LessThanEquals", false, (c, p) => c <= p],
  ["GreaterThan", false, (c, p) => c > p],
  ["GreaterThanEquals", false, (c, p) => c >= p],
];

function orderedOperators(family: "Numeric" | "Date", parse: (text: string) => number | undefined): [string, BaseOperator][] {
  return ORDERINGS.map(([suffix, negated, compare]) => [`${family}${suffix}`, {
    negated,
    // "You can not use a policy variable with the Numeric [or Date] condition operator."
    variables: false,
    matches: (policy, value) => {
      const [c, p] = [parse(value), parse(policy.text)];
      return c !== undefined && p !== undefined && compare(c, p);
    },
  }]);
}

const string = (negated: boolean, matches: BaseOperator["matches"]): BaseOperator => ({ negated, variables: true, matches });
const sameIgnoringCase = (policy: PolicyValue, value: string) => policy.text.toLowerCase() === value.toLowerCase();

const BASE_OPERATORS: Record<string, BaseOperator> = {
  StringEquals: string(false, (p, v) => p.text === v),
  StringNotEquals: string(true, (p, v) => p.text === v),
  StringEqualsIgnoreCase: string(false, sameIgnoringCase),
  StringNotEqualsIgnoreCase: string(true, sameIgnoringCase),
  StringLike: string(false, (p, v) => stringLike(p.pattern, v)),
  StringNotLike: string(true, (p, v) => stringLike(p.pattern, v)),
  ...Object.fromEntries(orderedOperators("Numeric", parseNumber)),
  ...Object.fromEntries(orderedOperators("Date", parseDate)),
  // The Condition operators page: "You can use a policy variable with the Boolean condition operator."
  Bool: string(false, (p, v) => BOOLEAN.test(p.text) && sameIgnoringCase(p, v)),
  BinaryEquals: { negated: false, variables: false, matches: binaryEquals },
  IpAddress: { negated: false, variables: false, matches: inIpRange },
  NotIpAddress: { negated: true, variables: false, matches: inIpRange },
  // "The ArnEquals and ArnLike condition operators behave identically", as do ArnNotEquals and ArnNotLike.
  ArnEquals: string(false, (p, v) => arnLike(p.pattern, v)),
  ArnLike: string(false, (p, v) => arnLike(p.pattern, v)),
  ArnNotEquals: string(true, (p, v) => arnLike(p.pattern, v)),
  ArnNotLike: string(true, (p, v) => arnLike(p.pattern, v)),
};

type SetOperator = "ForAnyValue" | "ForAllValues";
const SET_OPERATOR_PREFIXES = ["ForAnyValue:", "ForAllValues:"] as const;
const IF_EXISTS_SUFFIX = "IfExists";

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
  // "You can add IfExists to the end of any condition operator name except the Null condition."
  if (rest === "Null") return set ? undefined : { base: "Null", ifExists: false };
  const ifExists = rest.endsWith(IF_EXISTS_SUFFIX);
  if (ifExists) rest = rest.slice(0, -IF_EXISTS_SUFFIX.length);
  const base = Object.hasOwn(BASE_OPERATORS, rest) ? BASE_OPERATORS[rest] : undefined;
  return base ? { set, base, ifExists } : undefined;
}

// ---------------------------------------------------------------------------------------
// Grammar

function isScalar(value: unknown): value is ConditionScalar {
  return typeof value === "string" || typeof value === "number" || typeof value === "boolean";
}

function isConditionValue(value: unknown): value is ConditionScalar | ConditionScalar[] {
  return isScalar(value) || (Array.isArray(value) && value.length > 0 && value.every(isScalar));
}

/**
 * What makes a Condition element invalid. Values are not checked against their operator's
 * type: one that cannot be read as a number, date, CIDR or base-64 simply never matches.
 */
export function conditionProblems(condition: unknown): string[] {
  if (!isRecord(condition)) return ["Condition must be an object of operators"];
  return Object.entries(condition).flatMap(([operator, entries]) => {
    if (!parseOperator(operator)) return [`condition operator ${operator} is not supported`];
    if (!isRecord(entries) || Object.keys(entries).length === 0) return [`Condition.${operator} must map condition keys to values`];
    return Object.entries(entries).flatMap(([key, v]) => (isConditionValue(v) ? [] : [`Condition.${operator}.${key} must be a string, number, boolean or a non-empty list of them`]));
  });
}

// ---------------------------------------------------------------------------------------
// Matching

/** A condition value ready to compare, or undefined when a policy variable in it has no value (it then matches nothing). */
function policyValue(raw: ConditionScalar, base: BaseOperator, context: ConditionContext, policyVariables: boolean): PolicyValue | undefined {
  const text = String(raw);
  if (!policyVariables || !base.variables) return { text, pattern: compilePattern(text) };
  const pattern = resolveVariables(text, context);
  return pattern && { text: textOf(pattern), pattern };
}

/**
 * IAM: "If the key that you specify in a policy condition is not present in the request
 * context, the values do not match and the condition is false. If the policy condition
 * requires that the key is not matched, such as StringNotLike or ArnNotLike, and the right
 * key is not present, the condition is true. This logic applies to all condition operators
 * except ...IfExists and Null check."
 */
function keyMatches(operator: ParsedOperator, rawValues: ConditionScalar[], values: string[], context: ConditionContext, policyVariables: boolean): boolean {
  if (operator.base === "Null") {
    // "use either true (the key doesn't exist — it is null) or false (the key exists and its value is not null)".
    const wantAbsent = rawValues.some((p) => String(p).toLowerCase() === "true");
    return (values.length === 0) === wantAbsent;
  }
  const { base, set, ifExists } = operator;
  if (values.length === 0) {
    if (ifExists || set === "ForAllValues") return true;
    if (set === "ForAnyValue") return false;
    return base.negated;
  }
  const policyValues = rawValues.flatMap((raw) => policyValue(raw, base, context, policyVariables) ?? []);
  const matchesAny = (v: string) => policyValues.some((p) => base.matches(p, v));
  const satisfied = (v: string) => (base.negated ? !matchesAny(v) : matchesAny(v));
  if (set === "ForAllValues") return values.every(satisfied);
  if (set === "ForAnyValue") return values.some(satisfied);
  return base.negated ? values.every(satisfied) : values.some(satisfied);
}

/**
 * Every operator and every key must match (AND); the values listed for one key are
 * alternatives (OR). `policyVariables` is whether the policy's Version (2012-10-17) lets
 * `${...}` be variables: "If you don't include the Version element and set it to an
 * appropriate version date, variables like ${aws:username} are treated as literal strings".
 */
export function conditionsMatch(condition: ConditionBlock | undefined, context: ConditionContext, policyVariables = false): boolean {
  if (!condition) return true;
  return Object.entries(condition).every(([operatorName, entries]) => {
    const operator = parseOperator(operatorName);
    if (!operator) return false;
    return Object.entries(entries).every(([key, value]) =>
      keyMatches(operator, Array.isArray(value) ? value : [value], contextValues(context, key), context, policyVariables));
  });
}
