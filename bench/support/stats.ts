// Summaries the benchmarks share (bench/<name>.ts; this folder holds no benchmark of its own).

/** The nearest-rank percentile: the smallest value at least p % of the values are at or below (NaN when empty). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

/** `n` with at most `digits` decimals. */
export const round = (n: number, digits = 2): number => Number(n.toFixed(digits));
