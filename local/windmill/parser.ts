// Windmill's own TypeScript parser (the wasm build its CLI and server use), loaded once
// for the worker: main's parameters and the workspace scripts a script imports.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { initSync, parse_deno, parse_ts_relative_imports } from "windmill-parser-wasm-ts";

export interface WindmillParser {
  parse_deno: typeof parse_deno;
  parse_ts_relative_imports: typeof parse_ts_relative_imports;
}

let parserReady = false;
export function windmillParser(): WindmillParser {
  if (!parserReady) {
    const require = createRequire(import.meta.url);
    initSync({ module: readFileSync(require.resolve("windmill-parser-wasm-ts/windmill_parser_wasm_bg.wasm")) });
    parserReady = true;
  }
  return { parse_deno, parse_ts_relative_imports };
}
