// The regions the AWS SDK knows, per partition, read from the SDK's own partitions data
// (@aws-sdk/core, util-endpoints/lib/aws/partitions.js: the generated partitions.json), so a
// new SDK brings new regions with it. The package's exports map hides the file, so it is
// imported by its path next to the package's package.json.

interface PartitionsInfo {
  partitions: { id: string; regionRegex: string; regions: Record<string, unknown> }[];
}

const PARTITIONS_FILE = "dist-es/submodules/client/util-endpoints/lib/aws/partitions.js";

const { partitionsInfo } = (await import(new URL(PARTITIONS_FILE, import.meta.resolve("@aws-sdk/core/package.json")).href)) as { partitionsInfo: PartitionsInfo };

/** Region codes per partition id (aws, aws-cn, aws-us-gov, ...). */
export const REGIONS_BY_PARTITION: ReadonlyMap<string, string[]> = new Map(
  partitionsInfo.partitions.map((p) => [p.id, Object.keys(p.regions).filter((r) => !r.startsWith("aws-"))]),
);

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
