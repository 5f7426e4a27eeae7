import { useMemo } from 'react';
import type uPlot from 'uplot';
import { AXIS_STYLE, PALETTE, UPlotChart, X_AXIS_STYLE } from './UPlotChart';

export interface ScatterPoint {
  x: number;
  y: number;
}

export interface ScatterChartProps {
  groups: { label: string; points: ScatterPoint[]; color?: string; hollow?: boolean }[];
  xLabel: string;
  yLabel: string;
  height?: number;
  label?: string;
}

/**
 * Points only, several groups (e.g. Plug-in and Emulator FT against compression ratio). uPlot's aligned
 * data wants one sorted x column, so groups are merged on x and padded with nulls.
 */
export function ScatterChart({ groups, xLabel, yLabel, height = 260, label }: ScatterChartProps) {
  const key = groups.map((g) => `${g.label}|${g.color ?? ''}|${g.hollow ? 1 : 0}`).join(';');
  const options = useMemo<Omit<uPlot.Options, 'width' | 'height'>>(
    () => ({
      scales: {
        x: { time: false, range: (_u, min, max) => [Math.min(0, min), Math.max(1, max) * 1.04] },
        // uPlot derives y from the x-visible index window, which misses points sharing the last x; scan all.
        y: {
          range: (u) => {
            let mn = Infinity;
            let mx = -Infinity;
            for (const col of u.data.slice(1))
              for (const v of col)
                if (v !== null && v !== undefined && Number.isFinite(v)) {
                  mn = Math.min(mn, v);
                  mx = Math.max(mx, v);
                }
            if (!Number.isFinite(mn)) return [0, 1];
            const pad = (mx - mn) * 0.08 || Math.abs(mx) * 0.05 || 1;
            return [mn - pad, mx + pad];
          },
        },
      },
      axes: [
        { ...X_AXIS_STYLE, label: xLabel },
        { ...AXIS_STYLE, label: yLabel, size: 56 },
      ],
      legend: { live: true },
      cursor: { drag: { x: true, y: true } },
      series: [
        { label: xLabel },
        ...groups.map((g, i) => ({
          label: g.label,
          stroke: g.color ?? PALETTE[i % PALETTE.length],
          paths: () => null,
          points: { show: true, size: 8, width: 1.5, fill: g.hollow ? '#ffffff' : (g.color ?? PALETTE[i % PALETTE.length]) },
        })),
      ],
    }),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [key, xLabel, yLabel],
  );
  const data = useMemo(() => {
    const rows: { x: number; g: number; y: number }[] = [];
    groups.forEach((g, gi) => g.points.forEach((p) => rows.push({ x: p.x, g: gi, y: p.y })));
    rows.sort((a, b) => a.x - b.x);
    const x = rows.map((r) => r.x);
    const cols = groups.map((_, gi) => rows.map((r) => (r.g === gi ? r.y : null)));
    return [x, ...cols] as uPlot.AlignedData;
  }, [groups]);
  return <UPlotChart options={options} data={data} height={height} label={label ?? `${yLabel} vs ${xLabel}`} />;
}
