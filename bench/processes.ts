// Watches the processes a measurement involves, from /proc: CPU time by role (Postgres,
// the stand-ins' own process, the client doing the work, s3rver, and everything else on
// the machine) to show what limits a run and whether something else disturbed it; and
// the peak RSS (VmHWM) of each Windmill job process, attributed to its job through the
// WM_JOB_ID the worker sets. Only this process's descendants count as the benchmark's:
// other stacks (another test run's jobs and Postgres) are "other".
import { readdir, readFile } from "node:fs/promises";

/** Linux reports /proc CPU times in USER_HZ ticks, 100 per second on every mainstream architecture. */
const TICKS_PER_SECOND = 100;
/** Often enough to catch short jobs (a Bun job lives ≥ 300 ms); VmHWM is a high-water mark, so a sample only misses growth in its last interval. */
const SAMPLE_INTERVAL_MS = 100;
const JOB_ENTRY = "windmill/jobEntry.ts";
const S3RVER_ENTRY = "s3rverChild.mjs";
const BENCH_WORKER = "bench/worker.ts";
const S3_PIPE = "bench/s3_pipe.mjs";

export type ProcessRole = "postgres" | "stand-ins" | "client" | "s3rver" | "other";
export const PROCESS_ROLES: ProcessRole[] = ["postgres", "stand-ins", "client", "s3rver", "other"];

interface Tracked {
  role: ProcessRole;
  jobId: string | undefined;
  startTicks: number;
  lastTicks: number;
  peakKb: number;
}

export interface ProcessUsage {
  /** CPU seconds spent by each role during the watch. */
  cpuSeconds: Record<ProcessRole, number>;
  /** Peak RSS in KiB of each Windmill job process seen, by job id. */
  jobPeakKb: Map<string, number>;
  /** The largest peak RSS in KiB of any client process seen (a pipeline's stages are separate processes). */
  clientPeakKb: number;
}

/** The role of one of our descendants, from its command line; undefined when it is none of ours (yet). */
function roleOf(argv: string[]): ProcessRole | undefined {
  const command = argv.join(" ");
  if (command.includes(JOB_ENTRY) || command.includes(BENCH_WORKER) || command.includes(S3_PIPE)) return "client";
  if (command.includes(S3RVER_ENTRY)) return "s3rver";
  const program = argv[0]?.split("/").at(-1) ?? "";
  if (program === "psql") return "client";
  // Postgres rewrites its title ("postgres: app_user postgres 127.0.0.1 COPY"), keeping the name first.
  if (program === "postgres" || program.startsWith("postgres:")) return "postgres";
  return undefined;
}

async function readText(path: string): Promise<string | undefined> {
  return readFile(path, "utf8").catch(() => undefined);
}

/** /proc/<pid>/stat fields after the command name (which may hold spaces, so count after its ")"). */
function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/** ppid is field 4; utime + stime are fields 14 and 15 (1-based, counting the pid and the name). */
function parentOf(fields: string[]): number {
  return Number(fields[1]);
}

function cpuTicks(fields: string[]): number {
  return Number(fields[11]) + Number(fields[12]);
}

function peakRssKb(status: string): number {
  return Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? 0);
}

/**
 * VmHWM in KiB of a live process whose arguments are `args` (argv[0] may differ: Debian's
 * psql is a wrapper that execs the real binary); undefined before its exec (a child that
 * still shares or copies its parent's memory would report the parent's) or once gone.
 */
export async function processPeakKb(pid: number, args: string[]): Promise<number | undefined> {
  const [cmdline, status] = await Promise.all([readText(`/proc/${pid}/cmdline`), readText(`/proc/${pid}/status`)]);
  const running = cmdline?.split("\0").slice(1, -1);
  if (!status || running?.join("\0") !== args.join("\0")) return undefined;
  return peakRssKb(status);
}

function envValue(environ: string | undefined, name: string): string | undefined {
  return environ?.split("\0").find((v) => v.startsWith(`${name}=`))?.slice(name.length + 1);
}

function jobIdOf(environ: string | undefined): string | undefined {
  return envValue(environ, "WM_JOB_ID");
}

