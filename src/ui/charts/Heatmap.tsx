import { useEffect, useMemo, useRef } from 'react';

const FONT = '11px system-ui, sans-serif';

/** Widest of `texts` in the heatmap's font (px); a rough per-character width where no canvas exists. */
function textWidth(texts: string[]): number {
  const g = typeof document !== 'undefined' ? document.createElement('canvas').getContext('2d') : null;
  if (g) g.font = FONT;
  return texts.reduce((w, t) => Math.max(w, g ? g.measureText(t).width : t.length * 6.5), 0);
}

export interface HeatmapProps {
  rows: string[];
  cols: string[];
  /** values[r][c] in [0, 1] (e.g. kept fraction), null for "not applicable". */
  values: (number | null)[][];
  /** Text drawn in each cell (e.g. "24/64"); falls back to the percentage. */
  labels?: (string | null)[][];
  title: string;
}

/** Small canvas heatmap (layers × projections: kept rank or width fraction). uPlot has no heatmap. */
export function Heatmap({ rows, cols, values, labels, title }: HeatmapProps) {
  const ref = useRef<HTMLCanvasElement>(null);
  // Cells and the row-label gutter are as wide as their widest text (Qwen2.5-0.5B's "2432/4864" does not fit
  // the 56 px that suits "39/768").
  const cellTexts = useMemo(() => [...cols, ...(labels ?? []).flat().filter((t): t is string => !!t), '100%'], [cols, labels]);
  const cellW = useMemo(() => Math.max(56, Math.ceil(textWidth(cellTexts)) + 10), [cellTexts]);
  const cellH = 18;
  const left = useMemo(() => Math.max(56, Math.ceil(textWidth(rows)) + 12), [rows]);
  const top = 20;
  const width = left + cols.length * cellW + 4;
  const height = top + rows.length * cellH + 4;

  useEffect(() => {
    const c = ref.current;
    if (!c) return;
    const dpr = window.devicePixelRatio || 1;
    c.width = width * dpr;
    c.height = height * dpr;
    const g = c.getContext('2d');
    if (!g) return;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, width, height);
    g.font = FONT;
    g.textBaseline = 'middle';
    g.textAlign = 'center';
    g.fillStyle = '#475569';
    cols.forEach((name, j) => g.fillText(name, left + j * cellW + cellW / 2, top / 2));
    g.textAlign = 'right';
    rows.forEach((name, i) => g.fillText(name, left - 6, top + i * cellH + cellH / 2));
    g.textAlign = 'center';
    rows.forEach((_, i) =>
      cols.forEach((_, j) => {
        const v = values[i]?.[j] ?? null;
        const x = left + j * cellW;
        const y = top + i * cellH;
        if (v === null) {
          g.fillStyle = '#f1f5f9';
        } else {
          // white -> blue ramp; stays readable in print.
          const t = Math.max(0, Math.min(1, v));
          g.fillStyle = `rgb(${Math.round(255 - t * 218)}, ${Math.round(255 - t * 156)}, ${Math.round(255 - t * 20)})`;
        }
        g.fillRect(x + 1, y + 1, cellW - 2, cellH - 2);
        const text = labels?.[i]?.[j] ?? (v === null ? '' : `${Math.round(v * 100)}%`);
        g.fillStyle = v !== null && v > 0.6 ? '#ffffff' : '#0f172a';
        g.fillText(text, x + cellW / 2, y + cellH / 2 + 0.5);
      }),
    );
  }, [rows, cols, values, labels, width, height, cellW, left]);

  return <canvas ref={ref} className="heatmap" role="img" aria-label={title} style={{ width, height }} />;
}
