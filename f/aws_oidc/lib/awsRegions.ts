// Regions the AWS SDK knows, per partition: a typo such as us-easst-1 is refused before any
// call is made or anything saved, naming the nearest known region. The SDK's own partitions
// data decides (@aws-sdk/core `partition()`, generated from partitions.json), so a new SDK
// brings new regions with it; no list is kept here.
import { partition } from "@aws-sdk/core/client";
import { checkRegion, InputError } from "./validate.ts";

/**
 * Region codes per partition, only to name the nearest one in an error: whether a region
 * exists is decided by the SDK's `partition()` above, so a newer SDK's region passes
 * without an edit here. Windmill bundles a locked script before running it
 * (bun_executor.rs generate_bun_bundle), and a bundle cannot read the SDK's own region list
 * (a data file its package's exports map hides), so the codes are written out;
 * tests/bundle/careless_input.test.ts checks they equal the installed SDK's.
 */
export const REGIONS_BY_PARTITION: ReadonlyMap<string, readonly string[]> = new Map([
  ["aws", [
    "af-south-1", "ap-east-1", "ap-east-2", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
    "ap-south-1", "ap-south-2", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4",
    "ap-southeast-5", "ap-southeast-6", "ap-southeast-7", "ca-central-1", "ca-west-1", "eu-central-1",
    "eu-central-2", "eu-north-1", "eu-south-1", "eu-south-2", "eu-west-1", "eu-west-2", "eu-west-3",
    "il-central-1", "me-central-1", "me-south-1", "me-west-1", "mx-central-1", "sa-east-1", "sa-west-1",
    "us-east-1", "us-east-2", "us-west-1", "us-west-2",
  ]],
  ["aws-cn", ["cn-north-1", "cn-northwest-1"]],
  ["aws-eusc", ["eusc-de-east-1"]],
  ["aws-iso", ["us-iso-east-1", "us-iso-west-1"]],
  ["aws-iso-b", ["us-isob-east-1", "us-isob-west-1"]],
  ["aws-iso-e", ["eu-isoe-west-1"]],
  ["aws-iso-f", ["us-isof-east-1", "us-isof-south-1"]],
  ["aws-us-gov", ["us-gov-east-1", "us-gov-west-1"]],
]);

/** The partition the SDK lists `region` in, or undefined when it does not list it. */
export function partitionOfRegion(region: string): string | undefined {
  const info = partition(region) as { name: string; description?: string };
  return info.description === undefined ? undefined : info.name;
}

/**
 * A region code the SDK knows, in `rolePartition` when given (the role ARN's partition),
 * else in any partition. `input` names the input in the error.
 */
export function checkKnownRegion(input: string, value: unknown, rolePartition?: string): string {
  const region = checkRegion(input, value);
  const found = partitionOfRegion(region);
  if (found && (!rolePartition || found === rolePartition)) return region;
  const known = rolePartition ? REGIONS_BY_PARTITION.get(rolePartition) ?? [] : [...REGIONS_BY_PARTITION.values()].flat();
  const nearest = nearestRegion(region, known);
  if (found) {
    throw new InputError(input, `"${region}" is a region of partition ${found}, and the role ARN is in partition ${rolePartition}`,
      `Use a role of that partition (arn:${found}:iam::<account>:role/<name>)${nearest ? `, or a region of ${rolePartition}, e.g. ${nearest}` : ""}`);
  }
  const where = rolePartition ? ` in partition ${rolePartition} (the role ARN's)` : "";
  throw new InputError(input, `"${region}" is not a region the AWS SDK knows${where}`,
    `${nearest ? `Did you mean ${nearest}? ` : ""}Use a region code from the AWS console's region menu (a region newer than this bundle's AWS SDK needs a newer SDK)`);
}

/** Levenshtein distance: insertions, deletions and substitutions each cost 1. */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length];
}

/** The known region closest to `region` (fewest edits; ties: the first in the SDK's order). */
export function nearestRegion(region: string, known: readonly string[]): string | undefined {
  let best: { region: string; distance: number } | undefined;
  for (const candidate of known) {
    const distance = editDistance(region, candidate);
    if (!best || distance < best.distance) best = { region: candidate, distance };
  }
  return best?.region;
}
