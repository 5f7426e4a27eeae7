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
}

/** Singular values in σ order (log scale) with kept components filled and dropped ones hollow grey. */
export function SpectrumChart({ sigma, kept, scores, height = 180, title }: SpectrumChartProps) {
  const options = useMemo<Omit<uPlot.Options, 'width' | 'height'>>(() => {
    const o: Omit<uPlot.Options, 'width' | 'height'> = {
      scales: { x: { time: false }, y: { distr: 3 } },
      axes: [
        { ...X_AXIS_STYLE, label: 'component (by σ)' },
        { ...AXIS_STYLE, label: 'σ', size: 56 },
      ],
      legend: { live: true },
      series: [
        { label: 'k' },
        { label: 'kept σ', stroke: '#2563eb', paths: () => null, points: { show: true, size: 5, fill: '#2563eb' } },
        { label: 'dropped σ', stroke: '#94a3b8', paths: () => null, points: { show: true, size: 5, fill: '#ffffff' } },
      ],
    };
    if (scores) {
      o.scales!.gcs = {};
      o.axes!.push({ ...AXIS_STYLE, scale: 'gcs', side: 1, label: 'GCS', size: 50, grid: { show: false } });
      o.series.push({ label: 'GCS', scale: 'gcs', stroke: '#d97706', width: 1 });
    }
    return o;
  }, [!!scores]);
  const data = useMemo(() => {
    const keptSet = new Set(kept);
    const x = sigma.map((_, i) => i);
    const k = sigma.map((s, i) => (keptSet.has(i) ? s : null));
    const d = sigma.map((s, i) => (keptSet.has(i) ? null : s));
    return (scores ? [x, k, d, scores] : [x, k, d]) as uPlot.AlignedData;
  }, [sigma, kept, scores]);
  return <UPlotChart options={options} data={data} height={height} label={title} />;
}
