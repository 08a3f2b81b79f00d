// Session policies an AssumeRole* call passes (an inline Policy and managed PolicyArns):
// parsed, resolved against the config's managed policies and sized as PackedPolicySize.
import { deflateRawSync } from "node:zlib";
import type { StsConfig } from "./config.ts";
import { malformedPolicy, StsErrorReply } from "./errors.ts";
import { parsePolicyDocument, type PolicyDocument } from "./iamPolicy.ts";
import { PACKED_POLICY_BUDGET_BYTES } from "./limits.ts";
import type { AssumeRoleInput } from "./params.ts";

interface SessionPolicies {
  /** Undefined when the call passed none: then the role's policies alone apply. */
  documents?: PolicyDocument[];
  packedPolicySize?: number;
}

function packedPolicySize(policyJson: string | undefined, arns: string[]): number {
  const packed = deflateRawSync(Buffer.from(`${policyJson ?? ""}${arns.join(",")}`, "utf8"));
  return Math.ceil((packed.length * 100) / PACKED_POLICY_BUDGET_BYTES);
}

export function resolveSessionPolicies(input: AssumeRoleInput, config: StsConfig): SessionPolicies {
  if (input.policy === undefined && input.policyArns.length === 0) return {};
  const documents: PolicyDocument[] = [];
  let minified: string | undefined;
  if (input.policy !== undefined) {
    const parsed = parsePolicyDocument(input.policy, "identity");
    if (!parsed.ok) throw malformedPolicy(parsed.problem);
    documents.push(parsed.document);
    minified = JSON.stringify(parsed.document);
  }
  for (const arn of input.policyArns) {
    const managed = config.managedPolicies.find((m) => m.arn === arn);
    if (!managed) throw malformedPolicy(`Policy ${arn} does not exist or is not attachable.`);
    documents.push(managed.document);
  }
  const size = packedPolicySize(minified, input.policyArns);
  if (size > 100) throw new StsErrorReply("PackedPolicyTooLarge", `Packed policy consumes ${size}% of allotted space, please use smaller policy.`);
  return { documents, packedPolicySize: size };
}
