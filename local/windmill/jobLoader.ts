// Windmill's loader for a Bun job (windmill-worker/loader.bun.js), as the stand-in needs it:
// `/f/...` and `/u/...` imports are workspace scripts, fetched (here: already written) at
// their path inside the job folder, `.ts` appended when the import leaves it out. Used at run
// time for an unbundled job and by Bun.build for a bundled one.
import type { BunPlugin } from "bun";
import { join } from "node:path";

export function workspaceResolver(workspaceRoot: string): BunPlugin {
  return {
    name: "windmill-relative-resolver",
    setup(build) {
      build.onResolve({ filter: /^\/(f|u)\// }, (args) => ({ path: join(workspaceRoot, args.path.endsWith(".ts") ? args.path : `${args.path}.ts`) }));
    },
  };
}
