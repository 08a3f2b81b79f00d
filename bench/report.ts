// Renders a run as ONE markdown table (printed as is), and bench/RESULTS.md: the table
// with the machine, the versions, the date and how to read it.
import { formatNumber, KIB, MIB, QUIET_MACHINE_CORES, QUIET_WAIT_MAX_MS } from "./context.ts";
import { PROCESS_ROLES } from "./processes.ts";
import { failedChecks, type BenchReport, type Measurement, type Section } from "./results.ts";

const SECTION_ORDER: Section[] = ["load", "export", "credentials"];
const NONE = "—";

/** The benchmark's own processes; "other" (the rest of the machine) is shown apart. */
const OWN_ROLES = PROCESS_ROLES.filter((r) => r !== "other");

function cpuCell(m: Measurement): string {
  const cpu = m.cpuSeconds;
  if (!cpu || !m.seconds || m.sample) return NONE;
  const own = OWN_ROLES.reduce((n, r) => n + cpu[r], 0);
  return `${OWN_ROLES.map((r) => cpu[r].toFixed(1)).join(" · ")} = ${(own / m.seconds).toFixed(2)} cores; other ${(cpu.other / m.seconds).toFixed(2)}`;
}

/** CPU the rest of the machine used while the measurements ran, in cores (0 on a quiet machine). */
export function otherLoad(report: BenchReport): number {
  const measured = report.measurements.filter((m) => m.cpuSeconds && m.seconds && !m.sample);
  const seconds = measured.reduce((n, m) => n + m.seconds!, 0);
  return seconds ? measured.reduce((n, m) => n + m.cpuSeconds!.other, 0) / seconds : 0;
}

function stepCell(m: Measurement): string {
  const sample = m.sample ? ` — sampled ${m.sample.rows.toLocaleString("en-US")} rows in ${m.sample.seconds.toFixed(1)} s, time extrapolated` : "";
  const value = m.value ? `: **${m.value}**` : "";
  return `${m.name}${sample}${value}`.replace(/\|/g, "\\|");
}

function targetsCell(m: Measurement): string {
  return m.targets.map((t) => `${t.met ? "met" : "**NOT MET**"}: ${t.label} (${t.detail})`).join("; ") || NONE;
}

function row(m: Measurement): string[] {
  const perSecond = (amount: number | undefined) => (amount !== undefined && m.seconds ? amount / m.seconds : undefined);
  const rowsPerSecond = perSecond(m.rows);
  const mibPerSecond = perSecond(m.bytes === undefined ? undefined : m.bytes / MIB);
  return [
    m.section,
    stepCell(m),
    m.rows === undefined ? NONE : m.rows.toLocaleString("en-US"),
    m.bytes === undefined ? NONE : (m.bytes / MIB).toFixed(1),
    m.seconds === undefined ? NONE : `${m.sample ? "≈ " : ""}${formatNumber(m.seconds)}`,
    rowsPerSecond === undefined ? NONE : formatNumber(rowsPerSecond),
    mibPerSecond === undefined ? NONE : formatNumber(mibPerSecond),
    m.peakKb === undefined ? NONE : `${(m.peakKb / KIB).toFixed(0)} MiB`,
    m.ratio === undefined ? NONE : `${formatNumber(m.ratio)}×`,
    cpuCell(m),
    targetsCell(m),
  ];
}

export function renderTable(report: BenchReport): string {
  const header = ["section", "step", "rows", "MiB", "seconds", "rows/s", "MiB/s", "peak RSS", "× limit", `CPU s: ${OWN_ROLES.join(" · ")} = cores; other`, "targets"];
  const ordered = SECTION_ORDER.flatMap((s) => report.measurements.filter((m) => m.section === s));
  const lines = [header, header.map(() => "---"), ...ordered.map(row)];
  return lines.map((cells) => `| ${cells.join(" | ")} |`).join("\n");
}

