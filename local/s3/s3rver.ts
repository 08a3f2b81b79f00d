// s3rver as a child process: started under Node (see s3rverChild.mjs beside this file),
// ready once it prints its port, stopped with SIGTERM.
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { CHILD_START_TIMEOUT_MS } from "./limits.ts";

const CHILD_SCRIPT = fileURLToPath(new URL("./s3rverChild.mjs", import.meta.url));

/** Starts s3rver under Node and waits for the port it prints. */
export async function startS3rver(dataDir: string): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn("node", ["--openssl-legacy-provider", CHILD_SCRIPT, "0", dataDir], { stdio: ["pipe", "pipe", "inherit"] });
  const lines = createInterface({ input: child.stdout! });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const port = await new Promise<number>((resolvePort, reject) => {
      timer = setTimeout(() => reject(new Error(`s3rver did not start within ${CHILD_START_TIMEOUT_MS} ms`)), CHILD_START_TIMEOUT_MS);
      child.once("error", (err) => reject(new Error(`could not start node for s3rver: ${err.message}\nFix: install Node.js >= 20 and put it on PATH`)));
      child.once("exit", (code) => reject(new Error(`s3rver exited with code ${code} before listening`)));
      lines.once("line", (line) => resolvePort((JSON.parse(line) as { port: number }).port));
    });
    return { child, port };
  } catch (err) {
    // A child that is slow rather than dead must not outlive the failed start.
    child.kill("SIGKILL");
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  child.kill("SIGTERM");
  await exited;
}
