// The bundling step of a Bun job (windmill-worker/src/bun_executor.rs build_loader with
// LoaderMode::BunBundle, run by generate_bun_bundle): Bun.build of the script with Windmill's
// loader, target bun, only `electron` left external, syntax minified. The job then runs the
// bundle, so a script whose packages do not survive bundling fails as on a real worker.
import { readFile } from "node:fs/promises";
import { workspaceResolver } from "./jobLoader.ts";

interface BuildSpec {
  entry: string;
  outdir: string;
  workspaceRoot: string;
}

const spec = JSON.parse(await readFile(process.env.WM_LOCAL_BUILD_SPEC ?? "", "utf8")) as BuildSpec;
try {
  const built = await Bun.build({
    entrypoints: [spec.entry],
    outdir: spec.outdir,
    target: "bun",
    plugins: [workspaceResolver(spec.workspaceRoot)],
    external: ["electron"],
    minify: { identifiers: false, syntax: true, whitespace: false },
  });
  if (!built.success) throw new AggregateError(built.logs, "Bun.build failed");
  // The one output file, for the worker to cache.
  console.log(`BUNDLE:${built.outputs[0].path}`);
} catch (err) {
  console.log(err);
  // bun_executor.rs build_loader: the builder's own failure line.
  console.log("Failed to build node bundle");
  process.exit(1);
}