function environmentLines(report: BenchReport): string[] {
  const e = report.environment;
  return [
    `- Date: ${e.date}; run took ${(report.wallSeconds / 60).toFixed(1)} min${report.quick ? " (--quick)" : ""}`,
    `- Machine: ${e.cores} cores (${e.cpuModel}), ${e.memoryGiB} GiB memory; everything on loopback`,
    ...(report.workspaceDir ? [`- Workspace measured: **${report.workspaceDir}** (not this repo's f/)`] : []),
    `- Data: ${report.dataset.rows.toLocaleString("en-US")} rows, ${(report.dataset.bytes / MIB).toFixed(1)} MiB of CSV (--size ${(report.sizeBytes / MIB).toFixed(0)} MiB), split into ${report.objects} objects for the flow`,
    `- Versions: ${Object.entries(e.versions).map(([k, v]) => `${k} ${v}`).join(", ")}`,
    `- Other processes on the machine used ${otherLoad(report).toFixed(2)} cores on average during the measurements${otherLoad(report) > QUIET_MACHINE_CORES ? " — **the machine was not quiet: throughput numbers are disturbed**" : " (quiet)"}`,
  ];
}

const howToRead = (cores: number) => `How to read it:
- **× limit**: load rows compare rows/s with psql's \`\\copy\` through the same TLS IAM gateway
  (the first row); export rows compare MiB/s with the slower of psql's \`\\copy ... to\` a file
  and a plain upload of that file. Every ratio comes from this one run.
- **Hand-built** rows are the pipelines a person writes with no bundle, over the same stand-ins:
  \`aws s3 cp s3://b/k - | psql -c "\\copy t from stdin csv"\` and
  \`psql -c "\\copy (q) to stdout csv" | aws s3 cp - s3://b/k\`, with \`bench/s3_pipe.mjs\` (Node, the
  SDK's GetObject / lib-storage \`Upload\` of stdin, 8 MiB parts × 4) as \`aws s3 cp\`, joined by an
  OS pipe; they alternate with psql and the job (the faster run of each is compared); their peak
  RSS is the larger stage's.
- **Per-job overhead**: the load job on an empty object, several times back to back; CPU s are
  per job, so they show what every step of a flow pays before its first byte.
- Jobs ran as real Windmill job processes through the stand-in's webhook; their time is from
  the webhook call to the result (process start, imports and connection included), as is
  psql's (process start to exit).
- The INSERT baselines ran in their own Bun process (\`bench/worker.ts\`: CSV parsed in the
  process, \`postgres\` with unnamed statements as \`pg\`'s \`query(text, params)\` sends them,
  autocommit) on a bounded sample; their time for the whole data set is extrapolated.
- Peak RSS: VmHWM of the process doing the work (the job process, psql or the worker),
  sampled from /proc every 50–100 ms while it runs (VmHWM only grows).
- CPU s: CPU seconds during the step by Postgres (all its processes), the stand-ins' own
  process (Windmill, STS, the S3 SigV4 gate and the RDS TLS gateway share it), the client
  (job, psql or worker) and s3rver; "cores" is their sum over the wall time (${cores} = this
  machine saturated); "other" is every process not started by the benchmark, in cores.
  Before each step Postgres checkpoints and the benchmark waits (≤ ${QUIET_WAIT_MAX_MS / 1000} s) for other processes to idle.`;

export function renderResults(report: BenchReport): string {
  const failed = failedChecks(report);
  const checks = failed.length
    ? `**${failed.length} correctness check(s) failed:** ${failed.map((c) => `${c.name} (expected ${c.expected}, got ${c.actual})`).join("; ")}`
    : `All ${report.checks.length} correctness checks passed (row counts, exported bytes identical to psql's, STS call counts).`;
  return ["# Benchmark: S3 ↔ RDS PostgreSQL through the stand-ins", "", "`npm run bench` (bench/run.ts). " + checks, "",
    ...environmentLines(report), "", renderTable(report), "", howToRead(report.environment.cores), ""].join("\n");
}
