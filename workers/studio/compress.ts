/**
 * The Model owner's compression: builds the emulator with the job `gradot compress` runs and shapes the
 * per-block and per-matrix tables and the spectra the view shows.
 */
import { backendLabel } from '../../src/ui/format';
import { readDatasetBlob, withoutSpecialTokens } from '../../src/data';
import { exactSvd } from '../../src/engine/linalg/svd';
import { fromHFTensor, linearDims, planHFLoad, projsOf } from '../../src/model/hf';
import type { FloatArray } from '../../src/engine/backend';
import { linearName } from '../../src/model/decoder';
import type { AttnProj, MlpProj, ModelSpec } from '../../src/model/spec';
import { loadTokenizer } from '../../src/model/tokenizer';
import { blockParamCount, middleIndices } from '../../src/ot/emulator/budget';
import type { CompressResult as OtCompressResult } from '../../src/ot/emulator/compress';
import { buildEmulatorJob, type BuildEmulatorOutput } from '../../src/jobs/build-emulator';
import { TOKENIZER_FILES } from '../../src/jobs/data';
import type {
  CompressOptions,
  CompressResult,
  CompressLayerResult,
  PerMatrixResult,
  DownloadFile,
  InputFile,
  ProgressFn,
  Spectrum,
} from '../../src/jobs/studio-api';
import { onBackend } from './backend';
import { fail, sourceOf, rethrow } from './files';
import { openModels, newId, builtPackages } from './state';
import { Cancelled, loadModelWeights, startControlledJob } from './jobs';
import { zipEntriesBlob } from './zip-blob';
import type { PackageWeights } from '../../src/ot/emulator/package';

/**
 * Builds the emulator with src/jobs buildEmulatorJob (the job `gradot compress` runs), keeps the zip for
 * download, and shapes the per-block / per-matrix tables the Model owner view shows.
 */
