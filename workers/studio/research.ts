/**
 * The researcher view's measurements on the open model: a speed calibration for the grid's time estimate
 * (src/ui/grid-estimate.ts turns it into seconds) and the singular values of source matrices, so two runs'
 * kept components can be drawn on their spectra long after their emulators are gone.
 */
import { exactSvd } from '../../src/engine/linalg/svd';
import { noGrad, tidy } from '../../src/engine/tensor';
import { decoderFromWeights, linearName } from '../../src/model/decoder';
import { loadHFModel } from '../../src/model/hf';
import type { AttnProj, MlpProj } from '../../src/model/spec';
import type { Calibration, ModelSpectrum } from '../../src/jobs/studio-api';
import { onBackend } from './backend';
import { fail, rethrow, sourceOf } from './files';
import { openModels } from './state';

/** Calibrations per model name and sequence length: the speed of one backend does not change in a session. */
const calibrations = new Map<string, Calibration>();
/** σ per model name and matrix (an exact SVD each; the same matrices are asked for again and again). */
const sigmas = new Map<string, number[]>();

async function openSource() {
  const cur = openModels.get('current');
  if (!cur) fail(undefined, 'open a model in the Model owner view first');
  const model = await loadHFModel(sourceOf(cur.files, cur.summary.name)).catch((e: unknown) => rethrow(e, cur.summary.name));
  return { name: cur.summary.name, model };
}

/**
 * Times the open model's forward pass on a batch of `batch` × `seqLen` tokens (after one warm-up pass) on
 * the backend the grid uses, and one exact SVD of its largest middle-block matrix (what svd and GradOT
 * compute per matrix). Takes about as long as a few training steps.
 */
export async function calibrate(seqLen: number): Promise<Calibration> {
  const cur = openModels.get('current');
  if (!cur) fail(undefined, 'open a model in the Model owner view first');
  const key = `${cur.summary.name}|${seqLen}`;
  const hit = calibrations.get(key);
  if (hit) return hit;
  // Every grid setting loads the model again (workers/studio/protocol.ts): its load time is a per-run cost.
  const tLoad = performance.now();
  const { name, model } = await openSource();
  const loadSeconds = (performance.now() - tLoad) / 1000;
  const spec = model.spec;
  const T = Math.max(8, Math.min(seqLen, spec.maxPositions));
  const B = 2;
  // Fresh random token ids: the speed does not depend on them, and no data has to be open.
  const ids = Int32Array.from({ length: B * T }, () => Math.floor(Math.random() * spec.vocabSize));
  const targets = Int32Array.from({ length: B * T }, (_, i) => ids[(i + 1) % ids.length]!);
  const forward = await onBackend('auto', async (be) => {
    const dec = decoderFromWeights(be, spec, model.weights);
    try {
      const pass = async () => {
        const l = tidy(() => noGrad(() => dec.loss(ids, targets, B, T)));
        const v = await l.item();
        l.free();
        if (!Number.isFinite(v)) fail(name, 'the calibration pass gave a non-finite loss');
      };
      await pass();
      const t0 = performance.now();
      await pass();
      return { seconds: (performance.now() - t0) / 1000, backend: be.name };
    } finally {
      dec.free();
    }
  });
  // The largest matrix of a middle block, a fair upper bound of one SVD of the compressors.
  let svdSeconds = 0;
  const layer = Math.floor(spec.layers.length / 2);
  let best: { o: number; i: number; data: Float32Array } | null = null;
  for (const proj of ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] as (AttnProj | MlpProj)[]) {
    const w = model.weights.get(`${linearName(layer, proj)}.weight`);
    if (!w) continue;
    const [o, i] = w.shape as [number, number];
    if (!best || o * i > best.o * best.i) best = { o, i, data: w.data as Float32Array };
  }
  if (best) {
    const t0 = performance.now();
    exactSvd(best.data, best.o, best.i);
    svdSeconds = (performance.now() - t0) / 1000;
  }
  const cal: Calibration = {
    model: name,
    backend: forward.backend,
    seqLen: T,
    tokens: B * T,
    forwardSecPerToken: forward.seconds / (B * T),
    svdSecondsPerMatrix: svdSeconds,
    loadSeconds,
    measuredAt: new Date().toISOString(),
  };
  calibrations.set(key, cal);
  return cal;
}

/** Singular values (descending) of the open model's matrices `proj` of block `layer`. */
export async function modelSpectra(requests: { layer: number; proj: string }[]): Promise<ModelSpectrum[]> {
  const cur = openModels.get('current');
  if (!cur) fail(undefined, 'open a model in the Model owner view first');
  const name = cur.summary.name;
  const missing = requests.filter((r) => !sigmas.has(`${name}|${r.layer}|${r.proj}`));
  if (missing.length) {
    const { model } = await openSource();
    for (const r of missing) {
      const w = model.weights.get(`${linearName(r.layer, r.proj as AttnProj | MlpProj)}.weight`);
      if (!w) fail(name, `no matrix ${r.proj} in block ${r.layer}`);
      const [o, i] = w.shape as [number, number];
      sigmas.set(`${name}|${r.layer}|${r.proj}`, Array.from(exactSvd(w.data as Float32Array, o, i).S));
    }
  }
  return requests.map((r) => ({ model: name, layer: r.layer, proj: r.proj, sigma: sigmas.get(`${name}|${r.layer}|${r.proj}`)! }));
}
