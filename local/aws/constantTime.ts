// The one constant-time string comparison the gates use for signatures and session tokens.
import { timingSafeEqual } from "node:crypto";

/** Length is not secret (both sides are fixed-format); content is compared in constant time. */
export function constantTimeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a, "utf8");
  const right = Buffer.from(b, "utf8");
  return left.length === right.length && timingSafeEqual(left, right);
}
