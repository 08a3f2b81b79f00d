// Unit tests of the IAM policy rules the STS stand-in enforces (local/sts/iamPolicy.ts).
import { describe, expect, test } from "bun:test";
import { setupDocuments } from "../../f/aws_oidc/lib/awsSetup.ts";
import { conditionsMatch, type ConditionBlock } from "../../local/sts/iamConditions.ts";
import { arnLike, stringLike } from "../../local/sts/iamPatterns.ts";
import {
  evaluatePermission,
  evaluateSessionPermission,
  evaluateTrustPolicy,
  parsePolicyDocument,
  policyProblems,
  type PolicyDocument,
  type TrustRequest,
} from "../../local/sts/iamPolicy.ts";

const PROVIDER = "127.0.0.1:8123/api/oidc/";
const PROVIDER_ARN = `arn:aws:iam::123456789012:oidc-provider/${PROVIDER}`;
const ROLE_ARN = "arn:aws:iam::123456789012:role/windmill-demo";

describe("stringLike", () => {
  const cases: [string, string, boolean][] = [
    ["*", "", true],
    ["*", "anything", true],
    ["abc", "abc", true],
    ["abc", "abcd", false],
    ["a?c", "abc", true],
    ["a?c", "ac", false],
    ["a*c", "ac", true],
    ["a*b*c", "aXbYbZc", true],
    ["a*b*c", "aXbYbZ", false],
    ["*::*::f/aws_oidc/x::demo", "alice@example.com::f/aws_oidc/x::f/aws_oidc/x::demo", true],
    ["*::*::*::demo", "alice@example.com::f/a::no_flow::prod", false],
    ["*.csv", "a.csv.gz", false],
    ["app_?ser", "app_usser", false],
    // A `*` in the value is an ordinary character.
    ["a*", "a*", true],
    ["a?", "a*", true],
    ["ab", "a*", false],
  ];
  for (const [pattern, value, expected] of cases) {
    test(`${JSON.stringify(pattern)} ${expected ? "matches" : "does not match"} ${JSON.stringify(value)}`, () => {
      expect(stringLike(pattern, value)).toBe(expected);
    });
  }

  test("is case-sensitive unless asked otherwise", () => {
    expect(stringLike("s3:Get*", "S3:getobject")).toBe(false);
    expect(stringLike("s3:Get*", "S3:getobject", true)).toBe(true);
  });
});

describe("arnLike", () => {
  test("matches each ARN part on its own", () => {
    expect(arnLike("arn:aws:iam::*:role/windmill-*", ROLE_ARN)).toBe(true);
    expect(arnLike("arn:aws:iam::*:role/other", ROLE_ARN)).toBe(false);
    // The resource part keeps its colons: `dbuser:db-ABC/app` is one part.
    expect(arnLike("arn:aws:rds-db:us-east-1:123456789012:dbuser:*/app", "arn:aws:rds-db:us-east-1:123456789012:dbuser:db-ABC/app")).toBe(true);
    // `*` in the account part cannot swallow the region's colon.
    expect(arnLike("arn:aws:s3:*:bucket", "arn:aws:s3:::bucket")).toBe(false);
  });
});

