// Regions the AWS SDK knows, per partition: a typo such as us-easst-1 is refused before any
// call is made or anything saved, naming the nearest known region. The SDK's own partitions
// data decides (@aws-sdk/core `partition()`, generated from partitions.json), so a new SDK
// brings new regions with it; no list is kept here.
import { partition } from "@aws-sdk/core/client";
import { checkRegion, InputError } from "./validate.ts";

interface PartitionsInfo {
  partitions: { id: string; regions: Record<string, unknown> }[];
}

/**
 * The full region list, for naming the nearest: the data file behind `partition()`. The
 * package's exports map hides it, so it is imported by its path next to package.json; if a
 * later SDK moves it, only the suggestion is lost.
 */
const PARTITIONS_FILE = "dist-es/submodules/client/util-endpoints/lib/aws/partitions.js";

async function loadRegionsByPartition(): Promise<Map<string, string[]>> {
  try {
    const url = new URL(PARTITIONS_FILE, import.meta.resolve("@aws-sdk/core/package.json"));
    const { partitionsInfo } = (await import(url.href)) as { partitionsInfo: PartitionsInfo };
    // aws-global and the like are endpoints' pseudo-regions, not region codes.
    return new Map(partitionsInfo.partitions.map((p) => [p.id, Object.keys(p.regions).filter((r) => !r.startsWith("aws-"))]));
  } catch {
    return new Map();
  }
}

export const REGIONS_BY_PARTITION: ReadonlyMap<string, string[]> = await loadRegionsByPartition();

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
export function nearestRegion(region: string, known: string[]): string | undefined {
  let best: { region: string; distance: number } | undefined;
  for (const candidate of known) {
    const distance = editDistance(region, candidate);
    if (!best || distance < best.distance) best = { region: candidate, distance };
  }
  return best?.region;
}
