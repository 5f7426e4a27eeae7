import { useMemo } from 'react';
import type uPlot from 'uplot';
import { AXIS_STYLE, PALETTE, UPlotChart, X_AXIS_STYLE } from './UPlotChart';

export interface LineSeries {
  label: string;
  values: (number | null)[];
  color?: string;
  dash?: boolean;
}

export interface LineChartProps {
  x: number[];
  series: LineSeries[];
  xLabel: string;
  yLabel: string;
  height?: number;
  logY?: boolean;
  label?: string;
}

/** Live curves (loss, valid loss, tokens/s): one shared x axis, any number of series. */
export function LineChart({ x, series, xLabel, yLabel, height = 220, logY = false, label }: LineChartProps) {
  const key = series.map((s) => `${s.label}|${s.color ?? ''}|${s.dash ? 1 : 0}`).join(';');
  const options = useMemo<Omit<uPlot.Options, 'width' | 'height'>>(
    () => ({
      scales: { x: { time: false }, y: logY ? { distr: 3 } : {} },
      axes: [
        { ...X_AXIS_STYLE, label: xLabel, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000] },
        { ...AXIS_STYLE, label: yLabel, size: 56 },
      ],
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
      series: [
        { label: xLabel },
        ...series.map((s, i) => ({
          label: s.label,
          stroke: s.color ?? PALETTE[i % PALETTE.length],
          width: 1.5,
          dash: s.dash ? [5, 4] : undefined,
          spanGaps: true,
          points: { show: x.length < 40 },
        })),
      ],
    }),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [key, xLabel, yLabel, logY, x.length < 40],
  );
  const data = useMemo(() => [x, ...series.map((s) => s.values)] as uPlot.AlignedData, [x, series]);
  return <UPlotChart options={options} data={data} height={height} label={label ?? `${yLabel} by ${xLabel}`} />;
}
