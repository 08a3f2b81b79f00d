// What the Windmill UI shows must match the code: every script's .script.yaml schema is
// what Windmill infers from `main` (windmill-parser-wasm-ts, the parser Windmill runs),
// flows and schedules pass Windmill's YAML schemas and `wmill lint`.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { createRequire } from "node:module";
import { join, relative } from "node:path";
import { initSync, parse_deno } from "windmill-parser-wasm-ts";
import { initSync as initSqlParser, parse_sql } from "windmill-parser-wasm-regex";
import { getValidationTargetFromFilename, WindmillYamlValidator } from "windmill-yaml-validator";
import { parse } from "yaml";
import { checkCron } from "../../local/windmill/schedules.ts";
import { parameterOrder, writeFormOrders } from "../../tools/formOrder.ts";
import { runWmill } from "../../local/windmill/wmillCli.ts";
import { REPO_ROOT } from "../helpers/testStack.ts";

const resolveModule = createRequire(import.meta.url).resolve;
initSync({ module: readFileSync(resolveModule("windmill-parser-wasm-ts/windmill_parser_wasm_bg.wasm")) });
initSqlParser({ module: readFileSync(resolveModule("windmill-parser-wasm-regex/windmill_parser_wasm_bg.wasm")) });

interface ParsedArg {
  name: string;
  typ: unknown;
  default: unknown;
  has_default: boolean;
}

interface SchemaProperty {
  type?: string;
  format?: string;
  default?: unknown;
  enum?: unknown[];
  description?: string;
  contentEncoding?: string;
  items?: { type?: string; resourceType?: string; properties?: unknown; enum?: unknown[]; contentEncoding?: string };
}

interface ScriptMetadata {
  summary: string;
  description: string;
  schema: { order?: string[]; properties: Record<string, SchemaProperty>; required: string[] };
}

