// Careless input (issue 19, point 6), through Windmill jobs on the stand-ins: a region typo is
// refused before any call, naming the nearest region; a failed assume_role leaves the saved
// session as it was; AccessDenied sends the user to the role ARN and account first; a base URL
// pasted with /api/oidc is refused by the trust_policy script with the URL to give.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { checkKnownRegion, editDistance, nearestRegion, REGIONS_BY_PARTITION } from "../../f/aws_oidc/lib/awsRegions.ts";
import { InputError } from "../../f/aws_oidc/lib/validate.ts";
import { auditLeaksThenClose } from "../helpers/leaks.ts";
import { ACCOUNT_ID, DEMO_ROLE_ARN, REGION, startStack, type Stack } from "../helpers/testStack.ts";

const SAVED = "f/aws_oidc/careless_creds";
let stack: Stack;

beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await auditLeaksThenClose(stack);
});

const assumeRole = (args: Record<string, unknown>) =>
  stack.runScript("f/aws_oidc/assume_role", { role_arn: DEMO_ROLE_ARN, region: REGION, save_to: SAVED, ...args });

/** The saved resource as stored (secrets stay `$var:` references), to compare before and after. */
async function savedResource(): Promise<unknown> {
  const res = await fetch(`${stack.windmill.url}/api/w/${stack.windmill.workspace}/resources/get/${SAVED}`, {
    headers: { authorization: `Bearer ${stack.windmill.adminToken}` },
  });
  return (await res.json() as { value: unknown }).value;
}

const webIdentityCalls = async () => (await stack.stsStats()).calls.AssumeRoleWithWebIdentity ?? 0;

