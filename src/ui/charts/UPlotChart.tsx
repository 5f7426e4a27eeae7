/**
 * Thin React wrapper over uPlot (canvas, ~50 KB, no eval, no injected <style>): creates the plot once per
 * options identity, pushes new data with setData (cheap enough for live loss curves), and follows the
 * container's width with a ResizeObserver.
 */
import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface UPlotChartProps {
  options: Omit<uPlot.Options, 'width' | 'height'>;
  data: uPlot.AlignedData;
  height: number;
  /** Accessible label for the canvas region. */
  label: string;
}

export function UPlotChart({ options, data, height, label }: UPlotChartProps) {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const dataRef = useRef(data);
  dataRef.current = data;

  useEffect(() => {
    const el = host.current;
    if (!el) return;
    const width = Math.max(200, el.clientWidth);
    // A live legend shows values only while the cursor is on the plot; idle, it is a plain key (uPlot
    // would print "--" for every series, which reads as missing data in a screenshot).
    const idleLegend = (p: uPlot) => p.root.querySelector('.u-legend')?.classList.toggle('u-live', p.legend.idx != null);
    const hooks = { ...options.hooks, setLegend: [...(options.hooks?.setLegend ?? []), idleLegend] };
    const u = new uPlot({ ...options, hooks, width, height }, dataRef.current, el);
    if (options.legend?.live !== false) idleLegend(u);
    plot.current = u;
    const ro = new ResizeObserver(() => {
      const w = Math.max(200, el.clientWidth);
      if (Math.abs(w - u.width) > 1) u.setSize({ width: w, height });
    });
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
  }, [options, height]);

  useEffect(() => {
    plot.current?.setData(data);
  }, [data]);

  return <div className="chart" ref={host} role="img" aria-label={label} />;
}

export const PALETTE = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#4b5563'];

export const AXIS_STYLE: Partial<uPlot.Axis> = {
  stroke: '#475569',
  grid: { stroke: '#eef2f7', width: 1 },
  ticks: { stroke: '#cbd5e1', width: 1, size: 4 },
  font: '11px system-ui, sans-serif',
  labelFont: '11px system-ui, sans-serif',
};

/** x axes: tighter than uPlot's default so the legend sits close to the plot. */
export const X_AXIS_STYLE: Partial<uPlot.Axis> = { ...AXIS_STYLE, size: 28, labelSize: 16, labelGap: 0 };

/** Bars and counts read wrong unless the value axis includes zero. */
export const fromZero: uPlot.Range.Function = (_u, min, max) => [Math.min(0, min), max > 0 ? max * 1.08 : 1];
