// Pure input checks: each bad value is refused with an error naming the input and the fix.
import { describe, expect, test } from "bun:test";
import { checkAssumeRoleInput, type AssumeRoleInput } from "../../f/aws_oidc/lib/assumeRoleAndSave.ts";
import { defaultSessionName, formatSeconds, InputError, parseDuration, parseRoleArn } from "../../f/aws_oidc/lib/validate.ts";

const GOOD: AssumeRoleInput = { roleArn: "arn:aws:iam::123456789012:role/windmill-demo", region: "us-east-1", saveTo: "f/aws_oidc/aws_credentials" };

describe("role ARNs of every partition", () => {
  for (const arn of [
    "arn:aws:iam::123456789012:role/windmill",
    "arn:aws-cn:iam::123456789012:role/service-role/my.role@x",
    "arn:aws-us-gov:iam::123456789012:role/a/b/c/deep_role",
    "arn:aws-iso-b:iam::123456789012:role/r+=,.@-",
    "arn:aws-eusc:iam::123456789012:role/r",
  ]) {
    test(arn, () => expect(parseRoleArn("role_arn", arn).accountId).toBe("123456789012"));
  }
});

describe("durations", () => {
  test.each([
    [3600, 3600], ["3600", 3600], ["1h30m", 5400], ["15m", 900], ["12h", 43200], ["1h0m30s", 3630],
  ])("%p is %p seconds", (input, seconds) => expect(parseDuration("duration", input)).toBe(seconds));
  test("formats seconds back the way people write them", () => {
    expect(formatSeconds(5400)).toBe("1h30m");
    expect(formatSeconds(0)).toBe("0s");
  });
});

describe("default session name", () => {
  test("carries the script path and job id, sanitised", () => {
    expect(defaultSessionName("f/aws_oidc/assume_role", "0193a2b4-5c6d-7e8f")).toBe("wm-f.aws_oidc.assume_role-0193a2b45c6d");
  });
  test("stays within 64 chars and keeps the job id", () => {
    const name = defaultSessionName(`u/alice/${"x".repeat(100)}`, "abcdef123456");
    expect(name.length).toBeLessThanOrEqual(64);
    expect(name.endsWith("-abcdef123456")).toBe(true);
    expect(/^[\w+=,.@-]{2,64}$/.test(name)).toBe(true);
  });
  test("replaces characters STS refuses", () => {
    expect(defaultSessionName("f/a b/ü", "1")).toMatch(/^[\w+=,.@-]+$/);
  });
});

const BAD: [string, Partial<AssumeRoleInput>, string, RegExp][] = [
  ["no role", { roleArn: "" }, "role_arn", /Pick an aws_oidc resource/],
  ["ARN of a user", { roleArn: "arn:aws:iam::123456789012:user/bob" }, "role_arn", /not an IAM role ARN/],
  ["short account", { roleArn: "arn:aws:iam::12345:role/x" }, "role_arn", /not an IAM role ARN/],
  ["unknown partition", { roleArn: "arn:azure:iam::123456789012:role/x" }, "role_arn", /not an IAM role ARN/],
  ["role from resource", { roleArn: "", awsOidc: { roleArn: "nope", region: "us-east-1" } }, "aws_oidc.roleArn", /not an IAM role ARN/],
  ["conflicting roles", { awsOidc: { roleArn: "arn:aws:iam::123456789012:role/other", region: "us-east-1" } }, "role_arn", /differs/],
  ["bad region", { region: "us_east_1" }, "region", /not an AWS region/],
  ["empty region", { region: "" }, "region", /not an AWS region/],
  ["region missing from the resource", { roleArn: "", region: "", awsOidc: { roleArn: "arn:aws:iam::123456789012:role/x", region: "" } }, "aws_oidc.region", /not an AWS region/],
  ["session name too short", { sessionName: "a" }, "session_name", /2 to 64 characters/],
  ["session name with space", { sessionName: "my session" }, "session_name", /2 to 64/],
  ["session name too long", { sessionName: "x".repeat(65) }, "session_name", /2 to 64/],
  ["duration words", { duration: "two hours" }, "duration", /not a duration/],
  ["duration too short", { duration: 899 }, "duration", /out of range\.\nFix: Use a duration between 15m and 12h/],
  ["duration too long", { duration: "13h" }, "duration", /out of range/],
  ["duration fraction", { duration: 1000.5 }, "duration", /not a duration/],
  ["policy not JSON", { sessionPolicy: "{Statement" }, "session_policy", /not valid JSON/],
  ["policy without Statement", { sessionPolicy: "{\"Version\":\"2012-10-17\"}" }, "session_policy", /no Statement/],
  ["policy too long", { sessionPolicy: JSON.stringify({ Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "s3:GetObject", Resource: Array.from({ length: 80 }, (_, i) => `arn:aws:s3:::bucket-${i}/*`) }] }) }, "session_policy", /over STS's limit of 2048/],
  ["11 policy ARNs", { policyArns: Array.from({ length: 11 }, (_, i) => `arn:aws:iam::aws:policy/P${i}`) }, "policy_arns", /at most 10/],
  ["policy ARN of a role", { policyArns: ["arn:aws:iam::123456789012:role/x"] }, "policy_arns", /not a managed policy ARN/],
  ["bad chain ARN", { chainRoleArn: "role/x" }, "chain_role_arn", /not an IAM role ARN/],
  ["external id without chain", { chainExternalId: "abc" }, "chain_external_id", /chain_role_arn is empty/],
  ["save_to not a path", { saveTo: "aws_credentials" }, "save_to", /not a Windmill path/],
  ["save_to of another folder form", { saveTo: "g/x/y" }, "save_to", /f\/<folder>\/<name>/],
  ["min_remaining below the refresh window", { minRemaining: "1m" }, "min_remaining", /between 5m and 12h/],
];

describe("bad inputs are refused before any call", () => {
  for (const [name, patch, input, message] of BAD) {
    test(name, () => {
      let error: unknown;
      try {
        checkAssumeRoleInput({ ...GOOD, ...patch });
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(InputError);
      expect((error as InputError).input).toBe(input);
      expect((error as Error).message).toContain(`Invalid input "${input}"`);
      expect((error as Error).message).toMatch(message);
    });
  }
});

test("a pasted long value is cut in the error message", () => {
  const secretLooking = "A".repeat(200);
  expect(() => checkAssumeRoleInput({ ...GOOD, region: secretLooking })).toThrow(/"A{40}…"/);
});

test("good input becomes the mint parameters", () => {
  const { mint, saveTo, minRemainingSeconds } = checkAssumeRoleInput({ ...GOOD, duration: "2h", policyArns: ["arn:aws:iam::aws:policy/ReadOnlyAccess"], sessionPolicy: "{ \"Version\": \"2012-10-17\", \"Statement\": [] }" });
  expect(mint).toMatchObject({ roleArn: GOOD.roleArn, region: "us-east-1", audience: "sts.amazonaws.com", durationSeconds: 7200, sessionPolicy: "{\"Version\":\"2012-10-17\",\"Statement\":[]}" });
  expect(saveTo).toBe("f/aws_oidc/aws_credentials");
  expect(minRemainingSeconds).toBe(900);
});
