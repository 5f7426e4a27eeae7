/** Pure geometry for PlaneChart (unit-tested): fitted ranges, ticks, Pareto frontiers, overlap spreading. */

export interface PlanePoint {
  x: number;
  y: number;
  /** Half-widths of the error bars (e.g. one standard deviation over seeds). */
  xErr?: number;
  yErr?: number;
  hollow?: boolean;
  tip?: string;
}

/** A range around the data, padded 8% each side; not forced through 0 (data at 3.3–4 gets an axis at 3.3–4). */
export function fitRange(values: number[]): [number, number] {
  const v = values.filter((x) => Number.isFinite(x));
  if (v.length === 0) return [0, 1];
  let lo = Math.min(...v);
  let hi = Math.max(...v);
  if (hi - lo < 1e-12) {
    const pad = Math.abs(hi) * 0.05 || 0.05;
    return [lo - pad, hi + pad];
  }
  const pad = (hi - lo) * 0.08;
  lo -= pad;
  hi += pad;
  return [lo, hi];
}

/** Round tick values (1, 2, 5 × 10^k steps) inside [lo, hi]. */
export function niceTicks(lo: number, hi: number, target = 5): number[] {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const raw = span / Math.max(1, target);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(Number(t.toPrecision(12)));
  return out;
}

/**
 * The points no other point beats on both axes (larger x and larger y are better), in x order: the
 * frontier line of one method on the privacy–utility plane.
 */
export function paretoFrontier<P extends { x: number; y: number }>(points: P[]): P[] {
  const byX = [...points].sort((a, b) => b.x - a.x || b.y - a.y);
  const out: P[] = [];
  let best = -Infinity;
  for (const p of byX) {
    if (p.y > best) {
      out.push(p);
      best = p.y;
    }
  }
  return out.reverse();
}

/**
 * Pixel offsets that fan out points falling within `radius` px of an earlier point (any series), so equal
 * results stay visible; the first of a cluster stays put, the others go round it.
 */
export function spreadCoincident(series: [number, number][][], radius: number): [number, number][][] {
  const placed: [number, number][] = [];
  return series.map((pts) =>
    pts.map(([x, y]) => {
      const near = placed.filter(([a, b]) => Math.hypot(a - x, b - y) < radius * 0.6).length;
      placed.push([x, y]);
      if (near === 0) return [0, 0];
      const angle = (near - 1) * ((2 * Math.PI) / 6) - Math.PI / 2;
      const r = radius * (1 + Math.floor((near - 1) / 6) * 0.8);
      return [r * Math.cos(angle), r * Math.sin(angle)];
    }),
  );
}

/** Mean and sample standard deviation (0 for a single value). */
export function meanStd(v: number[]): { mean: number; std: number } {
  const n = v.length;
  const mean = v.reduce((a, x) => a + x, 0) / n;
  const std = n > 1 ? Math.sqrt(v.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1)) : 0;
  return { mean, std };
}
