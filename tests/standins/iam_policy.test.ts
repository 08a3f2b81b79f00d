// Unit tests of the IAM policy rules the STS stand-in enforces (local/sts/iamPolicy.ts).
import { describe, expect, test } from "bun:test";
import {
  arnLike,
  conditionsMatch,
  evaluatePermission,
  evaluateSessionPermission,
  evaluateTrustPolicy,
  parsePolicyDocument,
  policyProblems,
  stringLike,
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
    expect(evaluateTrustPolicy(trust, request("a@x::f/aws_oidc/x::no_flow::demo"))).toEqual({ allowed: true, reason: 'allowed by trust policy statement "Windmill"' });
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
    for (const doc of [byRole, byAccount, notOther]) expect(evaluateTrustPolicy(doc, { action: "sts:AssumeRole", principal: caller, conditionContext: {} }).allowed).toBe(true);
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

  test("parsePolicyDocument tells bad JSON from bad grammar", () => {
    expect(parsePolicyDocument("{", "identity")).toEqual({ ok: false, problem: "The policy is not in the valid JSON format." });
    const bad = parsePolicyDocument('{"Statement":{"Effect":"Allow","Action":"s3:*"}}', "identity");
    expect(bad).toEqual({ ok: false, problem: "Syntax errors in policy: Statement[0]: needs exactly one of Resource or NotResource" });
    const good = parsePolicyDocument('{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}', "identity");
    expect(good.ok).toBe(true);
  });
});
