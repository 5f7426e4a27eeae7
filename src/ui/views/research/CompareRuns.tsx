/**
 * Two runs side by side, as the offsite-tuning papers compare settings: their five numbers, what each
 * emulator kept per middle block (kept-rank heatmaps on one colour scale), and the singular-value spectrum
 * of one source matrix with each run's kept components filled (the cut each compressor made).
 */
import { useEffect, useMemo, useState } from 'react';
import type { ModelSpectrum, OTRun } from '../../../jobs/studio-api';
import { keptRanks } from '../../../store/runs';
import { useUi } from '../../../store/ui';
import { Heatmap } from '../../charts/Heatmap';
import { SpectrumChart } from '../../charts/SpectrumChart';
import { Empty } from '../../components/common';
import { reportError, studio } from '../../studio';
import { keptOfMatrix, recordLayers } from './kept';

const PROJS = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'];

function fmt(v: number | null, digits = 3): string {
  return v === null ? '—' : v.toFixed(digits);
}

export function runLabel(r: OTRun): string {
  const s = r.setting;
  return `${s.method} keep ${s.keep}${s.method === 'gradot' ? ` λ ${s.lambdaAttn}` : ''}${r.seed !== undefined ? ` seed ${r.seed}` : ''} · ${r.task}`;
}

function Spectra({ ra, rb }: { ra: OTRun; rb: OTRun }) {
  const model = useUi((s) => s.model);
  const blocks = useMemo(
    () =>
      [
        ...new Set(
          [ra, rb].flatMap((r) =>
            recordLayers(r)
              .filter((l) => l.role === 'middle')
              .map((l) => l.source),
          ),
        ),
      ].sort((a, b) => a - b),
    [ra, rb],
  );
  // The matrices the two records name (a run that factored nothing, e.g. layer drop, names none).
  const projs = useMemo(() => {
    const named = new Set([ra, rb].flatMap((r) => recordLayers(r).flatMap((l) => Object.keys(l.ranks ?? {}))));
    return named.size ? [...PROJS.filter((p) => named.has(p)), ...[...named].filter((p) => !PROJS.includes(p))] : PROJS;
  }, [ra, rb]);
  const [sel, setSel] = useState<{ layer: number; proj: string } | null>(null);
  const cur =
    sel && blocks.includes(sel.layer) && projs.includes(sel.proj) ? sel : blocks.length ? { layer: blocks[0]!, proj: projs[0]! } : null;
  const [spec, setSpec] = useState<ModelSpectrum | null>(null);
  const sameModel = model !== null && ra.model === model.name && rb.model === model.name;
  useEffect(() => {
    if (!cur || !sameModel) return;
    let alive = true;
    setSpec(null);
    // σ of the source matrix, computed in the worker from the open model (one exact SVD, cached there).
    studio()
      .modelSpectra([cur])
      .then(
        ([s]) => alive && setSpec(s ?? null),
        (e) => reportError(e),
      );
    return () => {
      alive = false;
    };
  }, [cur?.layer, cur?.proj, sameModel, model?.name]);
  if (!cur) return null;
  if (!sameModel) {
    const names = [...new Set([ra.model, rb.model])].join(' and ');
    return (
      <div className="muted small" data-testid="compare-spectra-missing">
        Open {names} in the Model owner view to see the two runs' singular-value spectra.
      </div>
    );
  }
  const intermediate = model?.intermediateSize ?? 0;
  return (
    <div data-testid="compare-spectra">
      <div className="subhead row">
        Singular values of the source matrix, each run's kept components filled
        <select
          value={`${cur.layer}.${cur.proj}`}
          onChange={(e) => {
            const [l, p] = e.target.value.split('.');
            setSel({ layer: Number(l), proj: p! });
          }}
          data-testid="compare-matrix"
        >
          {blocks.flatMap((l) =>
            projs.map((p) => (
              <option key={`${l}.${p}`} value={`${l}.${p}`}>
                block {l} · {p}
              </option>
            )),
          )}
        </select>
      </div>
      <div className="compare">
        {[ra, rb].map((r, i) => {
          const k = spec ? keptOfMatrix(r, cur.layer, cur.proj, spec.sigma.length, intermediate) : null;
          return (
            <div key={i} data-testid="compare-spectrum">
              <div className="small">
                <b>{runLabel(r)}</b>
                {k ? (
                  <span className="muted">
                    {' '}
                    · block {cur.layer} {cur.proj} {k.note}
                  </span>
                ) : null}
              </div>
              {spec && k ? (
                <SpectrumChart
                  sigma={spec.sigma}
                  kept={k.kept}
                  cut={k.cut}
                  height={170}
                  title={`singular values of block ${cur.layer} ${cur.proj}, ${runLabel(r)}`}
                />
              ) : (
                <div className="muted small">computing singular values…</div>
              )}
            </div>
          );
        })}
      </div>
    </div>
  );
}

