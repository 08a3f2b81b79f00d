// Reads from the repo what a generated trust policy admits by default: every flow
// (`<name>__flow/flow.yaml` or `<name>.flow/flow.yaml`), every schedule's target
// (`*.schedule.yaml`: script_path, is_flow) and the doctor, under f/ and u/.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { parse } from "yaml";
import type { AdmittedRunnable } from "../f/aws_oidc/lib/admitted.ts";

export const DOCTOR_PATH = "f/aws_oidc/doctor";

async function filesUnder(root: string, pattern: string): Promise<string[]> {
  const found: string[] = [];
  for (const top of ["f", "u"]) {
    if (!existsSync(join(root, top))) continue;
    for await (const file of new Bun.Glob(`${top}/${pattern}`).scan({ cwd: root })) found.push(file);
  }
  return found.sort();
}

export async function readShippedRunnables(root: string): Promise<AdmittedRunnable[]> {
  const runnables: AdmittedRunnable[] = [];
  for (const file of await filesUnder(root, "**/flow.yaml")) {
    const dir = file.slice(0, -"/flow.yaml".length);
    const path = dir.replace(/(__flow|\.flow)$/, "");
    if (path !== dir) runnables.push({ path, kind: "flow", why: "flow shipped in this bundle" });
  }
  for (const file of await filesUnder(root, "**/*.schedule.yaml")) {
    const schedule = parse(await readFile(join(root, file), "utf8")) as { script_path: string; is_flow?: boolean };
    const kind = schedule.is_flow ? "flow" : "script";
    const why = `target of schedule ${file.slice(0, -".schedule.yaml".length)}`;
    const known = runnables.find((r) => r.path === schedule.script_path && r.kind === kind);
    if (known) known.why = `${known.why}; ${why}`;
    else runnables.push({ path: schedule.script_path, kind, why });
  }
  if (existsSync(join(root, `${DOCTOR_PATH}.ts`)) && !runnables.some((r) => r.path === DOCTOR_PATH)) {
    runnables.push({ path: DOCTOR_PATH, kind: "script", why: "the doctor, to check the setup" });
  }
  return runnables.sort((a, b) => a.path.localeCompare(b.path));
}