describe("conditionsMatch", () => {
  const context = { [`${PROVIDER}:aud`]: "sts.amazonaws.com", [`${PROVIDER}:sub`]: "alice@example.com::f/aws_oidc/x::no_flow::demo", groups: ["ops", "dev"] };

  test("values of one key are alternatives; keys and operators must all match", () => {
    expect(conditionsMatch({ StringEquals: { [`${PROVIDER}:aud`]: ["other", "sts.amazonaws.com"] } }, context)).toBe(true);
    expect(conditionsMatch({
      StringEquals: { [`${PROVIDER}:aud`]: "sts.amazonaws.com" },
      StringLike: { [`${PROVIDER}:sub`]: "*::f/etl/*::*::demo" },
    }, context)).toBe(false);
  });

  test("condition key names are case-insensitive, values are not", () => {
    expect(conditionsMatch({ StringEquals: { [`${PROVIDER.toUpperCase()}:AUD`]: "sts.amazonaws.com" } }, context)).toBe(true);
    expect(conditionsMatch({ StringEquals: { [`${PROVIDER}:aud`]: "STS.amazonaws.com" } }, context)).toBe(false);
    expect(conditionsMatch({ StringEqualsIgnoreCase: { [`${PROVIDER}:aud`]: "STS.amazonaws.com" } }, context)).toBe(true);
  });

  test("a missing key fails positive operators and satisfies negated ones", () => {
    expect(conditionsMatch({ StringEquals: { "sts:ExternalId": "ext-42" } }, context)).toBe(false);
    expect(conditionsMatch({ StringLike: { "sts:ExternalId": "*" } }, context)).toBe(false);
    expect(conditionsMatch({ StringNotEquals: { "sts:ExternalId": "ext-42" } }, context)).toBe(true);
    expect(conditionsMatch({ StringEqualsIfExists: { "sts:ExternalId": "ext-42" } }, context)).toBe(true);
    expect(conditionsMatch({ Null: { "sts:ExternalId": "true" } }, context)).toBe(true);
    expect(conditionsMatch({ Null: { [`${PROVIDER}:sub`]: "true" } }, context)).toBe(false);
  });

  test("negated operators refuse any listed value", () => {
    expect(conditionsMatch({ StringNotLike: { [`${PROVIDER}:sub`]: ["*::u/*", "*::f/aws_oidc/*"] } }, context)).toBe(false);
    expect(conditionsMatch({ StringNotEquals: { [`${PROVIDER}:aud`]: "other" } }, context)).toBe(true);
  });

  test("ForAnyValue and ForAllValues over multi-valued keys", () => {
    expect(conditionsMatch({ "ForAnyValue:StringEquals": { groups: ["ops", "admin"] } }, context)).toBe(true);
    expect(conditionsMatch({ "ForAllValues:StringEquals": { groups: ["ops", "admin"] } }, context)).toBe(false);
    expect(conditionsMatch({ "ForAllValues:StringLike": { groups: ["*"] } }, context)).toBe(true);
    // ForAllValues is vacuously true for a missing key; ForAnyValue is false.
    expect(conditionsMatch({ "ForAllValues:StringEquals": { missing: "x" } }, context)).toBe(true);
    expect(conditionsMatch({ "ForAnyValue:StringEquals": { missing: "x" } }, context)).toBe(false);
    expect(conditionsMatch({ "ForAnyValue:StringNotEquals": { groups: "ops" } }, context)).toBe(true);
  });

  test("Bool compares booleans written either way", () => {
    expect(conditionsMatch({ Bool: { "aws:SecureTransport": true } }, { "aws:SecureTransport": "true" })).toBe(true);
    expect(conditionsMatch({ Bool: { "aws:SecureTransport": "false" } }, { "aws:SecureTransport": "true" })).toBe(false);
  });
});