/**
 * SIGKILLs the job processes this process's Windmill stand-in started for `jobId` (the
 * job itself, or any step of that flow), found by pid: their parent is this process.
 * Returns how many it killed.
 */
export async function killJobProcesses(jobId: string): Promise<number> {
  let killed = 0;
  for (const pid of (await readdir("/proc")).filter((name) => /^\d+$/.test(name)).map(Number)) {
    const [stat, cmdline] = await Promise.all([readText(`/proc/${pid}/stat`), readText(`/proc/${pid}/cmdline`)]);
    if (!stat || parentOf(statFields(stat)) !== process.pid || !cmdline?.includes(JOB_ENTRY)) continue;
    const environ = await readText(`/proc/${pid}/environ`);
    if (envValue(environ, "WM_JOB_ID") !== jobId && envValue(environ, "WM_ROOT_FLOW_JOB_ID") !== jobId) continue;
    process.kill(pid, "SIGKILL");
    killed++;
  }
  return killed;
}

export class ProcessMonitor {
  private readonly tracked = new Map<number, Tracked>();
  private timer: ReturnType<typeof setInterval> | undefined;
  private sampling: Promise<void> = Promise.resolve();

  /** Starts watching; processes alive now count only the CPU they spend from now on. */
  async start(): Promise<void> {
    await this.sample(true);
    this.timer = setInterval(() => {
      this.sampling = this.sampling.then(() => this.sample(false));
    }, SAMPLE_INTERVAL_MS);
  }

  async stop(): Promise<ProcessUsage> {
    clearInterval(this.timer);
    await this.sampling;
    await this.sample(false);
    const cpuSeconds = Object.fromEntries(PROCESS_ROLES.map((r) => [r, 0])) as Record<ProcessRole, number>;
    const jobPeakKb = new Map<string, number>();
    let clientPeakKb = 0;
    for (const t of this.tracked.values()) {
      clientPeakKb = Math.max(clientPeakKb, t.peakKb);
      cpuSeconds[t.role] += (t.lastTicks - t.startTicks) / TICKS_PER_SECOND;
      if (t.jobId) jobPeakKb.set(t.jobId, Math.max(jobPeakKb.get(t.jobId) ?? 0, t.peakKb));
    }
    return { cpuSeconds, jobPeakKb, clientPeakKb };
  }

  private async sample(baseline: boolean): Promise<void> {
    const pids = (await readdir("/proc")).filter((name) => /^\d+$/.test(name)).map(Number);
    const stats = new Map<number, string[]>();
    await Promise.all(pids.map(async (pid) => {
      const stat = await readText(`/proc/${pid}/stat`);
      if (stat) stats.set(pid, statFields(stat));
    }));
    const ours = (pid: number): boolean => {
      for (let p = pid, hops = 0; p > 1 && hops < pids.length; hops++) {
        if (p === process.pid) return true;
        p = parentOf(stats.get(p) ?? []);
      }
      return false;
    };
    await Promise.all([...stats].map(([pid, fields]) => this.sampleOne(pid, fields, ours(pid), baseline)));
  }

  private async sampleOne(pid: number, fields: string[], ours: boolean, baseline: boolean): Promise<void> {
    let tracked = this.tracked.get(pid);
    if (!tracked) {
      const argv = ours ? (await readText(`/proc/${pid}/cmdline`))?.split("\0").filter(Boolean) ?? [] : [];
      const role = !ours ? "other" : pid === process.pid ? "stand-ins" : roleOf(argv);
      // A child between fork and exec still shows its parent's command line: look again next time.
      if (!role) return;
      const jobId = argv.join(" ").includes(JOB_ENTRY) ? jobIdOf(await readText(`/proc/${pid}/environ`)) : undefined;
      tracked = { role, jobId, startTicks: 0, lastTicks: 0, peakKb: 0 };
      this.tracked.set(pid, tracked);
    }
    const ticks = cpuTicks(fields);
    if (baseline) tracked.startTicks = ticks;
    tracked.lastTicks = Math.max(tracked.lastTicks, ticks);
    if (tracked.role !== "client") return;
    // Gone since the stat read: keep the peak seen so far.
    const status = await readText(`/proc/${pid}/status`);
    if (status) tracked.peakKb = Math.max(tracked.peakKb, peakRssKb(status));
  }
}
