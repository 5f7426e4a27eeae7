/**
 * An SVG x–y chart for comparing settings the way the offsite-tuning papers do: markers per series (shape
 * and colour drawn identically in the legend), optional error bars, an optional Pareto frontier or a sweep
 * line per series, axes fitted to the data, and coincident points nudged apart so none hides another
 * (each marker's tooltip gives its exact values). SVG rather than uPlot: uPlot wants one shared sorted x
 * column and has no error bars or per-series frontiers.
 */
import { niceTicks, paretoFrontier, fitRange, spreadCoincident, type PlanePoint } from './plane';

export type MarkerShape = 'circle' | 'square' | 'triangle' | 'diamond' | 'cross';

export interface PlaneSeries {
  label: string;
  color: string;
  shape: MarkerShape;
  points: PlanePoint[];
  /** 'frontier': the series' Pareto frontier (both axes larger is better); 'sweep': points joined in x order. */
  line?: 'frontier' | 'sweep';
}

const W = 520;
const H = 300;
const M = { l: 56, r: 12, t: 10, b: 42 };

function Marker({
  shape,
  x,
  y,
  color,
  size = 5,
  hollow,
}: {
  shape: MarkerShape;
  x: number;
  y: number;
  color: string;
  size?: number;
  hollow?: boolean;
}) {
  const fill = hollow ? '#ffffff' : color;
  const common = { stroke: color, strokeWidth: 1.6, fill, fillOpacity: hollow ? 1 : 0.75 };
  switch (shape) {
    case 'square':
      return <rect x={x - size} y={y - size} width={size * 2} height={size * 2} {...common} />;
    case 'triangle':
      return (
        <polygon points={`${x},${y - size * 1.2} ${x - size * 1.1},${y + size * 0.8} ${x + size * 1.1},${y + size * 0.8}`} {...common} />
      );
    case 'diamond':
      return <polygon points={`${x},${y - size * 1.3} ${x + size * 1.1},${y} ${x},${y + size * 1.3} ${x - size * 1.1},${y}`} {...common} />;
    case 'cross':
      return (
        <path
          d={`M${x - size},${y - size}L${x + size},${y + size}M${x - size},${y + size}L${x + size},${y - size}`}
          stroke={color}
          strokeWidth={2.2}
        />
      );
    default:
      return <circle cx={x} cy={y} r={size} {...common} />;
  }
}

export function PlaneChart({
  series,
  xLabel,
  yLabel,
  testId,
  title,
}: {
  series: PlaneSeries[];
  xLabel: string;
  yLabel: string;
  testId?: string;
  title: string;
}) {
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) return null;
  const [x0, x1] = fitRange(all.flatMap((p) => [p.x - (p.xErr ?? 0), p.x + (p.xErr ?? 0)]));
  const [y0, y1] = fitRange(all.flatMap((p) => [p.y - (p.yErr ?? 0), p.y + (p.yErr ?? 0)]));
  const px = (x: number) => M.l + ((x - x0) / (x1 - x0)) * (W - M.l - M.r);
  const py = (y: number) => H - M.b - ((y - y0) / (y1 - y0)) * (H - M.t - M.b);
  const xt = niceTicks(x0, x1, 6);
  const yt = niceTicks(y0, y1, 5);
  // Pixel offsets for points that would land on the same spot (same values in different series or seeds).
  const offsets = spreadCoincident(
    series.map((s) => s.points.map((p) => [px(p.x), py(p.y)] as [number, number])),
    7,
  );
  // Tick labels with the decimals their step needs (0.05 steps: "0.10", "0.15"; 0.5 steps: "0.5", "1.0").
  const dec = (t: number[]) => (t.length > 1 ? Math.max(0, Math.min(4, -Math.floor(Math.log10(Math.abs(t[1]! - t[0]!)) + 1e-9))) : 2);
  const xd = dec(xt);
  const yd = dec(yt);
  return (
    <figure className="plane-chart" data-testid={testId}>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={title} width="100%">
        <rect x={M.l} y={M.t} width={W - M.l - M.r} height={H - M.t - M.b} fill="#ffffff" stroke="#e2e8f0" />
        {xt.map((t) => (
          <g key={`x${t}`}>
            <line x1={px(t)} x2={px(t)} y1={M.t} y2={H - M.b} stroke="#eef2f7" />
            <text x={px(t)} y={H - M.b + 14} textAnchor="middle" fontSize={11} fill="#475569">
              {t.toFixed(xd)}
            </text>
          </g>
        ))}
        {yt.map((t) => (
          <g key={`y${t}`}>
            <line x1={M.l} x2={W - M.r} y1={py(t)} y2={py(t)} stroke="#eef2f7" />
            <text x={M.l - 6} y={py(t) + 4} textAnchor="end" fontSize={11} fill="#475569">
              {t.toFixed(yd)}
            </text>
          </g>
        ))}
        <text x={(M.l + W - M.r) / 2} y={H - 6} textAnchor="middle" fontSize={12} fill="#1e293b">
          {xLabel}
        </text>
        <text transform={`translate(14 ${(M.t + H - M.b) / 2}) rotate(-90)`} textAnchor="middle" fontSize={12} fill="#1e293b">
          {yLabel}
        </text>
        {series.map((s) => {
          if (!s.line || s.points.length < 2) return null;
          const pts = s.line === 'frontier' ? paretoFrontier(s.points) : [...s.points].sort((a, b) => a.x - b.x);
          if (pts.length < 2) return null;
          return (
            <polyline
              key={`line-${s.label}`}
              points={pts.map((p) => `${px(p.x)},${py(p.y)}`).join(' ')}
              fill="none"
              stroke={s.color}
              strokeWidth={1.8}
              strokeDasharray={s.line === 'frontier' ? '5 3' : undefined}
              opacity={0.85}
            />
          );
        })}
        {series.map((s, si) =>
          s.points.map((p, pi) => {
            const [dx, dy] = offsets[si]![pi]!;
            const cx = px(p.x) + dx;
            const cy = py(p.y) + dy;
            return (
              <g key={`${s.label}-${pi}`} className="pt">
                {p.yErr ? <line x1={cx} x2={cx} y1={py(p.y - p.yErr)} y2={py(p.y + p.yErr)} stroke={s.color} strokeWidth={1.2} /> : null}
                {p.xErr ? <line x1={px(p.x - p.xErr)} x2={px(p.x + p.xErr)} y1={cy} y2={cy} stroke={s.color} strokeWidth={1.2} /> : null}
                <Marker shape={s.shape} x={cx} y={cy} color={s.color} hollow={!!p.hollow} />
                <title>{`${s.label}${p.tip ? ` · ${p.tip}` : ''}\n${xLabel}: ${p.x.toFixed(4)}${p.xErr ? ` ± ${p.xErr.toFixed(4)}` : ''}\n${yLabel}: ${p.y.toFixed(4)}${p.yErr ? ` ± ${p.yErr.toFixed(4)}` : ''}`}</title>
              </g>
            );
          }),
        )}
      </svg>
      <figcaption className="plane-legend">
        {series.map((s) => (
          <span key={s.label} className="legend-item">
            <svg width={26} height={14} aria-hidden>
              {s.line ? (
                <line
                  x1={1}
                  x2={25}
                  y1={7}
                  y2={7}
                  stroke={s.color}
                  strokeWidth={1.8}
                  strokeDasharray={s.line === 'frontier' ? '5 3' : undefined}
                />
              ) : null}
              <Marker shape={s.shape} x={13} y={7} color={s.color} size={4.5} />
            </svg>
            {s.label}
          </span>
        ))}
      </figcaption>
    </figure>
  );
}