// IAM User Guide, "IAM JSON policy elements: Condition operators": one test per family.
describe("condition operators", () => {
  const match = (condition: ConditionBlock, context: Record<string, string | string[]>) => conditionsMatch(condition, context);

  test("Numeric*: integers and decimals, the request's value compared to the policy's", () => {
    expect(match({ NumericLessThanEquals: { "s3:max-keys": "10" } }, { "s3:max-keys": "10" })).toBe(true);
    expect(match({ NumericLessThanEquals: { "s3:max-keys": "10" } }, { "s3:max-keys": "11" })).toBe(false);
    expect(match({ NumericLessThan: { "s3:max-keys": 10 } }, { "s3:max-keys": "9.5" })).toBe(true);
    expect(match({ NumericGreaterThan: { "s3:max-keys": "10" } }, { "s3:max-keys": "10" })).toBe(false);
    expect(match({ NumericGreaterThanEquals: { "s3:max-keys": "10" } }, { "s3:max-keys": "10" })).toBe(true);
    expect(match({ NumericEquals: { "s3:max-keys": "10" } }, { "s3:max-keys": "10.0" })).toBe(true);
    expect(match({ NumericNotEquals: { "s3:max-keys": ["10", "20"] } }, { "s3:max-keys": "20" })).toBe(false);
    expect(match({ NumericNotEquals: { "s3:max-keys": ["10", "20"] } }, { "s3:max-keys": "30" })).toBe(true);
    // What is no number never compares.
    expect(match({ NumericLessThan: { "s3:max-keys": "10" } }, { "s3:max-keys": "0x1" })).toBe(false);
  });

  test("Date*: W3C ISO 8601 or epoch seconds, on either side", () => {
    const issued = { "aws:TokenIssueTime": "2024-05-01T12:00:00Z", "aws:EpochTime": "1714564800" };
    expect(match({ DateGreaterThan: { "aws:TokenIssueTime": "2020-01-01T00:00:01Z" } }, issued)).toBe(true);
    expect(match({ DateLessThan: { "aws:TokenIssueTime": "2020-01-01" } }, issued)).toBe(false);
    expect(match({ DateEquals: { "aws:TokenIssueTime": "2024-05-01T14:00:00+02:00" } }, issued)).toBe(true);
    expect(match({ DateEquals: { "aws:TokenIssueTime": "1714564800" } }, issued)).toBe(true);
    expect(match({ DateEquals: { "aws:EpochTime": "2024-05-01T12:00:00Z" } }, issued)).toBe(true);
    expect(match({ DateNotEquals: { "aws:EpochTime": "2024-05-01T12:00:00Z" } }, issued)).toBe(false);
    expect(match({ DateLessThanEquals: { "aws:EpochTime": 1714564800 } }, issued)).toBe(true);
    expect(match({ DateGreaterThanEquals: { "aws:TokenIssueTime": "2024-05" } }, issued)).toBe(true);
    expect(match({ DateGreaterThan: { "aws:TokenIssueTime": "not a date" } }, issued)).toBe(false);
  });

  test("Bool: true or false, in any case", () => {
    expect(match({ Bool: { "aws:SecureTransport": true } }, { "aws:SecureTransport": "true" })).toBe(true);
    expect(match({ Bool: { "aws:SecureTransport": "FALSE" } }, { "aws:SecureTransport": "false" })).toBe(true);
    expect(match({ Bool: { "aws:SecureTransport": "false" } }, { "aws:SecureTransport": "true" })).toBe(false);
  });

  test("BinaryEquals compares the bytes of base-64 values", () => {
    const value = Buffer.from("BinaryValueInBase64").toString("base64");
    expect(match({ BinaryEquals: { "x:blob": "QmluYXJ5VmFsdWVJbkJhc2U2NA==" } }, { "x:blob": value })).toBe(true);
    expect(match({ BinaryEquals: { "x:blob": Buffer.from("other").toString("base64") } }, { "x:blob": value })).toBe(false);
  });

  test("IpAddress and NotIpAddress: IPv4 and IPv6 CIDR, a bare address is one address", () => {
    const loopback = { "aws:SourceIp": "127.0.0.1" };
    expect(match({ IpAddress: { "aws:SourceIp": "127.0.0.0/8" } }, loopback)).toBe(true);
    expect(match({ IpAddress: { "aws:SourceIp": "127.0.0.1" } }, loopback)).toBe(true);
    expect(match({ IpAddress: { "aws:SourceIp": ["203.0.113.0/24", "2001:DB8:1234:5678::/64"] } }, loopback)).toBe(false);
    expect(match({ IpAddress: { "aws:SourceIp": "2001:DB8:1234:5678::/64" } }, { "aws:SourceIp": "2001:db8:1234:5678::42" })).toBe(true);
    expect(match({ IpAddress: { "aws:SourceIp": "::1" } }, { "aws:SourceIp": "::1" })).toBe(true);
    expect(match({ NotIpAddress: { "aws:SourceIp": "203.0.113.0/24" } }, loopback)).toBe(true);
    expect(match({ NotIpAddress: { "aws:SourceIp": "127.0.0.0/8" } }, loopback)).toBe(false);
    expect(match({ IpAddress: { "aws:SourceIp": "127.0.0.0/33" } }, loopback)).toBe(false);
  });

  test("ArnEquals and ArnLike behave identically, part by part; ArnNotEquals and ArnNotLike too", () => {
    const source = { "aws:SourceArn": "arn:aws:sns:us-east-1:123456789012:topic-a" };
    for (const op of ["ArnEquals", "ArnLike"]) {
      expect(match({ [op]: { "aws:SourceArn": "arn:aws:sns:*:123456789012:topic-?" } }, source)).toBe(true);
      expect(match({ [op]: { "aws:SourceArn": "arn:aws:sns:*:999999999999:*" } }, source)).toBe(false);
    }
    for (const op of ["ArnNotEquals", "ArnNotLike"]) {
      expect(match({ [op]: { "aws:SourceArn": "arn:aws:sns:*:123456789012:*" } }, source)).toBe(false);
      expect(match({ [op]: { "aws:SourceArn": "arn:aws:sqs:*:*:*" } }, source)).toBe(true);
    }
  });

  test("ForAllValues: and ForAnyValue: qualify any operator", () => {
    const ips = { "x:addresses": ["10.0.0.1", "10.0.0.2"] };
    expect(match({ "ForAllValues:IpAddress": { "x:addresses": "10.0.0.0/8" } }, ips)).toBe(true);
    expect(match({ "ForAllValues:IpAddress": { "x:addresses": "10.0.0.1" } }, ips)).toBe(false);
    expect(match({ "ForAnyValue:IpAddress": { "x:addresses": "10.0.0.1" } }, ips)).toBe(true);
    expect(match({ "ForAnyValue:NumericGreaterThan": { "x:sizes": "5" } }, { "x:sizes": ["1", "9"] })).toBe(true);
  });

  test("the grammar accepts every operator, with IfExists (but Null) and the set qualifiers", () => {
    const names = [
      "StringEquals", "StringNotEquals", "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase", "StringLike", "StringNotLike",
      "NumericEquals", "NumericNotEquals", "NumericLessThan", "NumericLessThanEquals", "NumericGreaterThan", "NumericGreaterThanEquals",
      "DateEquals", "DateNotEquals", "DateLessThan", "DateLessThanEquals", "DateGreaterThan", "DateGreaterThanEquals",
      "Bool", "BinaryEquals", "IpAddress", "NotIpAddress", "ArnEquals", "ArnLike", "ArnNotEquals", "ArnNotLike",
    ];
    const withCondition = (operator: string) => ({ Statement: [{ Effect: "Allow", Action: "s3:*", Resource: "*", Condition: { [operator]: { "aws:SourceIp": "127.0.0.1" } } }] });
    for (const name of names) {
      for (const operator of [name, `${name}IfExists`, `ForAnyValue:${name}`, `ForAllValues:${name}IfExists`]) {
        expect(policyProblems(withCondition(operator), "identity")).toEqual([]);
      }
    }
    expect(policyProblems(withCondition("Null"), "identity")).toEqual([]);
    expect(policyProblems(withCondition("NullIfExists"), "identity")).toEqual(["Statement[0]: condition operator NullIfExists is not supported"]);
    expect(policyProblems(withCondition("NumericSortOf"), "identity")).toEqual(["Statement[0]: condition operator NumericSortOf is not supported"]);
  });
});

