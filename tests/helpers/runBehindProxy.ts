// Runs a command as a user behind a company proxy runs it: HTTP_PROXY / HTTPS_PROXY (both cases)
// point at a proxy that tunnels HTTPS to the outside world (so `bun install` still reaches the
// registry) and refuses anything bound for loopback, with no NO_PROXY. Exits with the command's
// code, or 1 if any call to a stand-in was sent to the proxy.
//
//   bun tests/helpers/runBehindProxy.ts npm test
//   bun tests/helpers/runBehindProxy.ts npm run demo
import { spawn } from "node:child_process";
import { behindProxyEnv, startRecordingProxy } from "./proxy.ts";

const [command, ...args] = process.argv.slice(2);
if (!command) {
  console.error("usage: bun tests/helpers/runBehindProxy.ts <command> [args…]");
  process.exit(2);
}

const proxy = await startRecordingProxy();
const child = spawn(command, args, { env: behindProxyEnv(process.env, proxy.url), stdio: "inherit" });
const code = await new Promise<number>((resolve) => child.once("exit", (c, signal) => resolve(c ?? (signal ? 1 : 0))));
await proxy.close();

const loopback = proxy.loopbackRequests();
console.error(`behind the proxy: ${proxy.requests.length} requests tunnelled or refused, ${loopback.length} bound for loopback`);
for (const r of loopback) console.error(`  sent to the proxy: ${r.method} ${r.target}`);
process.exit(loopback.length > 0 ? 1 : code);
