// A stand-in that cannot start ends the demo at once: the service, the cause and a Fix
// line, a non-zero exit, and nothing left running.
import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startPostgres } from "../../local/rds/postgresProcess.ts";
import { PostgresSetupError } from "../../local/rds/postgresBinaries.ts";
import { REPO_ROOT, StandInStartError, startLocalStack } from "../../local/stack.ts";

async function takenPort(): Promise<{ port: number; release(): Promise<void> }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { port: (server.address() as AddressInfo).port, release: () => new Promise((resolve) => server.close(() => resolve())) };
}

/** Processes whose command line mentions `marker` (the demo's private temp dir). */
function processesMentioning(marker: string): string[] {
  const ps = spawnSync("ps", ["-eo", "pid,args"], { encoding: "utf8" });
  return ps.stdout.split("\n").filter((line) => line.includes(marker) && !line.includes(" ps -eo"));
}

describe("a stand-in that fails to start", () => {
  // "At once" is shown by the cause: EADDRINUSE from the listen, not a start timeout's message.
  test("the demo names the RDS stand-in, the cause and the fix, exits non-zero on its own, and leaves no process", async () => {
    const privateTmp = await mkdtemp(join(tmpdir(), "demo-start-failure-"));
    // As root Postgres runs as the postgres user, who must reach the data dir under TMPDIR.
    await chmod(privateTmp, 0o755);
    const taken = await takenPort();
    let demo: ReturnType<typeof Bun.spawn> | undefined;
    try {
      demo = Bun.spawn([process.execPath, "local/demo/demo.ts", "demo", "--rds-port", String(taken.port)], {
        cwd: REPO_ROOT,
        env: { ...process.env, TMPDIR: privateTmp },
        stdout: "pipe",
        stderr: "pipe",
      });
      const [code, stderr] = await Promise.all([demo.exited, new Response(demo.stderr as ReadableStream).text()]);

      expect(code).toBe(1);
      expect(stderr).not.toMatch(/within \d+ m?s/);
      expect(stderr).toContain("RDS stand-in failed to start");
      expect(stderr).toContain("EADDRINUSE");
      expect(stderr).toContain(`Fix: port ${taken.port} is taken`);
      // Postgres, s3rver and their data directories all lived under the demo's TMPDIR.
      expect(processesMentioning(privateTmp)).toEqual([]);
    } finally {
      demo?.kill("SIGKILL");
      await taken.release();
      await rm(privateTmp, { recursive: true, force: true });
    }
  });

  test("in process, the stand-ins started before the failing one are closed (no s3rver or Postgres child left)", async () => {
    const taken = await takenPort();
    try {
      const failure = await startLocalStack({ s3: true, rds: true, ports: { rds: taken.port } }).catch((err: unknown) => err);
      expect(failure).toBeInstanceOf(StandInStartError);
      expect((failure as StandInStartError).standIn).toBe("rds");
      const children = spawnSync("ps", ["-o", "pid=,args=", "--ppid", String(process.pid)], { encoding: "utf8" }).stdout;
      expect(children.split("\n").filter((line) => /s3rver|postgres/.test(line))).toEqual([]);
    } finally {
      await taken.release();
    }
  });

  // "At once": the spawn's own EACCES, not a wait for a server that never comes.
  test("a Postgres binary that cannot be run rejects at once with the file and a Fix line", async () => {
    const dir = await mkdtemp(join(tmpdir(), "unrunnable-postgres-"));
    try {
      const binary = join(dir, "postgres");
      await writeFile(binary, "not a program");
      await chmod(binary, 0o644);
      const failure = await startPostgres({ initdb: binary, postgres: binary }, join(dir, "pgdata"), 5432, [], () => {}).catch((err: unknown) => err);
      expect(failure).toBeInstanceOf(PostgresSetupError);
      expect((failure as Error).message).toContain(`${binary} cannot be run`);
      expect((failure as Error).message).toContain("EACCES");
      expect((failure as Error).message).toContain("\nFix: ");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