// "If the key that you specify in a policy condition is not present in the request context, the values do not match
// and the condition is false. If the policy condition requires that the key is not matched, such as StringNotLike or
// ArnNotLike, and the right key is not present, the condition is true. This logic applies to all condition operators
// except ...IfExists and Null check." (IAM User Guide, "IAM JSON policy elements: Condition operators")
describe("a condition key the request lacks", () => {
  const OBJECT = "arn:aws:s3:::data/a";
  const positive: ConditionBlock[] = [
    { StringEquals: { "aws:PrincipalTag/team": "ops" } },
    { NumericLessThan: { "s3:max-keys": "10" } },
    { DateGreaterThan: { "aws:TokenIssueTime": "2020-01-01T00:00:00Z" } },
    { Bool: { "aws:MultiFactorAuthPresent": "true" } },
    { BinaryEquals: { "x:blob": "QQ==" } },
    { IpAddress: { "aws:SourceIp": "127.0.0.0/8" } },
    { ArnLike: { "aws:SourceArn": "arn:aws:sns:*:*:*" } },
  ];
  const ifExists = (condition: ConditionBlock): ConditionBlock =>
    Object.fromEntries(Object.entries(condition).map(([operator, entries]) => [`${operator}IfExists`, entries]));
  const allowWhen = (Condition: ConditionBlock): PolicyDocument[] => [{ Version: "2012-10-17", Statement: { Effect: "Allow", Action: "s3:GetObject", Resource: "*", Condition } }];
  const denyWhen = (Condition: ConditionBlock): PolicyDocument[] => [{
    Version: "2012-10-17",
    Statement: [{ Effect: "Allow", Action: "s3:GetObject", Resource: "*" }, { Effect: "Deny", Action: "s3:GetObject", Resource: "*", Condition }],
  }];
  const allowed = (docs: PolicyDocument[]) => evaluatePermission(docs, { action: "s3:GetObject", resource: OBJECT, conditionContext: {} }).allowed;

  for (const condition of positive) {
    const operator = Object.keys(condition)[0];
    test(`${operator}: an Allow with it does not apply, nor does a Deny; with IfExists both apply`, () => {
      expect(allowed(allowWhen(condition))).toBe(false);
      expect(allowed(denyWhen(condition))).toBe(true);
      expect(allowed(allowWhen(ifExists(condition)))).toBe(true);
      expect(allowed(denyWhen(ifExists(condition)))).toBe(false);
    });
  }

  test("negated operators match an absent key, so a Deny with one applies", () => {
    for (const condition of [
      { StringNotEquals: { "aws:PrincipalTag/team": "ops" } },
      { NumericNotEquals: { "s3:max-keys": "10" } },
      { DateNotEquals: { "aws:TokenIssueTime": "2020-01-01" } },
      { NotIpAddress: { "aws:SourceIp": "127.0.0.0/8" } },
      { ArnNotLike: { "aws:SourceArn": "arn:aws:sns:*:*:*" } },
    ] as ConditionBlock[]) {
      expect(allowed(denyWhen(condition))).toBe(false);
      expect(allowed(allowWhen(condition))).toBe(true);
    }
  });

  test("Null tests presence: true for an absent key, false for a present one", () => {
    expect(allowed(allowWhen({ Null: { "aws:TokenIssueTime": "true" } }))).toBe(true);
    expect(allowed(allowWhen({ Null: { "aws:TokenIssueTime": "false" } }))).toBe(false);
    expect(evaluatePermission(allowWhen({ Null: { "aws:TokenIssueTime": "false" } }), {
      action: "s3:GetObject", resource: OBJECT, conditionContext: { "aws:TokenIssueTime": "2024-05-01T12:00:00Z" },
    }).allowed).toBe(true);
  });
});

