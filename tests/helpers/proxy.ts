// A company proxy as the tests need one: it tunnels HTTPS (CONNECT) to the outside world, so
// a cold `bun install` still reaches the registry, and refuses anything bound for loopback,
// which it could not reach either. Every request it saw is kept, so a test can show that no
// call to a stand-in was sent to it.
import { connect, createServer, type AddressInfo, type Socket } from "node:net";

export interface ProxyRequest {
  method: string;
  target: string;
}

export interface RecordingProxy {
  url: string;
  requests: ProxyRequest[];
  /** The requests that were bound for 127.0.0.1, localhost or ::1. */
  loopbackRequests(): ProxyRequest[];
  close(): Promise<void>;
}

const END_OF_HEAD = "\r\n\r\n";

/** `env` as a user's behind the proxy at `url`: both proxy variables in both cases, no NO_PROXY. */
export function behindProxyEnv(env: NodeJS.ProcessEnv, url: string): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env, HTTP_PROXY: url, HTTPS_PROXY: url, http_proxy: url, https_proxy: url };
  delete out.NO_PROXY;
  delete out.no_proxy;
  return out;
}

/** `host:port` (IPv6 in brackets) or an absolute URL, as a request line names its target. */
function targetHost(method: string, target: string): { host: string; port: number } {
  if (method !== "CONNECT") {
    const url = new URL(target);
    return { host: url.hostname.replace(/^\[|\]$/g, ""), port: Number(url.port || 80) };
  }
  const match = /^\[?(.+?)\]?:(\d+)$/.exec(target);
  return { host: match?.[1] ?? target, port: Number(match?.[2] ?? 443) };
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\./.test(host);
}

function refuse(client: Socket): void {
  client.end("HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
}

export async function startRecordingProxy(): Promise<RecordingProxy> {
  const requests: ProxyRequest[] = [];
  const server = createServer((client) => {
    let head = "";
    client.on("error", () => client.destroy());
    const onData = (chunk: Buffer) => {
      head += chunk.toString("latin1");
      if (!head.includes(END_OF_HEAD)) return;
      client.off("data", onData);
      const [method = "", target = ""] = head.split("\r\n", 1)[0]!.split(" ");
      requests.push({ method, target });
      let host: { host: string; port: number };
      try {
        host = targetHost(method, target);
      } catch {
        return refuse(client);
      }
      // Plain HTTP through the proxy is never needed here; loopback is what it must not see.
      if (method !== "CONNECT" || isLoopback(host.host)) return refuse(client);
      const upstream = connect(host.port, host.host, () => {
        client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
        upstream.pipe(client);
        client.pipe(upstream);
      });
      upstream.on("error", () => refuse(client));
    };
    client.on("data", onData);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    loopbackRequests: () => requests.filter((r) => {
      try {
        return isLoopback(targetHost(r.method, r.target).host);
      } catch {
        return false;
      }
    }),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