export async function compress(opts: CompressOptions, onProgress: ProgressFn): Promise<CompressResult> {
  const cur = openModels.get('current');
  if (!cur) fail(undefined, 'open a model first');
  const { jobId, report, abort, pauser, end } = startControlledJob(onProgress);
  try {
    report({ phase: 'loading weights', fraction: 0.01 });
    const source = sourceOf(cur.files, cur.summary.name);
    const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)}`;
    const loaded = await loadModelWeights(
      cur.files,
      cur.summary.name,
      (done, total, etaS) =>
        report({ phase: 'loading weights', fraction: 0.01 + 0.02 * (done / total), etaS, message: `${mib(done)} of ${mib(total)} MiB` }),
      abort.signal,
    );
    const spec = loaded.spec;
    const split = { bottom: opts.adapters.bottom, top: opts.adapters.top };
    let middle: number[];
    try {
      middle = middleIndices(spec, split);
    } catch (e) {
      fail(undefined, (e as Error).message);
    }
    // Support data feeds GradOT's gradient pass; the other methods need none in the studio.
    const gradot = opts.method === 'gradot';
    if (gradot && !opts.support)
      fail(undefined, 'GradOT needs support data for its gradient pass: drop a JSONL/CSV/TXT file under "Support data"');
    let tok = null;
    if (gradot) {
      report({ phase: 'tokenizer', fraction: 0.03 });
      tok = withoutSpecialTokens(await loadTokenizer(source).catch((e: unknown) => rethrow(e, cur.summary.name)));
    }
    // The data owner tokenizes their data with the model's tokenizer, so it travels with the package.
    const extraFiles = new Map<string, Uint8Array>();
    for (const f of cur.files) if (TOKENIZER_FILES.includes(f.path)) extraFiles.set(f.path, new Uint8Array(await f.data.arrayBuffer()));
    let backendName = 'cpu (host)';
    const supportFile = gradot
      ? {
          name: opts.support!.path,
          bytes: new Uint8Array(0),
          dataset: await readDatasetBlob(opts.support!.data, opts.support!.path).catch((e: unknown) => rethrow(e, opts.support!.path)),
        }
      : null;
    let built: BuildEmulatorOutput;
    try {
      // Only gradot's support pass needs a backend; on a lost GPU device it starts again on the CPU.
      built = await onBackend(
        gradot ? opts.backend : 'cpu',
        (be) => {
          if (gradot) backendName = be.name;
          return buildEmulatorJob(
            {
              spec,
              weights: loaded.weights,
              modelId: cur.summary.name,
              tokenizer: tok,
              support: supportFile,
              heldout: 'none',
              extraFiles,
            },
            {
              method: opts.method,
              keep: opts.keep,
              split,
              seed: opts.seed,
              lambdaAttn: opts.lambdaAttn,
              lambdaMlp: opts.lambdaMlp,
              seqLen: opts.supportSeqLen,
              supportExamples: opts.supportExamples,
              batch: Math.max(1, opts.supportBatch),
              backend: be,
              ...(opts.memoryBudget ? { memoryBudget: opts.memoryBudget } : {}),
              // emulator.safetensors as tensors: made into the zip's Blob slice by slice below, after the
              // model's arrays are let go (its bytes whole were another copy of the emulator at the peak).
              streamWeights: true,
            },
            {
              signal: abort.signal,
              pause: pauser,
              onProgress: (p) => {
                if (p.phase === 'support') {
                  const done = p.total ? (p.done ?? 0) / p.total : 0;
                  report({
                    phase: `support pass on ${backendLabel(be.name)}`,
                    fraction: 0.05 + 0.75 * done,
                    step: p.done,
                    totalSteps: p.total,
                    loss: p.loss,
                    ...(done > 0 ? { etaS: (p.seconds / done) * (1 - done) } : {}),
                  });
                } else if (p.phase === 'compress') {
                  // done/total: factored matrices built (the svd baseline's SVDs run here; gradot's ran with scoring).
                  const done = p.total ? (p.done ?? 0) / p.total : 0;
                  const [from, span] = gradot ? [0.8, 0.05] : [0.05, 0.75];
                  report({
                    phase: gradot ? 'building the factors' : `compressing (${opts.method})`,
                    fraction: from + span * done,
                    ...(p.total ? { step: p.done, totalSteps: p.total } : {}),
                  });
                } else if (p.phase === 'evaluate') {
                  report({ phase: 'support loss of both models', fraction: 0.9 });
                } else {
                  report({ phase: 'packing emulator', fraction: 0.95 });
                }
              },
            },
          );
        },
        { signal: abort.signal, onFallback: (message) => report({ phase: message, fraction: null, message }) },
      );
    } catch (e) {
      if (abort.signal.aborted) throw new Cancelled();
      rethrow(e, supportFile?.name);
    }
    // A cancel that landed after the last check (the build's final steps run without one) still wins.
    if (abort.signal.aborted) throw new Cancelled();
    const r = built.result;
    // Nothing below needs the model's weights: let its arrays go before the package is made (what the emulator
    // shares with it stays referenced by the emulator).
    loaded.weights.clear();
    // Kept for download as a Blob (the browser holds Blob data outside the page's heap), made of the files'
    // own bytes, the headers and emulator.safetensors converted slice by slice (zip-blob.ts): neither the
    // safetensors bytes whole nor a contiguous zip. Each emulator tensor is let go once its bytes are in;
    // the package's files and the model's decoded weights go when this job returns: a spectrum re-reads its
    // one source matrix from the model's files.
    const entries = built.entries.map(([name, e]): [string, Uint8Array | PackageWeights] =>
      e instanceof Uint8Array ? [name, e] : [name, { ...e, onWritten: (t: string) => void r.weights.delete(t) }],
    );
    const zip = zipEntriesBlob(entries);
    r.weights.clear();
    const packageBytes = zip.size;
    const packageId = newId('emu');
    const { weights: _cleared, ...record } = r;
    builtPackages.set(packageId, {
      zip,
      name: `${cur.summary.name.replace(/[^\w.-]+/g, '_')}-${opts.method}-keep${opts.keep}-emulator.zip`,
      result: record,
      modelFiles: cur.files,
      modelName: cur.summary.name,
      middle,
      projs: [...projsOf(spec).attn, ...projsOf(spec).mlp],
    });
    const support = built.meta.support;

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
    const matrices = perMatrix(spec, r, middle);
    report({ phase: 'done', fraction: 1 });
    return {
      jobId,
      method: opts.method,
      keep: opts.keep,
      split,
      paramsBefore: built.report.params.before,
      paramsAfter: built.report.params.after,
      middleBefore: r.plan.paramsBefore,
      middleTarget: r.plan.paramsTarget,
      middleAfter: r.plan.paramsAfter,
      layers,
      matrices,
      readings: r.readings,
      notes: r.plan.notes,
      support: support ? { tokens: support.tokens, batches: support.batches, meanLoss: support.meanLoss, digest: support.digest } : null,
      timings: { ...r.timings, ...(support ? { supportSeconds: built.report.seconds.support ?? 0 } : {}) },
      backend: backendName,
      packageId,
      packageBytes,
    };
  } finally {
    end();
  }
}

/**
 * Every matrix of every middle block (q, k, v, o, up, gate, down) with what the emulator kept: the rank of a
 * low-rank factorization (of min(out, in)), or for an MLP sliced by channels the channels kept (of the
 * source width); a dense matrix keeps its full rank, a dropped block keeps nothing.
 */
export function perMatrix(spec: ModelSpec, r: OtCompressResult, middle: number[]): PerMatrixResult[] {
  const bySource = new Map(r.layers.map((l) => [l.source, l]));
  const { attn, mlp } = projsOf(spec);
  const out: PerMatrixResult[] = [];
  for (const i of middle) {
    const rec = bySource.get(i);
    for (const p of [...attn, ...mlp]) {
      const d = linearDims(spec, i, p);
      const isMlp = (mlp as string[]).includes(p);
      const rank = rec?.ranks[p];
      const sc = rec?.scores?.[p] ?? (isMlp ? rec?.scores?.mlp : undefined);
      const sliced = isMlp && rank === undefined && rec !== undefined && rec.mlpWidth < spec.layers[i]!.mlpWidth;
      const full = sliced ? spec.layers[i]!.mlpWidth : Math.min(d.out, d.in);
      const kept = !rec ? 0 : rank !== undefined ? rank : sliced ? rec.mlpWidth : full;
      out.push({
        layer: i,
        proj: p,
        shape: [d.out, d.in],
        kept,
        full,
        unit: sliced ? 'channels' : 'rank',
        ...(sc ? { removedGradShift: sc.removedGradShift, removedLossIncrease: sc.removedLossIncrease } : {}),
      });
    }
  }
  return out;
}

export async function exportPackage(packageId: string): Promise<DownloadFile> {
  const p = builtPackages.get(packageId);
  if (!p) fail(undefined, 'this emulator is no longer in memory (the page was reloaded?): build it again');
  return { name: p.name, bytes: p.zip, mime: 'application/zip' };
}

/** One canonical tensor of a model, read from its files alone (the others are not decoded). */
export async function readModelTensor(files: InputFile[], label: string, name: string): Promise<{ shape: number[]; data: FloatArray }> {
  const plan = await planHFLoad(sourceOf(files, label)).catch((e: unknown) => rethrow(e, label));
  const m = plan.mappings.find((x) => x.canonical.includes(name));
  if (!m) fail(label, `no tensor ${name} in this model`);
  const info = plan.tensors.get(m.hf)!;
  const t = await plan.readers
    .get(info.file)!
    .read(m.hf)
    .catch((e: unknown) => rethrow(e, info.file));
  const got = fromHFTensor(plan.spec, m, t).find(([c]) => c === name)![1];
  return { shape: got.shape, data: got.data };
}

export async function spectrum(packageId: string, layer: number, proj: string): Promise<Spectrum> {
  const p = builtPackages.get(packageId);
  if (!p) fail(undefined, 'this emulator is no longer in memory: build it again');
  if (!p.middle.includes(layer) || ![...p.projs].includes(proj)) fail(undefined, `no matrix ${proj} in middle block ${layer}`);
  const w = await readModelTensor(p.modelFiles, p.modelName, `${linearName(layer, proj as AttnProj | MlpProj)}.weight`);
  const [o, i] = w.shape as [number, number];
  const f = exactSvd(w.data, o, i);
  const rec = p.result.layers.find((l) => l.source === layer);
  const key = proj as AttnProj | MlpProj;
  const sourceWidth = key === 'down' ? i : o;
  const sliced =
    (key === 'up' || key === 'gate' || key === 'down') && rec !== undefined && rec.ranks[key] === undefined && rec.mlpWidth < sourceWidth;
  // Kept components: recorded for a factorization; a dense matrix keeps them all; an MLP sliced by channels
  // keeps no singular components as such (none marked); a dropped block keeps nothing.
  const kept =
    rec?.keptComponents?.[key] ?? (rec && rec.ranks[key] === undefined && !sliced ? Array.from({ length: f.S.length }, (_, k) => k) : []);
  return { layer, proj, sigma: Array.from(f.S), kept };
}