// IAM User Guide, "IAM policy elements: Variables and tags".
describe("policy variables", () => {
  const USER_ID = "AROAEXAMPLEROLEID:wm-job";
  const context = { "aws:userid": USER_ID, "aws:PrincipalType": "AssumedRole", "aws:PrincipalTag/team": "ops" };
  const docs = (statement: Record<string, unknown>, version: string | null = "2012-10-17"): PolicyDocument[] =>
    [{ ...(version ? { Version: version } : {}), Statement: { Effect: "Allow", Action: "s3:*", ...statement } } as PolicyDocument];
  const may = (policies: PolicyDocument[], resource: string, extra: Record<string, string> = {}) =>
    evaluatePermission(policies, { action: "s3:GetObject", resource, conditionContext: { ...context, ...extra } }).allowed;

  test("a variable in Resource is the request's value, taken literally", () => {
    const home = docs({ Resource: "arn:aws:s3:::data/home/${aws:userid}/*" });
    expect(may(home, `arn:aws:s3:::data/home/${USER_ID}/notes.txt`)).toBe(true);
    expect(may(home, "arn:aws:s3:::data/home/AROAOTHER:wm-job/notes.txt")).toBe(false);
    expect(may(docs({ Resource: "arn:aws:s3:::team-${aws:PrincipalTag/team}" }), "arn:aws:s3:::team-ops")).toBe(true);
    // The key name is case-insensitive.
    expect(may(docs({ Resource: "arn:aws:s3:::team-${AWS:principaltag/TEAM}" }), "arn:aws:s3:::team-ops")).toBe(true);
  });

  test("a variable whose key is absent matches no resource (Resource and NotResource)", () => {
    // A role session has no aws:username: "Assumed role: (not present)".
    const byUserName = docs({ Resource: "arn:aws:s3:::data/home/${aws:username}/*" });
    expect(may(byUserName, "arn:aws:s3:::data/home//x")).toBe(false);
    expect(may(byUserName, "arn:aws:s3:::data/home/${aws:username}/x")).toBe(false);
    // In NotResource the entry excludes nothing.
    expect(may(docs({ NotResource: "arn:aws:s3:::data/home/${aws:username}/*" }), "arn:aws:s3:::data/home/alice/x")).toBe(true);
    // A multivalued key cannot be a variable.
    expect(may(docs({ Resource: "arn:aws:s3:::team-${x:teams}" }), "arn:aws:s3:::team-ops", { "x:teams": "ops" })).toBe(true);
    expect(evaluatePermission(docs({ Resource: "arn:aws:s3:::team-${x:teams}" }), {
      action: "s3:GetObject", resource: "arn:aws:s3:::team-ops", conditionContext: { "x:teams": ["ops", "dev"] },
    }).allowed).toBe(false);
  });

  test("a default stands in for an absent key", () => {
    const bucket = docs({ Resource: "arn:aws:s3:::team-${aws:PrincipalTag/dept, 'company-wide'}" });
    expect(may(bucket, "arn:aws:s3:::team-company-wide")).toBe(true);
    expect(may(bucket, "arn:aws:s3:::team-company-wide", { "aws:PrincipalTag/dept": "hr" })).toBe(false);
    expect(may(bucket, "arn:aws:s3:::team-hr", { "aws:PrincipalTag/dept": "hr" })).toBe(true);
  });

  test("${*}, ${?} and ${$} are those characters, not wildcards", () => {
    const star = docs({ Resource: "arn:aws:s3:::data/${*}${?}${$}" });
    expect(may(star, "arn:aws:s3:::data/*?$")).toBe(true);
    expect(may(star, "arn:aws:s3:::data/abc")).toBe(false);
  });

  test("in conditions: string and ARN operators substitute; an absent variable fails them and satisfies their negations", () => {
    const owner = { "s3:ExistingObjectTag/owner": USER_ID };
    expect(may(docs({ Resource: "*", Condition: { StringEquals: { "s3:ExistingObjectTag/owner": "${aws:userid}" } } }), "arn:aws:s3:::data/a", owner)).toBe(true);
    expect(may(docs({ Resource: "*", Condition: { StringLike: { "s3:ExistingObjectTag/owner": "*:${aws:userid}" } } }), "arn:aws:s3:::data/a", owner)).toBe(false);
    expect(may(docs({ Resource: "*", Condition: { StringEquals: { "s3:ExistingObjectTag/owner": "${aws:username}" } } }), "arn:aws:s3:::data/a", owner)).toBe(false);
    // IAM's own example: "Access is explicitly denied when aws:principaltag/Team is not set."
    const denyOtherTeams: PolicyDocument[] = [{
      Version: "2012-10-17",
      Statement: [
        { Effect: "Allow", Action: "s3:GetObject", Resource: "*" },
        { Effect: "Deny", Action: "s3:GetObject", Resource: "*", Condition: { StringNotEquals: { "s3:ExistingObjectTag/Team": "${aws:PrincipalTag/Team}" } } },
      ],
    }];
    const read = (ctx: Record<string, string>) => evaluatePermission(denyOtherTeams, { action: "s3:GetObject", resource: "arn:aws:s3:::data/a", conditionContext: ctx }).allowed;
    expect(read({ "s3:ExistingObjectTag/Team": "ops", "aws:PrincipalTag/Team": "ops" })).toBe(true);
    expect(read({ "s3:ExistingObjectTag/Team": "ops", "aws:PrincipalTag/Team": "dev" })).toBe(false);
    expect(read({ "s3:ExistingObjectTag/Team": "ops" })).toBe(false);
    // Numeric (and Date, IP, Binary, Null) values never substitute.
    expect(may(docs({ Resource: "*", Condition: { NumericEquals: { "s3:max-keys": "${x:limit}" } } }), "arn:aws:s3:::data/a", { "s3:max-keys": "5", "x:limit": "5" })).toBe(false);
  });

  test("only the 2012-10-17 language has variables; otherwise ${...} is literal text", () => {
    for (const version of ["2008-10-17", null]) {
      const literal = docs({ Resource: "arn:aws:s3:::data/${aws:userid}" }, version);
      expect(may(literal, `arn:aws:s3:::data/${USER_ID}`)).toBe(false);
      expect(may(literal, "arn:aws:s3:::data/${aws:userid}")).toBe(true);
    }
  });
});

