// A received request's header as SigV4 reads it, for the gates' HeaderLookup.
import type { IncomingMessage } from "node:http";

/** Every occurrence of the header (names lower case), trimmed, joined by commas; undefined when absent. */
export function headerValue(req: IncomingMessage, name: string): string | undefined {
  const values: string[] = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i]!.toLowerCase() === name) values.push(req.rawHeaders[i + 1]!.trim());
  }
  return values.length ? values.join(",") : undefined;
}
