// `schema.order` for every script: the run form lists inputs in this order (Windmill's
// SchemaForm follows `order`, else the properties' order), and `wmill generate-metadata`
// writes properties sorted by name and keeps an existing `order` without updating it
// (windmill-cli inferSchema). So after it runs, `npm run metadata` sets each script's order
// to its parameters' order: main's for TypeScript, `database` then the `-- $1 name`
// declarations for a PostgreSQL script, as inferSchema lists them.
import { readFileSync } from "node:fs";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import { initSync as initSqlParser, parse_sql } from "windmill-parser-wasm-regex";
import { initSync, parse_deno } from "windmill-parser-wasm-ts";
import { isMap, parseDocument, type YAMLMap } from "yaml";

const resolveModule = createRequire(import.meta.url).resolve;
initSync({ module: readFileSync(resolveModule("windmill-parser-wasm-ts/windmill_parser_wasm_bg.wasm")) });
initSqlParser({ module: readFileSync(resolveModule("windmill-parser-wasm-regex/windmill_parser_wasm_bg.wasm")) });

/** The parameter names Windmill infers, in order (windmill-cli inferSchema). */
export function parameterOrder(file: string, code: string): string[] {
  const names = (parsed: string) => (JSON.parse(parsed) as { args: { name: string }[] }).args.map((a) => a.name);
  return file.endsWith(".pg.sql") ? ["database", ...names(parse_sql(code))] : names(parse_deno(code));
}

/** Sets `schema.order` in one `.script.yaml`, just before `properties` as wmill's key sort puts it; true when it changed. */
async function writeOrder(metadataFile: string, order: string[]): Promise<boolean> {
  const text = await readFile(metadataFile, "utf8");
  const doc = parseDocument(text);
  const schema = doc.get("schema");
  if (!isMap(schema)) return false;
  const map = schema as YAMLMap;
  map.delete("order");
  const at = map.items.findIndex((pair) => String((pair.key as { value?: unknown })?.value ?? pair.key) === "properties");
  const pair = doc.createPair("order", order);
  map.items.splice(at === -1 ? map.items.length : at, 0, pair);
  const updated = doc.toString({ singleQuote: true });
  if (updated === text) return false;
  await writeFile(metadataFile, updated);
  return true;
}

/** Every script under `f/` and `u/` that takes inputs gets its order; returns the files changed. */
export async function writeFormOrders(repoRoot: string): Promise<string[]> {
  const changed: string[] = [];
  for (const top of ["f", "u"]) {
    const entries = await readdir(join(repoRoot, top), { recursive: true, withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      const match = /^(.*)(\.pg\.sql|\.ts)$/.exec(entry.name);
      if (!entry.isFile() || !match) continue;
      const file = join(entry.parentPath, entry.name);
      const order = parameterOrder(file, await readFile(file, "utf8"));
      const metadataFile = join(entry.parentPath, `${match[1]}.script.yaml`);
      if (order.length > 0 && (await writeOrder(metadataFile, order).catch(() => false))) changed.push(metadataFile);
    }
  }
  return changed;
}