describe("evaluateTrustPolicy", () => {
  const trust: PolicyDocument = {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "Windmill",
        Effect: "Allow",
        Action: ["sts:AssumeRoleWithWebIdentity", "sts:TagSession"],
        Principal: { Federated: [PROVIDER_ARN] },
        Condition: { StringEquals: { [`${PROVIDER}:aud`]: "sts.amazonaws.com" }, StringLike: { [`${PROVIDER}:sub`]: "*::*::*::demo" } },
      },
      { Sid: "NoScratch", Effect: "Deny", Action: "sts:*", Principal: "*", Condition: { StringLike: { [`${PROVIDER}:sub`]: "*::u/*" } } },
    ],
  };
  const request = (sub: string, overrides: Partial<TrustRequest> = {}): TrustRequest => ({
    action: "sts:AssumeRoleWithWebIdentity",
    principal: { type: "Federated", ids: [PROVIDER_ARN] },
    conditionContext: { [`${PROVIDER}:aud`]: "sts.amazonaws.com", [`${PROVIDER}:sub`]: sub },
    ...overrides,
  });

  test("allows the federated principal whose claims match", () => {
    expect(evaluateTrustPolicy(trust, request("a@x::f/aws_oidc/x::no_flow::demo"))).toMatchObject({ allowed: true, reason: 'allowed by trust policy statement "Windmill"' });
  });

  test("refuses other claims, other principals and other actions", () => {
    expect(evaluateTrustPolicy(trust, request("a@x::f/aws_oidc/x::no_flow::prod")).allowed).toBe(false);
    expect(evaluateTrustPolicy(trust, request("a@x::f/x::no_flow::demo", { principal: { type: "Federated", ids: ["arn:aws:iam::123456789012:oidc-provider/evil/"] } })).allowed).toBe(false);
    expect(evaluateTrustPolicy(trust, request("a@x::f/x::no_flow::demo", { principal: { type: "AWS", ids: [PROVIDER_ARN] } })).allowed).toBe(false);
    expect(evaluateTrustPolicy(trust, request("a@x::f/x::no_flow::demo", { action: "sts:AssumeRole" })).allowed).toBe(false);
  });

  test("actions match case-insensitively", () => {
    expect(evaluateTrustPolicy(trust, request("a@x::f/x::no_flow::demo", { action: "STS:assumerolewithwebidentity" })).allowed).toBe(true);
  });

  test("an explicit Deny beats a matching Allow", () => {
    expect(evaluateTrustPolicy(trust, request("a@x::u/alice/s::no_flow::demo"))).toEqual({ allowed: false, reason: 'explicitly denied by trust policy statement "NoScratch"' });
  });

  test("AWS principals: a role ARN, the account root, NotPrincipal", () => {
    const caller = { type: "AWS" as const, ids: [ROLE_ARN, "arn:aws:iam::123456789012:root", "123456789012"] };
    const byRole: PolicyDocument = { Statement: { Effect: "Allow", Action: "sts:AssumeRole", Principal: { AWS: ROLE_ARN } } };
    const byAccount: PolicyDocument = { Statement: { Effect: "Allow", Action: "sts:AssumeRole", Principal: { AWS: "123456789012" } } };
    const notOther: PolicyDocument = { Statement: { Effect: "Allow", Action: "sts:AssumeRole", NotPrincipal: { AWS: "arn:aws:iam::123456789012:role/other" } } };
    const onlyOther: PolicyDocument = { Statement: { Effect: "Allow", Action: "sts:AssumeRole", Principal: { AWS: ["arn:aws:iam::123456789012:role/other"] } } };
    // namedIds: which of the caller's names the allowing statement lists (a role chain needs the caller's own grant unless it is the role or session).
    const named = (doc: PolicyDocument) => evaluateTrustPolicy(doc, { action: "sts:AssumeRole", principal: caller, conditionContext: {} });
    expect([byRole, byAccount, notOther].map(named)).toMatchObject([
      { allowed: true, namedIds: [ROLE_ARN] }, { allowed: true, namedIds: ["123456789012"] }, { allowed: true, namedIds: [] },
    ]);
    expect(evaluateTrustPolicy(onlyOther, { action: "sts:AssumeRole", principal: caller, conditionContext: {} }).allowed).toBe(false);
  });
});

