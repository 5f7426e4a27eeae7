import { useMemo } from 'react';
import type uPlot from 'uplot';
import { AXIS_STYLE, UPlotChart, X_AXIS_STYLE } from './UPlotChart';

export interface SpectrumChartProps {
  sigma: number[];
  /** Component indices kept by the compression; the rest are drawn as dropped. */
  kept: number[];
  /** Optional per-component score (GCS) on a second axis. */
  scores?: number[];
  height?: number;
  title: string;
  /** Draws the rank cut: a dashed line after this many components (the kept count), labelled. */
  cut?: number;
}

/** Singular values in σ order (log scale) with kept components filled and dropped ones hollow grey. */
export function SpectrumChart({ sigma, kept, scores, height = 180, title, cut }: SpectrumChartProps) {
  const options = useMemo<Omit<uPlot.Options, 'width' | 'height'>>(() => {
    const o: Omit<uPlot.Options, 'width' | 'height'> = {
      scales: { x: { time: false }, y: { distr: 3 } },
      axes: [
        { ...X_AXIS_STYLE, label: 'component (by σ)' },
        { ...AXIS_STYLE, label: 'σ', size: 56 },
      ],
      // Values under the cursor would crowd the legend; the markers say kept / dropped.
      legend: { live: false },
      series: [
        { label: 'component' },
        // fill only colours the legend's marker (no paths are drawn): filled = kept, hollow = dropped, as plotted.
        { label: 'kept σ', stroke: '#2563eb', fill: '#2563eb', paths: () => null, points: { show: true, size: 5, fill: '#2563eb' } },
        { label: 'dropped σ', stroke: '#94a3b8', fill: '#ffffff', paths: () => null, points: { show: true, size: 5, fill: '#ffffff' } },
      ],
    };
    if (scores) {
      o.scales!.gcs = {};
      o.axes!.push({ ...AXIS_STYLE, scale: 'gcs', side: 1, label: 'GCS', size: 50, grid: { show: false } });
      o.series.push({ label: 'GCS', scale: 'gcs', stroke: '#d97706', width: 1 });
    }
    if (cut !== undefined && cut > 0) {
      o.hooks = {
        draw: [
          (u) => {
            const x = Math.round(u.valToPos(cut - 0.5, 'x', true));
            const { top, height: h } = u.bbox;
            const g = u.ctx;
            g.save();
            g.strokeStyle = '#dc2626';
            g.setLineDash([4, 3]);
            g.lineWidth = devicePixelRatio;
            g.beginPath();
            g.moveTo(x, top);
            g.lineTo(x, top + h);
            g.stroke();
            g.setLineDash([]);
            g.fillStyle = '#dc2626';
            g.font = `${11 * devicePixelRatio}px system-ui, sans-serif`;
            g.textAlign = 'left';
            g.textBaseline = 'top';
            g.fillText(`cut: ${cut} kept`, x + 4 * devicePixelRatio, top + 4 * devicePixelRatio);
            g.restore();
          },
        ],
      };
    }
    return o;
  }, [!!scores, cut]);
  const data = useMemo(() => {
    const keptSet = new Set(kept);
    const x = sigma.map((_, i) => i);
    const k = sigma.map((s, i) => (keptSet.has(i) ? s : null));
    const d = sigma.map((s, i) => (keptSet.has(i) ? null : s));
    return (scores ? [x, k, d, scores] : [x, k, d]) as uPlot.AlignedData;
  }, [sigma, kept, scores]);
  return (
    <div className="spectrum">
      <UPlotChart options={options} data={data} height={height} label={title} />
    </div>
  );
}