async function files(dir: string, suffix: string): Promise<string[]> {
  const entries = await readdir(join(REPO_ROOT, dir), { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile() && e.name.endsWith(suffix)).map((e) => relative(REPO_ROOT, join(e.parentPath, e.name))).sort();
}

/** The JSON-schema type Windmill derives from a parser type (argSigToJsonSchemaType). */
function expectedType(typ: unknown): Pick<SchemaProperty, "type" | "format" | "enum"> {
  if (typ === "bool") return { type: "boolean" };
  if (typ === "float") return { type: "number" };
  if (typ === "int") return { type: "integer" };
  if (typ === "sql") return { type: "string", format: "sql" };
  const t = typ as Record<string, unknown>;
  if ("str" in t) return t.str ? { type: "string", enum: t.str as unknown[] } : { type: "string" };
  if ("list" in t) return { type: "array" };
  if ("resource" in t) return { type: "object", format: `resource-${t.resource}` };
  if ("object" in t) {
    const name = (t.object as { name: string | null }).name;
    return name ? { type: "object", format: `resource-${name}` } : { type: "object" };
  }
  throw new Error(`unexpected parser type ${JSON.stringify(typ)}`);
}

const scripts = [...(await files("f", ".ts")), ...(await files("u", ".ts")), ...(await files("f", ".pg.sql"))];

/**
 * The arguments Windmill infers: `main`'s for TypeScript; for a PostgreSQL script its
 * `-- $1 name` declarations after a `database` of the hub's postgresql type (windmill-cli inferSchema).
 */
function inferredArgs(script: string, code: string): ParsedArg[] {
  if (!script.endsWith(".pg.sql")) return (JSON.parse(parse_deno(code)) as { args: ParsedArg[] }).args;
  const database: ParsedArg = { name: "database", typ: { resource: "postgresql" }, default: null, has_default: false };
  return [database, ...(JSON.parse(parse_sql(code)) as { args: ParsedArg[] }).args];
}

describe("script metadata matches main's signature", () => {
  for (const script of scripts) {
    test(script, async () => {
      const code = await readFile(join(REPO_ROOT, script), "utf8");
      const meta = parse(await readFile(join(REPO_ROOT, script.replace(/(\.pg\.sql|\.ts)$/, ".script.yaml")), "utf8")) as ScriptMetadata;
      const args = inferredArgs(script, code);
      const properties = meta.schema.properties;
      expect(Object.keys(properties).sort()).toEqual(args.map((a) => a.name).sort());
      // Windmill marks as required exactly the parameters without a default.
      expect([...meta.schema.required].sort()).toEqual(args.filter((a) => !a.has_default).map((a) => a.name).sort());
      for (const arg of args) {
        const property = properties[arg.name];
        expect({ name: arg.name, ...pickType(property) }).toEqual({ name: arg.name, ...expectedType(arg.typ) });
        if (arg.default !== null) expect({ name: arg.name, default: property.default }).toEqual({ name: arg.name, default: arg.default });
      }
      if (!script.includes("/lib/")) {
        expect(meta.summary.length).toBeGreaterThan(10);
        expect(meta.description.length).toBeGreaterThan(30);
        for (const [name, property] of Object.entries(properties)) expect({ name, described: (property.description ?? "").length > 3 }).toEqual({ name, described: true });
      }
    });
  }
});

const metadataOf = async (script: string) =>
  parse(await readFile(join(REPO_ROOT, script.replace(/(\.pg\.sql|\.ts)$/, ".script.yaml")), "utf8")) as ScriptMetadata;

describe("run forms list inputs in main's parameter order (Windmill's form follows schema.order)", () => {
  for (const script of scripts) {
    test(script, async () => {
      const code = await readFile(join(REPO_ROOT, script), "utf8");
      const meta = await metadataOf(script);
      const names = inferredArgs(script, code).map((a) => a.name);
      if (names.length === 0) expect(meta.schema.order ?? []).toEqual([]);
      else expect(meta.schema.order).toEqual(names);
    });
  }

  test("tools/formOrder.ts reads the order as Windmill's parsers give it (a reordered signature changes it)", () => {
    expect(parameterOrder("x.ts", "export async function main(b: string, a = 1) {}")).toEqual(["b", "a"]);
    expect(parameterOrder("x.ts", "export async function main(a = 1, b: string) {}")).toEqual(["a", "b"]);
    expect(parameterOrder("x.pg.sql", "-- $2 b\n-- $1 a\nselect $1, $2")).toEqual(["database", ...(JSON.parse(parse_sql("-- $2 b\n-- $1 a\nselect $1, $2")) as { args: { name: string }[] }).args.map((a) => a.name)]);
  });

  test("npm run metadata's last step (writeFormOrders) puts order before properties, follows a changed signature, and is stable", async () => {
    const root = await mkdtemp(join(tmpdir(), "form-order-"));
    try {
      const yamlFile = join(root, "f/demo/two_inputs.script.yaml");
      await mkdir(join(root, "f/demo"), { recursive: true });
      await writeFile(yamlFile, "summary: Two inputs\nschema:\n  type: object\n  properties:\n    a:\n      type: number\n    b:\n      type: string\n  required: []\n");
      const writeSignature = (params: string) => writeFile(join(root, "f/demo/two_inputs.ts"), `export async function main(${params}) {}\n`);
      const schemaKeys = async () => Object.keys((parse(await readFile(yamlFile, "utf8")) as ScriptMetadata).schema);

      await writeSignature("b: string, a = 1");
      expect(await writeFormOrders(root)).toEqual([yamlFile]);
      expect((parse(await readFile(yamlFile, "utf8")) as ScriptMetadata).schema.order).toEqual(["b", "a"]);
      expect(await schemaKeys()).toEqual(["type", "order", "properties", "required"]);

      await writeSignature("a = 1, b: string");
      expect(await writeFormOrders(root)).toEqual([yamlFile]);
      expect((parse(await readFile(yamlFile, "utf8")) as ScriptMetadata).schema.order).toEqual(["a", "b"]);
      expect(await writeFormOrders(root)).toEqual([]);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

/**
 * The input Windmill's run form shows for a schema property: frontend/src/lib/utils.ts
 * setInputCat, and for a list frontend/src/lib/components/ArgInput.svelte's per-item input.
 */
function formInput(p: SchemaProperty): string {
  if (p.type === "number" || p.type === "integer") return "number";
  if (p.type === "boolean") return "toggle";
  if (p.type === "array" && p.items !== undefined) {
    const items = p.items;
    if (items.type === "number") return "list of numbers";
    if (items.type === "string" && items.contentEncoding === "base64") return "list of files";
    if (items.type === "object" && items.resourceType === undefined && items.properties === undefined) return "list of JSON values";
    if (Array.isArray(items.enum)) return "list of choices";
    return "list of texts";
  }
  if (p.type === "object" && p.format?.startsWith("resource")) return `resource picker (${p.format.slice("resource-".length)})`;
  if (!p.type || p.type === "object" || p.type === "array") return "JSON editor";
  if (p.type === "string" && p.enum) return "choice";
  if (p.type === "string" && ["date-time", "naive-date-time", "date"].includes(p.format ?? "")) return "date";
  if (p.type === "string" && p.format === "sql") return "SQL editor";
  return "text";
}

/** What a person types into each of the form's list items (ArgInput's JsonEditor parses each as JSON). */
const typedIntoListOfJsonValues = (entries: string[]) => entries.map((text) => JSON.parse(text) as unknown);

describe("inputs typed for Windmill's form", () => {
  test("rds_query: credentials and database pickers, SQL in a SQL editor, args one JSON value per item", async () => {
    const meta = await metadataOf("f/aws_oidc/rds_query.ts");
    const form = meta.schema.order!.map((name) => [name, formInput(meta.schema.properties[name])]);
    expect(form).toEqual([
      ["credentials", "resource picker (aws_sts_credentials)"],
      ["database", "resource picker (aws_rds_iam_postgres)"],
      ["sql", "SQL editor"],
      ["args", "list of JSON values"],
      ["row_limit", "number"],
      ["statement_timeout", "text"],
    ]);
    // 42 and "DE" arrive as a number and a string, the plain values rds_query binds to $1 and $2.
    expect(typedIntoListOfJsonValues(["42", '"DE"', "true", "null"])).toEqual([42, "DE", true, null]);
  });

  test("rds_export_to_s3: the query in a SQL editor", async () => {
    const meta = await metadataOf("f/aws_oidc/rds_export_to_s3.ts");
    expect(formInput(meta.schema.properties.query)).toBe("SQL editor");
  });

  test("every array input is a list (never one JSON editor for the whole list), and every SQL text input is a SQL editor", async () => {
    for (const script of scripts) {
      const meta = await metadataOf(script);
      for (const [name, property] of Object.entries(meta.schema.properties)) {
        const input = formInput(property);
        if (property.type === "array") expect({ script, name, list: input.startsWith("list of") }).toEqual({ script, name, list: true });
        if (["sql", "query"].includes(name)) expect({ script, name, input }).toEqual({ script, name, input: "SQL editor" });
      }
    }
  });
});

describe("library modules say they are libraries", () => {
  test("every lib/ module's summary starts `Library:` and says what it holds; its description says it has no main", async () => {
    const libraries = scripts.filter((s) => s.includes("/lib/"));
    expect(libraries.length).toBeGreaterThan(20);
    for (const script of libraries) {
      const meta = await metadataOf(script);
      expect({ script, summary: /^Library: \S.{8,}$/.test(meta.summary) }).toEqual({ script, summary: true });
      expect({ script, description: meta.description.includes("no main") }).toEqual({ script, description: true });
    }
  });

  test("no script has an empty summary", async () => {
    for (const script of scripts) expect({ script, summary: (await metadataOf(script)).summary.trim().length > 0 }).toEqual({ script, summary: true });
  });
});

function pickType(p: SchemaProperty): Pick<SchemaProperty, "type" | "format" | "enum"> {
  const out: Pick<SchemaProperty, "type" | "format" | "enum"> = { type: p.type };
  if (p.format) out.format = p.format;
  if (p.enum) out.enum = p.enum;
  return out;
}

describe("flows and schedules", () => {
  const validator = new WindmillYamlValidator();
  test("pass windmill-yaml-validator", async () => {
    const yamlFiles = [...(await files("f", "flow.yaml")), ...(await files("f", ".schedule.yaml"))];
    expect(yamlFiles.length).toBeGreaterThanOrEqual(3);
    for (const file of yamlFiles) {
      const target = getValidationTargetFromFilename(file);
      expect({ file, target: target?.type }).toEqual({ file, target: file.endsWith("flow.yaml") ? "flow" : "schedule" });
      const { errors } = validator.validate(await readFile(join(REPO_ROOT, file), "utf8"), target!);
      expect({ file, errors }).toEqual({ file, errors: [] });
    }
  });

  test("the validator does catch a broken flow (so the check above can fail)", () => {
    const { errors } = validator.validate("summary: x\nvalue:\n  modules:\n    - id: a\n      value:\n        type: nonsense\n", { type: "flow" });
    expect(errors.length).toBeGreaterThan(0);
  });

  test("a schedule reading a resource another schedule saves never fires at the same tick (the first run after a push would find it missing)", async () => {
    type ScheduleFile = { schedule: string; timezone: string; args: Record<string, unknown> };
    const schedules = await Promise.all((await files("f", ".schedule.yaml")).map(async (file) =>
      ({ file, ...(parse(await readFile(join(REPO_ROOT, file), "utf8")) as ScheduleFile) })));
    const dayStart = Date.UTC(2026, 0, 1);
    const ticksOfADay = (s: ScheduleFile) => new Set(checkCron(s.schedule, s.timezone).nextRuns(24 * 60, new Date(dayStart))
      .map((d) => d.getTime()).filter((t) => t < dayStart + 24 * 3600_000));
    const pairs = schedules.flatMap((saver) => schedules
      .filter((reader) => typeof saver.args.save_to === "string" && Object.values(reader.args).includes(`$res:${saver.args.save_to}`))
      .map((reader) => {
        const readerTicks = ticksOfADay(reader);
        return { saver: saver.file, reader: reader.file, shared: [...ticksOfADay(saver)].filter((t) => readerTicks.has(t)).length };
      }));
    expect(pairs.length).toBeGreaterThan(0);
    expect(pairs.filter((p) => p.shared > 0)).toEqual([]);
  });

  test("wmill lint finds nothing to report", async () => {
    const run = await runWmill(REPO_ROOT, ["lint", "--json"]);
    const report = JSON.parse(run.output.slice(run.output.indexOf("{"))) as { success: boolean; validatedFiles: number; issues: unknown[]; warnings: unknown[] };
    expect(report).toMatchObject({ success: true, issues: [], warnings: [] });
    expect(report.validatedFiles).toBeGreaterThanOrEqual(3);
  });
});