describe("evaluatePermission and evaluateSessionPermission", () => {
  const role: PolicyDocument[] = [{
    Version: "2012-10-17",
    Statement: [
      { Effect: "Allow", Action: "s3:*", NotResource: "arn:aws:s3:::audit/*" },
      { Effect: "Deny", Action: "s3:DeleteObject", Resource: "*" },
      { Effect: "Allow", Action: "s3:GetObject", Resource: "*", Condition: { StringEquals: { "s3:ExistingObjectTag/public": "yes" } } },
    ],
  }];

  test("NotResource, case-insensitive actions, implicit deny", () => {
    expect(evaluatePermission(role, { action: "s3:PutObject", resource: "arn:aws:s3:::data/a" }).allowed).toBe(true);
    expect(evaluatePermission(role, { action: "S3:PUTOBJECT", resource: "arn:aws:s3:::data/a" }).allowed).toBe(true);
    expect(evaluatePermission(role, { action: "s3:PutObject", resource: "arn:aws:s3:::audit/a" })).toEqual({
      allowed: false,
      reason: "implicitly denied: no permission policy allows s3:PutObject on arn:aws:s3:::audit/a",
    });
  });

  test("conditions on permission statements read the request context", () => {
    expect(evaluatePermission(role, { action: "s3:GetObject", resource: "arn:aws:s3:::audit/a" }).allowed).toBe(false);
    expect(evaluatePermission(role, { action: "s3:GetObject", resource: "arn:aws:s3:::audit/a", conditionContext: { "s3:ExistingObjectTag/public": "yes" } }).allowed).toBe(true);
  });

  test("Deny wins across statements", () => {
    expect(evaluatePermission(role, { action: "s3:DeleteObject", resource: "arn:aws:s3:::data/a" })).toEqual({ allowed: false, reason: "explicitly denied by permission policy statement 1" });
  });

  test("a session policy can only narrow the role", () => {
    const session: PolicyDocument[] = [{ Statement: [{ Effect: "Allow", Action: ["s3:GetObject", "s3:DeleteObject", "ec2:*"], Resource: "*" }] }];
    const may = (action: string, resource = "arn:aws:s3:::data/a") => evaluateSessionPermission({ rolePolicies: role, sessionPolicies: session }, { action, resource }).allowed;
    expect(may("s3:GetObject")).toBe(true);
    expect(may("s3:PutObject")).toBe(false); // the role allows it, the session policy does not
    expect(may("ec2:RunInstances", "*")).toBe(false); // the session policy allows it, the role does not
    expect(may("s3:DeleteObject")).toBe(false); // the role's Deny holds
    expect(evaluateSessionPermission({ rolePolicies: role }, { action: "s3:PutObject", resource: "arn:aws:s3:::data/a" }).allowed).toBe(true);
    const denyInSession: PolicyDocument[] = [...session, { Statement: { Effect: "Deny", Action: "s3:GetObject", Resource: "arn:aws:s3:::data/secret" } }];
    expect(evaluateSessionPermission({ rolePolicies: role, sessionPolicies: denyInSession }, { action: "s3:GetObject", resource: "arn:aws:s3:::data/secret" }))
      .toEqual({ allowed: false, reason: "explicitly denied by session policy 1 statement 0" });
  });
});

