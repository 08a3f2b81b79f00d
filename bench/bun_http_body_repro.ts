// Attempted minimal reproduction (issue 15, item 4): does a Bun client's peak RSS grow with
// the NUMBER of 8 MiB request bodies it sends, though at most 4 are in flight? The export's
// upload half did (S3UploadStream alone, no COPY: 182 → 234 MiB for 9 → 33 parts; the COPY
// half alone flat at ~110 MiB), so this sends the same bodies with nothing else: PUTs to a
// sink server in another process, through node:http (what @smithy/node-http-handler, the
// SDK's default, uses) and through fetch. Result on 2026-12-02 (bun 1.4.5): it does NOT
// grow here (node:http 107/117/109 MiB for 8/32/128 bodies, fetch 75/83/86), so bare
// node:http is not the cause by itself; the growth needs the SDK's request path with
// node:http (see bench/RESULTS.md), and its fetch handler avoids most of it.
//
//   bun bench/bun_http_body_repro.ts            prints peak RSS for 8 and 32 bodies per client
//   bun bench/bun_http_body_repro.ts <client> <bodies> <port>   one measurement (internal)
import { request } from "node:http";
import { readFileSync } from "node:fs";

const PART = 8 * 1024 * 1024;
const IN_FLIGHT = 4;
const CLIENTS = ["node:http", "fetch"] as const;
type Client = (typeof CLIENTS)[number];

function peakMib(): number {
  return Number(/VmHWM:\s+(\d+)/.exec(readFileSync("/proc/self/status", "utf8"))![1]) / 1024;
}

function putNodeHttp(port: number, body: Buffer<ArrayBuffer>): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, method: "PUT", path: "/", headers: { "content-length": String(body.length) } }, (res) => {
      res.resume();
      res.on("end", () => resolve());
    });
    req.on("error", reject);
    req.end(body);
  });
}

async function putFetch(port: number, body: Buffer<ArrayBuffer>): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${port}/`, { method: "PUT", body });
  await res.arrayBuffer();
}

/** `bodies` PUTs of one reused 8 MiB buffer, IN_FLIGHT at a time, as the export's part pool sends them. */
async function measure(client: Client, bodies: number, port: number): Promise<void> {
  const buffer = Buffer.alloc(PART, 0x61);
  const put = client === "fetch" ? putFetch : putNodeHttp;
  let next = 0;
  const lane = async () => { while (next++ < bodies) await put(port, buffer.subarray(0, PART)); };
  await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
  console.log(JSON.stringify({ client, bodies, peakMib: Math.round(peakMib()) }));
}

async function main(): Promise<void> {
  const [client, bodies, portArg] = process.argv.slice(2);
  if (client) return measure(client as Client, Number(bodies), Number(portArg));
  const server = Bun.spawn([process.execPath, "-e", `
    const s = Bun.serve({ port: 0, hostname: "127.0.0.1", maxRequestBodySize: 1 << 30, async fetch(req) { let n = 0; for await (const c of req.body) n += c.length; return new Response(String(n)); } });
    console.log(s.port);`], { stdout: "pipe" });
  const reader = server.stdout.getReader();
  const port = new TextDecoder().decode((await reader.read()).value).trim();
  try {
    for (const c of CLIENTS) for (const n of [8, 32, 128]) {
      const child = Bun.spawn([process.execPath, import.meta.path, c, String(n), port], { stdout: "inherit", stderr: "inherit" });
      await child.exited;
    }
  } finally {
    server.kill();
  }
}

await main();
