// aws:SourceIp as a gate knows it: the address of the peer that sent the request (IAM:
// "The aws:SourceIp condition key resolves to the IP address that the request originates
// from"). The stand-ins listen on loopback, so it is 127.0.0.1 (or ::1). An IPv4 client
// seen through a dual-stack socket (::ffff:a.b.c.d) is written as IPv4, as AWS reports it.
import { isIP } from "node:net";

const IPV4_MAPPED = "::ffff:";

/** The peer's address, or undefined when the socket no longer knows it (then the key is absent). */
export function sourceIpOf(socket: { remoteAddress?: string }): string | undefined {
  const address = socket.remoteAddress;
  if (!address) return undefined;
  const mapped = address.toLowerCase().startsWith(IPV4_MAPPED) ? address.slice(IPV4_MAPPED.length) : undefined;
  return mapped !== undefined && isIP(mapped) === 4 ? mapped : address;
}

/** The context entry a gate adds to its authorization checks: none when it does not know the address. */
export function sourceIpContext(sourceIp: string | undefined): Record<string, string> {
  return sourceIp ? { "aws:SourceIp": sourceIp } : {};
}
