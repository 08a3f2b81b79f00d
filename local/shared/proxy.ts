// Proxy variables and the loopback stand-ins.
//
// Behind a company proxy, people set HTTP_PROXY / HTTPS_PROXY (often without NO_PROXY). Bun's
// fetch, which windmill-client and the AWS SDK's fetch handler use, then sends every request to
// the proxy, the stand-ins' 127.0.0.1 ones included, and the proxy cannot reach this machine's
// loopback. So starting any stand-in (alone or in the stack) adds the loopback names to
// NO_PROXY / no_proxy (after what the user set) for the process and every child it starts.
// A real worker's env is the operator's to set.
const LOOPBACK = ["127.0.0.1", "localhost", "::1"];

const PROXY_NAMES = ["HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"] as const;

/** The user's NO_PROXY and no_proxy entries, then each loopback name not already there. */
export function noProxyWithLoopback(env: NodeJS.ProcessEnv): string {
  const entries = [env.NO_PROXY, env.no_proxy].flatMap((v) => (v ?? "").split(",")).map((s) => s.trim()).filter(Boolean);
  const unique = [...new Set(entries)];
  return [...unique, ...LOOPBACK.filter((host) => !unique.includes(host))].join(",");
}

/** Makes this process and what it starts reach 127.0.0.1, localhost and ::1 directly, whatever proxy is set. */
export function bypassProxyForLoopback(env: NodeJS.ProcessEnv = process.env): void {
  env.NO_PROXY = env.no_proxy = noProxyWithLoopback(env);
}

/** True when the env sends HTTP(S) through a proxy unless NO_PROXY says otherwise (curl and Bun read both cases). */
export function proxyIsSet(env: NodeJS.ProcessEnv): boolean {
  return ["HTTP_PROXY", "HTTPS_PROXY"].some((name) => Boolean(env[name] || env[name.toLowerCase()]));
}

/**
 * What a Windmill worker hands its job processes (windmill-worker/src/lib.rs PROXY_ENVS):
 * NO_PROXY, HTTP_PROXY, HTTPS_PROXY, each read from the lower- or upper-case variable (lower
 * first), and NO_PROXY "localhost,127.0.0.1" when a proxy is set without one.
 */
export function workerProxyEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of PROXY_NAMES) {
    const value = env[name.toLowerCase()] ?? env[name];
    if (value !== undefined) out[name] = value;
  }
  if (out.NO_PROXY === undefined && (out.HTTP_PROXY !== undefined || out.HTTPS_PROXY !== undefined)) out.NO_PROXY = "localhost,127.0.0.1";
  return out;
}