describe("policy grammar", () => {
  test("accepts well-formed identity and trust policies", () => {
    expect(policyProblems({ Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "s3:GetObject", Resource: "*" }] }, "identity")).toEqual([]);
    expect(policyProblems({ Statement: { Effect: "Deny", NotAction: ["iam:*"], NotResource: "arn:aws:s3:::x" } }, "identity")).toEqual([]);
    expect(policyProblems({ Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "sts:AssumeRole", Principal: { AWS: ROLE_ARN }, Condition: { StringEquals: { "sts:ExternalId": "x" } } }] }, "trust")).toEqual([]);
  });

  test("names what is wrong", () => {
    const problems = (doc: unknown, kind: "identity" | "trust" = "identity") => policyProblems(doc, kind).join(" | ");
    expect(problems([])).toBe("the policy must be a JSON object");
    expect(problems({ Version: "2020-01-01", Statement: [] })).toBe('Version must be "2012-10-17" or "2008-10-17", not "2020-01-01" | Statement is missing or empty');
    expect(problems({ Statement: [{ Effect: "allow", Action: "s3:*", Resource: "*" }] })).toContain('Effect must be "Allow" or "Deny", not "allow"');
    expect(problems({ Statement: [{ Effect: "Allow", Action: "s3:*", NotAction: "s3:Get*", Resource: "*" }] })).toContain("needs exactly one of Action or NotAction");
    expect(problems({ Statement: [{ Effect: "Allow", Action: "GetObject", Resource: "*" }] })).toContain('action "GetObject" is not of the form service:Action');
    expect(problems({ Statement: [{ Effect: "Allow", Action: [], Resource: "*" }] })).toContain("Action must be a non-empty string or list of strings");
    expect(problems({ Statement: [{ Effect: "Allow", Action: "s3:*", Resource: "*", Principal: "*" }] })).toContain("Policy document should not specify a principal.");
    expect(problems({ Statement: [{ Effect: "Allow", Action: "s3:*", Resource: "*", Condition: { StringSortOf: { a: "b" } } }] })).toContain("condition operator StringSortOf is not supported");
    expect(problems({ Statement: [{ Effect: "Allow", Action: "s3:*", Resource: "*", Extra: 1 }] })).toContain("unknown field Extra");
    expect(problems({ Statement: [{ Effect: "Allow", Action: "sts:AssumeRole", Resource: "*", Principal: { AWS: ROLE_ARN } }] }, "trust")).toContain("Has prohibited field Resource.");
    expect(problems({ Statement: [{ Effect: "Allow", Action: "sts:AssumeRole" }] }, "trust")).toContain("needs exactly one of Principal or NotPrincipal");
    expect(problems({ Statement: [{ Effect: "Allow", Action: "sts:AssumeRole", Principal: { Robot: "x" } }] }, "trust")).toContain("unknown principal type Robot");
  });

  test("the bundle's setup generator writes documents this grammar accepts", () => {
    const docs = setupDocuments({
      accountId: "123456789012", baseUrl: "https://windmill.example.com", workspace: "prod",
      scripts: ["f/aws_oidc/whoami"], flows: ["f/aws_oidc/s3_csv_to_rds"], emails: ["ops@example.com"], audience: "sts.amazonaws.com",
      roleName: "", maxSessionDuration: 3600,
      s3: { bucket: "data-lake", prefix: "incoming/", write: true },
      rds: { region: "us-east-1", dbiResourceId: "db-ABCDEFGHIJKL", dbUser: "app_user" },
    });
    expect(policyProblems(docs.trust_policy, "trust")).toEqual([]);
    expect(policyProblems(docs.permission_policy, "identity")).toEqual([]);
  });

  test("parsePolicyDocument tells bad JSON from bad grammar", () => {
    expect(parsePolicyDocument("{", "identity")).toEqual({ ok: false, problem: "The policy is not in the valid JSON format." });
    const bad = parsePolicyDocument('{"Statement":{"Effect":"Allow","Action":"s3:*"}}', "identity");
    expect(bad).toEqual({ ok: false, problem: "Syntax errors in policy: Statement[0]: needs exactly one of Resource or NotResource" });
    const good = parsePolicyDocument('{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}', "identity");
    expect(good.ok).toBe(true);
  });
});
