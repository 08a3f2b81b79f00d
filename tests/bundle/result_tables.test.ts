// The results that are rows render as tables in Windmill's result view (the rule of
// DisplayResult.svelte, mirrored in tests/helpers/windmillResult.ts), as each script really
// returns them through the stand-in's job runner, and a step that consumes them gets the rows.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { DATABASE_RESOURCE, DEMO_BUCKET, ROLE_RESOURCE, setUpWorkspace, uploadSampleCsvs } from "../../local/demo/demoData.ts";
import { assumeRoleAndSave } from "../../f/aws_oidc/lib/assumeRoleAndSave.ts";
import { s3Client } from "../../f/aws_oidc/lib/s3.ts";
import { runWaitResult } from "../../local/windmill/client.ts";
import { auditLeaksThenClose } from "../helpers/leaks.ts";
import { DEMO_ROLE_ARN, REGION, startStack, type JobResult, type Stack } from "../helpers/testStack.ts";
import { isTableRowObject, windmillResultKind } from "../helpers/windmillResult.ts";

const CREDS = "f/aws_oidc/table_creds";
let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ s3: true, rds: true });
  await setUpWorkspace(stack);
  stack.actAsJob("f/aws_oidc/table_test_setup");
  await assumeRoleAndSave({ roleArn: DEMO_ROLE_ARN, region: REGION, saveTo: CREDS }, () => {});
  await uploadSampleCsvs((await s3Client(CREDS)).s3, DEMO_BUCKET, "tables/", 2, 5);
  await stack.rds!.adminSql("create table orders_tables (like orders); grant select, insert on orders_tables to app_user");
});
afterAll(async () => {
  await auditLeaksThenClose(stack);
});

describe("the mirrored rule (DisplayResult.svelte inferResultKind)", () => {
  test("an array of objects is a table; an object around rows, an empty array or an unsafe integer is JSON", () => {
    expect(windmillResultKind([{ a: 1 }, { a: 2, b: "x" }])).toBe("table-row-object");
    expect(windmillResultKind({ rows: [{ a: 1 }], row_count: 1, truncated: false })).toBe("json");
    expect(windmillResultKind({ "table-row-object": [{ a: 1 }] })).toBe("table-row-object");
    expect(windmillResultKind([])).toBe("json");
    expect(windmillResultKind([{ n: 2 ** 60 }])).toBe("json");
    expect(isTableRowObject([Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`c${i}`, i]))])).toBe(false);
  });
});

describe("results that are rows render as a table", () => {
  test("rds_query: its result is the rows", async () => {
    const { status, result } = await stack.runScript("f/aws_oidc/rds_query", {
      credentials: `$res:${CREDS}`, database: `$res:${DATABASE_RESOURCE}`, sql: "select g as n, 'row ' || g as label from generate_series(1, 3) g",
    });
    expect(status).toBe(200);
    expect(result).toEqual([{ n: 1, label: "row 1" }, { n: 2, label: "row 2" }, { n: 3, label: "row 3" }]);
    expect(windmillResultKind(result)).toBe("table-row-object");
  });

  test("s3_list_objects", async () => {
    const { status, result } = await stack.runScript("f/aws_oidc/s3_list_objects", { credentials: `$res:${CREDS}`, bucket: DEMO_BUCKET, prefix: "tables/" });
    expect(status).toBe(200);
    expect(result).toHaveLength(2);
    expect(windmillResultKind(result)).toBe("table-row-object");
  });

  test("doctor", async () => {
    const { status, result } = await stack.runScript("f/aws_oidc/doctor", { aws_oidc: `$res:${ROLE_RESOURCE}`, bucket: DEMO_BUCKET, prefix: "tables/", database: `$res:${DATABASE_RESOURCE}` });
    expect(status).toBe(200);
    expect(result.at(-1).check).toBe("verdict");
    expect(windmillResultKind(result)).toBe("table-row-object");
  });

  test("the load summary: s3_csv_to_rds's result, and summarize_loads run alone", async () => {
    const flow: { status: number; result: JobResult } = await runWaitResult(stack.windmill, "f", "f/aws_oidc/s3_csv_to_rds", {
      aws_oidc: `$res:${ROLE_RESOURCE}`, database: `$res:${DATABASE_RESOURCE}`, bucket: DEMO_BUCKET, prefix: "tables/", table: "orders_tables", credentials_path: CREDS,
    });
    expect(flow.status).toBe(200);
    expect(flow.result.at(-1).object).toBe("TOTAL (2 of 2 loaded)");
    expect(windmillResultKind(flow.result)).toBe("table-row-object");
    const alone = await stack.runScript("f/aws_oidc/summarize_loads", { keys: ["s3://b/a.csv"], loads: [{ error: { name: "Error", message: "boom\nFix: do this" } }], fail_on_failures: false });
    expect(alone.status).toBe(200);
    expect(windmillResultKind(alone.result)).toBe("table-row-object");
  });

  test("a flow step consumes the rows as they are: the load flow's plan took list_csv's result without unwrapping", async () => {
    const flow = stack.windmill.jobs.findLast((j) => j.kind === "flow" && j.path === "f/aws_oidc/s3_csv_to_rds")!;
    const steps = stack.windmill.jobs.filter((j) => j.parentJobId === flow.id);
    const listed = steps.find((s) => s.stepId === "list_csv")!.result as { key: string }[];
    expect(steps.find((s) => s.stepId === "plan")!.args.keys).toEqual(listed.map((o) => o.key));
  });
});