describe("regions the AWS SDK does not know", () => {
  test("the region codes named in suggestions equal the installed SDK's partitions data", async () => {
    // The data file behind @aws-sdk/core's partition(); its exports map hides it, so by path.
    const dataFile = new URL("dist-es/submodules/client/util-endpoints/lib/aws/partitions.js", import.meta.resolve("@aws-sdk/core/package.json"));
    const { partitionsInfo } = await import(dataFile.href) as { partitionsInfo: { partitions: { id: string; regions: Record<string, unknown> }[] } };
    // aws-global and the like are endpoints' pseudo-regions, not region codes.
    const sdk = partitionsInfo.partitions.map((p): [string, string[]] => [p.id, Object.keys(p.regions).filter((r) => !r.startsWith("aws-"))]);
    expect([...REGIONS_BY_PARTITION.entries()]).toEqual(sdk);
  });

  test.each([
    ["us-easst-1", "aws", 'not a region the AWS SDK knows in partition aws (the role ARN\'s).\nFix: Did you mean us-east-1?'],
    ["eu-wset-3", "aws", "Did you mean eu-west-3?"],
    ["cn-north-1", "aws", "is a region of partition aws-cn, and the role ARN is in partition aws"],
    ["us-east-1", "aws-cn", "is a region of partition aws, and the role ARN is in partition aws-cn"],
    ["us-east-99", undefined, "Did you mean us-east-1?"],
  ] as const)("%s (role partition %s) is refused: %s", (region, partition, message) => {
    let error: unknown;
    try {
      checkKnownRegion("region", region, partition);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(InputError);
    expect((error as Error).message).toContain(message);
  });

  test("known regions pass; nearest is by edit distance", () => {
    expect(checkKnownRegion("region", " eu-central-2 ", "aws")).toBe("eu-central-2");
    expect(checkKnownRegion("region", "us-gov-west-1", "aws-us-gov")).toBe("us-gov-west-1");
    expect(editDistance("us-easst-1", "us-east-1")).toBe(1);
    expect(nearestRegion("ap-southeast-9", ["us-east-1", "ap-southeast-1", "ap-south-1"])).toBe("ap-southeast-1");
  });
});

describe("a failed assume_role never replaces the saved session", () => {
  let good: unknown;
  beforeAll(async () => {
    expect((await assumeRole({})).status).toBe(200);
    good = await savedResource();
  });

  test("a region typo is refused before any STS call, naming the nearest region; the saved session is unchanged", async () => {
    const before = await webIdentityCalls();
    const { status, result } = await assumeRole({ region: "us-easst-1", force: true });
    expect(status).toBe(422);
    expect(result.error.message).toContain('Invalid input "region": "us-easst-1" is not a region the AWS SDK knows in partition aws');
    expect(result.error.message).toContain("Did you mean us-east-1?");
    expect(await webIdentityCalls()).toBe(before);
    expect(await savedResource()).toEqual(good);
  });

  test("the same typo in the aws_oidc resource is named as aws_oidc.region", async () => {
    const { result } = await stack.runScript("f/aws_oidc/assume_role", { aws_oidc: { roleArn: DEMO_ROLE_ARN, region: "us-esat-1" }, save_to: SAVED, force: true });
    expect(result.error.message).toContain('Invalid input "aws_oidc.region": "us-esat-1"');
    expect(await savedResource()).toEqual(good);
  });

  test("the doctor refuses the same typo as a malformed input before it checks any link", async () => {
    const before = await webIdentityCalls();
    const { status, result } = await stack.runScript("f/aws_oidc/doctor", { aws_oidc: { roleArn: DEMO_ROLE_ARN, region: "us-esat-1" } });
    expect(status).toBe(422);
    expect(result.error.message).toContain('Invalid input "aws_oidc.region": "us-esat-1" is not a region the AWS SDK knows in partition aws');
    expect(result.error.message).toContain("Did you mean us-east-1?");
    expect(await webIdentityCalls()).toBe(before);
  });

  test("STS refusing (a role that does not exist) leaves the saved session as it was", async () => {
    const { status, result } = await assumeRole({ role_arn: `arn:aws:iam::${ACCOUNT_ID}:role/windmill-demo-typo`, force: true });
    expect(status).toBe(422);
    expect(result.error.message).toContain("AccessDenied");
    expect(await savedResource()).toEqual(good);
  });
});

describe("AccessDenied from STS", () => {
  // AWS answers a missing role exactly like a refusing trust policy: the ARN is checked first.
  test("names the role ARN and the account as the first thing to check", async () => {
    const arn = "arn:aws:iam::210987654321:role/windmill-demo";
    const { result } = await assumeRole({ role_arn: arn, save_to: "f/aws_oidc/careless_other_account" });
    const fix = result.error.message.split("\nFix: ")[1];
    expect(fix).toStartWith(`First check the role ARN ${arn}: role windmill-demo must exist in account 210987654321`);
    expect(fix).toContain("a typo in its name or a wrong account id exactly like a trust policy that refuses the job");
    expect(fix.indexOf("trust policy must allow")).toBeGreaterThan(fix.indexOf("account 210987654321"));
  });
});

describe("f/aws_oidc/trust_policy with a base URL pasted with /api/oidc", () => {
  test.each([["https://windmill.example.com/api/oidc/"], ["https://windmill.example.com/api/oidc"]])("%s is refused with the URL to give", async (url) => {
    const { status, result } = await stack.runScript("f/aws_oidc/trust_policy", { account_id: ACCOUNT_ID, windmill_base_url: url, workspace: "prod", bucket: "data-lake" });
    expect(status).toBe(422);
    expect(result.error.message).toContain(`Invalid input "base_url": ${JSON.stringify(url)} ends in /api/oidc`);
    expect(result.error.message).toContain("Give Windmill's base URL without it: https://windmill.example.com");
  });

  test("a base URL with a path keeps it, and only a trailing /api/oidc is refused", async () => {
    const { status, result } = await stack.runScript("f/aws_oidc/trust_policy", { account_id: ACCOUNT_ID, windmill_base_url: "https://example.com/windmill/", workspace: "prod", bucket: "data-lake" });
    expect(status).toBe(200);
    expect(result.provider_url).toBe("https://example.com/windmill/api/oidc/");
  });
});
