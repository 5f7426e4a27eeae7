import { encodeDataset, makeBatch, readDataset, withoutSpecialTokens, type Dataset } from '../../src/data';
import { exactSvd } from '../../src/engine/linalg/svd';
import { decoderFromWeights } from '../../src/model/decoder';
import { linearDims, loadHFModel } from '../../src/model/hf';
import { loadTokenizer } from '../../src/model/tokenizer';
import { blockParamCount, middleIndices } from '../../src/ot/emulator/budget';
import { compressModel, type CompressResult as OtCompressResult } from '../../src/ot/emulator/compress';
import { emulatorMeta, weightsSha256, writeEmulatorPackage, zipEmulatorPackage } from '../../src/ot/emulator/package';
import { supportPass, type SupportBatch, type SupportPassResult } from '../../src/ot/emulator/support';
import {
  type CompressOptions, type CompressResult, type CompressLayerResult, type PerMatrixResult, type DownloadFile, type ProgressFn,
  type Spectrum,
} from '../../src/jobs/studio-api';
import { pickBackend } from './backend';
import { fail, sourceOf, rethrow } from './files';
import { openModels, newId, jobs, builtPackages } from './state';
import { startJob } from './jobs';

export async function compress(opts: CompressOptions, onProgress: ProgressFn): Promise<CompressResult> {
  const cur = openModels.get('current');
  if (!cur) fail(undefined, 'open a model first');
  const { jobId, report, check } = startJob(onProgress);
  try {
    report({ phase: 'loading weights', fraction: 0.01 });
    const source = sourceOf(cur.files, cur.summary.name);
    const loaded = await loadHFModel(source).catch((e: unknown) => rethrow(e, cur.summary.name));
    const spec = loaded.spec;
    const split = { bottom: opts.adapters.bottom, top: opts.adapters.top };
    let middle: number[];
    try {
      middle = middleIndices(spec, split);
    } catch (e) {
      fail(undefined, (e as Error).message);
    }
    await check();
    let support: SupportPassResult | null = null;
    let backendName = 'cpu (host)';
    if (opts.method === 'gradot') {
      if (!opts.support) fail(undefined, 'GradOT needs support data for its gradient pass: drop a JSONL/CSV/TXT file under "Support data"');
      report({ phase: 'tokenizer', fraction: 0.03 });
      const tok = await loadTokenizer(source).catch((e: unknown) => rethrow(e, cur.summary.name));
      const bytes = new Uint8Array(await opts.support.data.arrayBuffer());
      let ds: Dataset;
      try {
        ds = readDataset(bytes, opts.support.path);
      } catch (e) {
        rethrow(e, opts.support.path);
      }
      const C = Math.max(8, Math.min(opts.supportSeqLen, spec.maxPositions));
      let encoded;
      try {
        encoded = encodeDataset(ds, withoutSpecialTokens(tok), { contextLength: C, addBos: spec.family === 'llama' });
      } catch (e) {
        rethrow(e, opts.support.path);
      }
      const examples = encoded.examples.slice(0, Math.max(1, opts.supportExamples));
      const B = Math.max(1, opts.supportBatch);
      const batches: SupportBatch[] = [];
      for (let i = 0; i < examples.length; i += B) {
        const idx = Array.from({ length: Math.min(B, examples.length - i) }, (_, k) => i + k);
        const b = makeBatch(examples, idx, { padId: tok.padId ?? tok.eosId ?? 0 });
        batches.push({ ids: b.ids, targets: b.targets, B: b.batchSize, T: b.seqLen });
      }
      const be = await pickBackend(opts.backend);
      backendName = be.name;
      report({ phase: `support pass on ${be.name}`, fraction: 0.05, message: `${examples.length} examples, ${batches.length} batches, context ${C}` });
      const dec = decoderFromWeights(be, spec, loaded.weights);
      const t0 = performance.now();
      // supportPass consumes an iterable; an async generator lets pause/cancel and progress in between batches.
      async function* feed(): AsyncGenerator<SupportBatch> {
        for (let i = 0; i < batches.length; i++) {
          await check();
          yield batches[i]!;
        }
      }
      support = await supportPass(dec, feed(), middle, {
        onBatch: (i, loss) => {
          const done = (i + 1) / batches.length;
          const el = (performance.now() - t0) / 1000;
          report({ phase: `support pass on ${be.name}`, fraction: 0.05 + 0.75 * done, step: i + 1, totalSteps: batches.length, loss, etaS: (el / done) * (1 - done) });
        },
      });
      await check();
    }
    report({ phase: opts.method === 'gradot' ? 'SVD + GCS scoring, slicing' : `compressing (${opts.method})`, fraction: opts.method === 'gradot' ? 0.82 : 0.2 });
    await check();
    let r: OtCompressResult;
    try {
      r = compressModel(spec, loaded.weights, {
        method: opts.method, keep: opts.keep, split, lambdaAttn: opts.lambdaAttn, lambdaMlp: opts.lambdaMlp, seed: opts.seed,
      }, support?.stats);
    } catch (e) {
      fail(undefined, `compression failed: ${(e as Error).message}`);
    }
    await check();
    report({ phase: 'packing emulator', fraction: 0.95 });
    const params = [...loaded.weights.values()].reduce((a, t) => a + t.data.length, 0);
    const sha256 = await weightsSha256(loaded.weights);
    const meta = emulatorMeta(r, { modelId: cur.summary.name, sha256, params }, support, spec.layers.length);
    const pkgFiles = writeEmulatorPackage({ meta, weights: r.weights });
    // The data owner tokenizes their data with the model's tokenizer, so it travels with the package.
    for (const f of cur.files) {
      if (['tokenizer.json', 'tokenizer_config.json', 'vocab.json', 'merges.txt'].includes(f.path)) pkgFiles.set(f.path, new Uint8Array(await f.data.arrayBuffer()));
    }
    const zip = zipEmulatorPackage(pkgFiles);
    const packageId = newId('emu');
    const sourceWeights = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [n, t] of loaded.weights) if (/\.attn\.[qkvo]\.weight$/.test(n)) sourceWeights.set(n, { shape: t.shape, data: t.data });
    builtPackages.set(packageId, { zip, name: `${cur.summary.name.replace(/[^\w.-]+/g, '_')}-${opts.method}-keep${opts.keep}-emulator.zip`, result: r, sourceWeights });

    // What the UI shows: per block and per matrix, from the compressor's own record.
    const bySource = new Map(r.layers.map((l) => [l.source, l]));
    const layers: CompressLayerResult[] = spec.layers.map((l, i) => {
      const rec = bySource.get(i);
      const role = !rec ? 'dropped' : rec.role;
      const sc = rec?.scores ? Object.values(rec.scores) : [];
      return {
        layer: i,
        role,
        paramsBefore: blockParamCount(spec, l),
        paramsAfter: rec ? blockParamCount(r.spec, r.spec.layers[rec.index]!) : 0,
        removedGradShift: sc.length ? sc.reduce((a, x) => a + (x?.removedGradShift ?? 0), 0) : null,
        removedLossIncrease: sc.length ? sc.reduce((a, x) => a + (x?.removedLossIncrease ?? 0), 0) : null,
      };
    });
    const matrices: PerMatrixResult[] = [];
    for (const i of middle) {
      const rec = bySource.get(i);
      for (const p of ['q', 'k', 'v', 'o'] as const) {
        const d = linearDims(spec, i, p);
        const full = Math.min(d.out, d.in);
        const sc = rec?.scores?.[p];
        matrices.push({ layer: i, proj: p, shape: [d.out, d.in], kept: rec ? rec.ranks[p] ?? full : 0, full, removedGradShift: sc?.removedGradShift, removedLossIncrease: sc?.removedLossIncrease });
      }
      const sc = rec?.scores?.mlp;
      matrices.push({ layer: i, proj: 'mlp', shape: [spec.intermediateSize, spec.hiddenSize], kept: rec ? rec.mlpWidth : 0, full: spec.intermediateSize, removedGradShift: sc?.removedGradShift, removedLossIncrease: sc?.removedLossIncrease });
    }
    const paramsAfter = [...r.weights.values()].reduce((a, t) => a + t.data.length, 0);
    report({ phase: 'done', fraction: 1 });
    return {
      jobId,
      method: opts.method,
      keep: opts.keep,
      split,
      paramsBefore: params,
      paramsAfter,
      middleBefore: r.plan.paramsBefore,
      middleTarget: r.plan.paramsTarget,
      middleAfter: r.plan.paramsAfter,
      layers,
      matrices,
      readings: r.readings,
      notes: r.plan.notes,
      support: support ? { tokens: support.tokens, batches: support.batches, meanLoss: support.meanLoss, digest: support.digest } : null,
      timings: { ...r.timings, ...(support ? { supportSeconds: support.seconds } : {}) },
      backend: backendName,
      packageId,
      packageBytes: zip.byteLength,
    };
  } finally {
    jobs.delete(jobId);
  }
}

export async function exportPackage(packageId: string): Promise<DownloadFile> {
  const p = builtPackages.get(packageId);
  if (!p) fail(undefined, 'this emulator is no longer in memory (the page was reloaded?): build it again');
  return { name: p.name, bytes: p.zip.slice(), mime: 'application/zip' };
}

export async function spectrum(packageId: string, layer: number, proj: string): Promise<Spectrum> {
  const p = builtPackages.get(packageId);
  if (!p) fail(undefined, 'this emulator is no longer in memory: build it again');
  const w = p.sourceWeights.get(`layers.${layer}.attn.${proj}.weight`);
  if (!w) fail(undefined, `no attention matrix ${proj} in block ${layer}`);
  const [o, i] = w.shape as [number, number];
  const f = exactSvd(w.data, o, i);
  const rec = p.result.layers.find((l) => l.source === layer);
  const kept = rec?.keptComponents?.[proj as 'q'] ?? (rec && rec.ranks[proj as 'q'] === undefined ? Array.from({ length: f.S.length }, (_, k) => k) : []);
  return { layer, proj, sigma: Array.from(f.S), kept };
}