/** Two runs side by side: their five numbers, what each emulator kept per middle block, and the spectra. */
export function CompareRuns({ runs }: { runs: OTRun[] }) {
  const withRanks = useMemo(() => runs.filter((r) => keptRanks(r) !== null), [runs]);
  const [a, setA] = useState<string>('');
  const [b, setB] = useState<string>('');
  const ra = withRanks.find((r) => r.id === a) ?? withRanks[0];
  const rb = withRanks.find((r) => r.id === b) ?? withRanks[1] ?? withRanks[0];
  if (withRanks.length < 2 || !ra || !rb) {
    return (
      <Empty>
        Two runs that carry their compression record (made in this browser, or exported from one) are compared here: what each kept, block
        by block, and on each matrix's singular values.
      </Empty>
    );
  }
  const ka = keptRanks(ra)!;
  const kb = keptRanks(rb)!;
  const cols = [...new Set([...ka.cols, ...kb.cols])];
  // One colour scale for both maps: the largest rank kept of each matrix over the two runs.
  const max = cols.map((c) => Math.max(1, ...[ka, kb].flatMap((k) => k.ranks.map((row) => row[k.cols.indexOf(c)] ?? 0))));
  const heat = (k: typeof ka) => ({
    rows: [...k.blocks.map((x) => `block ${x}`)],
    cols: [...cols, 'MLP width'],
    values: k.ranks.map((row, i) => [
      ...cols.map((c, j) => {
        const v = row[k.cols.indexOf(c)];
        return v === null || v === undefined ? null : v / max[j]!;
      }),
      k.mlpWidth[i]! / Math.max(...ka.mlpWidth, ...kb.mlpWidth),
    ]),
    labels: k.ranks.map((row, i) => [
      ...cols.map((c) => {
        const v = row[k.cols.indexOf(c)];
        return v === null || v === undefined ? 'dense' : String(v);
      }),
      String(k.mlpWidth[i]),
    ]),
  });
  const pick = (value: string, set: (v: string) => void, cur: OTRun) => (
    <select value={value || cur.id} onChange={(e) => set(e.target.value)}>
      {withRanks.map((r) => (
        <option key={r.id} value={r.id}>
          {runLabel(r)}
        </option>
      ))}
    </select>
  );
  const nums = (r: OTRun) =>
    `Full ZS ${fmt(r.fullZS)} · Emu ZS ${fmt(r.emulatorZS)} · Emu FT ${fmt(r.emulatorFT)} · Plug-in ${fmt(r.plugIn)} · Δ ${fmt(r.delta)}`;
  return (
    <div data-testid="compare-runs">
      <div className="compare">
        {[[ra, a, setA, heat(ka)] as const, [rb, b, setB, heat(kb)] as const].map(([r, v, set, h], i) => (
          <div key={i}>
            {pick(v, set, r)}
            <div className="muted small">{nums(r)}</div>
            <Heatmap rows={h.rows} cols={h.cols} values={h.values} labels={h.labels} title={`kept rank per matrix, ${runLabel(r)}`} />
          </div>
        ))}
      </div>
      <Spectra ra={ra} rb={rb} />
    </div>
  );
}
