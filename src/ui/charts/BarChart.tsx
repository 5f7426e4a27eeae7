import { useMemo } from 'react';
import uPlot from 'uplot';
import { AXIS_STYLE, PALETTE, UPlotChart, X_AXIS_STYLE, fromZero } from './UPlotChart';
import { compactTick } from '../format';

export interface BarChartProps {
  /** Category positions (e.g. layer indices). */
  x: number[];
  bars: { label: string; values: (number | null)[]; color?: string };
  /** Optional extra series drawn as lines over the bars (on their own right-hand axis). */
  overlay?: { label: string; values: (number | null)[]; color?: string; unit: string; sameScale?: boolean };
  xLabel: string;
  yLabel: string;
  height?: number;
  label?: string;
}

const barsPath = uPlot.paths.bars ? uPlot.paths.bars({ size: [0.7, 60] }) : undefined;

/** Per-layer quantities: sensitivity, GCS, parameters, kept fraction. */
export function BarChart({ x, bars, overlay, xLabel, yLabel, height = 200, label }: BarChartProps) {
  const options = useMemo<Omit<uPlot.Options, 'width' | 'height'>>(() => {
    const o: Omit<uPlot.Options, 'width' | 'height'> = {
      scales: { x: { time: false, range: (_u, min, max) => [min - 0.6, max + 0.6] }, y: { range: fromZero } },
      axes: [
        { ...X_AXIS_STYLE, label: xLabel, incrs: [1, 2, 5, 10, 20, 50] },
        // Large counts as "15M", not "15,000,000": the long form ran into the axis label.
        { ...AXIS_STYLE, label: yLabel, size: 56, values: (_u, splits) => splits.map(compactTick) },
      ],
      // The bars are labelled on the axes; values under the cursor would only print "--" in a screenshot.
      legend: { live: false },
      series: [
        { label: xLabel },
        {
          label: bars.label,
          stroke: bars.color ?? PALETTE[0],
          fill: `${bars.color ?? PALETTE[0]}99`,
          paths: barsPath,
          points: { show: false },
        },
      ],
    };
    if (overlay && overlay.sameScale) {
      o.series.push({ label: overlay.label, stroke: overlay.color ?? PALETTE[1], width: 1.5, points: { show: true, size: 5 } });
    } else if (overlay) {
      o.scales!.y2 = { range: fromZero };
      o.axes!.push({ ...AXIS_STYLE, scale: 'y2', side: 1, label: overlay.unit, size: 50, grid: { show: false } });
      o.series.push({
        label: overlay.label,
        scale: 'y2',
        stroke: overlay.color ?? PALETTE[1],
        width: 1.5,
        points: { show: true, size: 5 },
      });
    }
    return o;
  }, [xLabel, yLabel, bars.label, bars.color, overlay?.label, overlay?.color, overlay?.unit, overlay?.sameScale]);
  const data = useMemo(
    () => (overlay ? [x, bars.values, overlay.values] : [x, bars.values]) as uPlot.AlignedData,
    [x, bars.values, overlay?.values],
  );
  return <UPlotChart options={options} data={data} height={height} label={label ?? `${yLabel} per ${xLabel}`} />;
}
