/**
 * "Try it": the model (or emulator + adapters) exported to ONNX in transformers.js layout and generated with
 * transformers.js, loaded on first use.
 */
import { CpuBackend } from '../../src/engine/cpu/backend';
import { loadHFModel, type HFConfig } from '../../src/model/hf';
import { loadTokenizer, type Tokenizer } from '../../src/model/tokenizer';
import { plugInJob } from '../../src/jobs/plug-in';
import { defaultAddBos } from '../../src/jobs/data';
import { plugIn } from '../../src/ot/offsite/plugin';
import { exportTransformersJsFolder } from '../../src/onnx/export';
import type { ModelSpec } from '../../src/model/spec';
import { type WeightMap } from '../../src/model/weights';
import { type GenerateOptions, type GenerateResult, type GenerateStage, type InputFile } from '../../src/jobs/studio-api';
import { probeBackend } from './backend';
import { fail, sourceOf, rethrow, readPackage } from './files';
import { earlyCancels, jobs, openModels, openAdaptersMap, tunedRuns, type JobControl } from './state';
import { Cancelled } from './jobs';

export interface TryExport {
  files: Map<string, Uint8Array>;
  tok: Tokenizer;
  addBos: boolean;
  what: string;
  /** transformers.js has a session for `files` (generate ran at least once). */
  loaded: boolean;
}
/** One export per model state: transformers.js keeps its session per files Map, so a second Generate on
 *  the same state reuses both the export and the ORT session. */
export const tryExports = new Map<string, TryExport>();

/** Forgets the exports and releases their ORT sessions (wasm memory is not garbage-collected). */
export function dropTryExports(): void {
  for (const ex of tryExports.values()) {
    if (!ex.loaded) continue;
    void import('../../src/onnx/transformers')
      .then(({ loadTransformersJsModel }) => loadTransformersJsModel(ex.files))
      .then((m) => m.model.dispose())
      .catch(() => undefined);
  }
  tryExports.clear();
}

/** Called between the stages of a generation: lets a Cancel message in and stops there if it came. */
export type StageGate = (stage: GenerateStage) => Promise<void>;

export async function buildTryExport(target: GenerateOptions['target'], gate: StageGate = async () => undefined): Promise<TryExport> {
  let spec: ModelSpec;
  let weights: WeightMap;
  let files: InputFile[];
  let label: string;
  let what: string;
  const be = new CpuBackend({ dtype: 'f32' });
  if (target.kind === 'run') {
    const run = tunedRuns.get(target.runId);
    if (!run) fail(undefined, 'this run is not in memory (page reloaded?): resume or re-run it first');
    const m = run.meta;
    const pkg = await readPackage(run.pkgFiles, run.packageName);
    const tuned = await plugIn({ spec: m.spec, weights: pkg.weights }, run.result.adapter, be);
    spec = m.spec;
    weights = tuned.weights;
    files = run.pkgFiles;
    label = run.packageName;
    what = `emulator + adapters (${run.packageName}, ${run.result.steps} steps)`;
  } else {
    const cur = openModels.get('current');
    if (!cur) fail(undefined, 'open a model first');
    const source = sourceOf(cur.files, cur.summary.name);
    const full = await loadHFModel(source).catch((e: unknown) => rethrow(e, cur.summary.name));
    spec = full.spec;
    weights = full.weights;
    files = cur.files;
    label = cur.summary.name;
    what = `full model (${cur.summary.name})`;
    if (target.adapterId) {
      await gate('loading model');
      const a = openAdaptersMap.get(target.adapterId);
      if (!a) fail(undefined, 'drop the returned adapters first');
      weights = (
        await plugInJob(full, sourceOf(a.files, a.summary.name), { backend: be }).catch((e: unknown) => rethrow(e, a.summary.name))
      ).weights;
      what = `plug-in model (${cur.summary.name} + ${a.summary.name})`;
    }
  }
  await gate('exporting to ONNX');
  const source = sourceOf(files, label);
  const tok = await loadTokenizer(source).catch((e: unknown) => rethrow(new Error(`no usable tokenizer (${(e as Error).message})`), label));
  const extra = new Map<string, Uint8Array>();
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) if (await source.has(f)) extra.set(f, await source.readBytes(f));
  let baseConfig: HFConfig = {};
  if (await source.has('config.json')) baseConfig = JSON.parse(await source.readText('config.json')) as HFConfig;
  // Emulator packages carry no config.json: the tokenizer's ids let generation stop at end-of-text.
  if (baseConfig.eos_token_id === undefined && tok.eosId !== null) baseConfig.eos_token_id = tok.eosId;
  if (baseConfig.bos_token_id === undefined && tok.bosId !== null) baseConfig.bos_token_id = tok.bosId;
  const folder = exportTransformersJsFolder(spec, weights, { baseConfig, extraFiles: extra });
  return { files: folder, tok, addBos: defaultAddBos(spec, tok), what, loaded: false };
}

export async function generateJob(
  opts: GenerateOptions,
  onText: (text: string) => void,
  onStage?: (stage: GenerateStage) => void,
): Promise<GenerateResult> {
  // Cancel lands between stages (model load, ONNX export, transformers.js load) and between tokens: the
  // next token throws out of transformers.js's generate loop.
  const ctl: JobControl = { paused: false, cancelled: opts.jobId ? earlyCancels.delete(opts.jobId) : false };
  if (opts.jobId) jobs.set(opts.jobId, ctl);
  const gate: StageGate = async (stage) => {
    // A cancel message (comlink) is delivered only between tasks, and a 0 ms timer may run before a queued
    // message: a few idle milliseconds let any queued message in first.
    await new Promise((r) => setTimeout(r, 5));
    if (ctl.cancelled) throw new Cancelled();
    void onStage?.(stage);
  };
  try {
    return await generateWith(opts, onText, ctl, gate, onStage);
  } finally {
    if (opts.jobId) jobs.delete(opts.jobId);
  }
}

async function generateWith(
  opts: GenerateOptions,
  onText: (text: string) => void,
  ctl: JobControl,
  gate: StageGate,
  onStage?: (stage: GenerateStage) => void,
): Promise<GenerateResult> {
  const key = JSON.stringify(opts.target);
  let exportSeconds = 0;
  let ex = tryExports.get(key);
  if (!ex) {
    const t0 = performance.now();
    await gate('loading model');
    ex = await buildTryExport(opts.target, gate);
    // A cancelled export is not kept: the next Generate exports again.
    await gate('loading transformers.js');
    exportSeconds = (performance.now() - t0) / 1000;
    // Keep one export: each holds a copy of the weights and an ORT session.
    dropTryExports();
    tryExports.set(key, ex);
  }
  const { tok } = ex;
  const ids = tok.encode(opts.prompt, { addSpecialTokens: false });
  // Like training and evaluation: LLaMA-family prompts start with the beginning-of-text token.
  const bos = tok.bosId;
  if (ex.addBos && bos !== null && ids[0] !== bos) ids.unshift(bos);
  if (ids.length === 0) fail(undefined, 'type a prompt first');
  const info = await probeBackend();
  // Same rule as the engine's backend choice: a software adapter (SwiftShader) is slower than ORT's wasm.
  const device = info.kind === 'webgpu' && !info.isFallbackAdapter ? 'webgpu' : 'wasm';
  const out: number[] = [];
  const t1 = performance.now();
  // Loaded on first use: onnxruntime-web and transformers.js stay out of the worker's startup.
  const { generateInBrowser } = await import('../../src/onnx/browser');
  await gate(ex.loaded ? 'generating' : 'loading transformers.js');
  const r = await generateInBrowser(ex.files, ids, {
    maxNewTokens: Math.max(1, Math.min(512, Math.floor(opts.maxNewTokens))),
    doSample: opts.sample,
    ...(opts.sample ? { temperature: opts.temperature, topK: opts.topK } : {}),
    device,
    onToken: (id) => {
      if (ctl.cancelled) throw new Cancelled();
      if (out.length === 0) void onStage?.('generating');
      out.push(id);
      void onText(tok.decode(out, { skipSpecialTokens: true }));
    },
  }).catch((e: unknown) => (ctl.cancelled ? Promise.reject(new Cancelled()) : rethrow(e, 'transformers.js')));
  ex.loaded = true;
  const text = tok.decode(r.tokens, { skipSpecialTokens: true });
  return {
    text,
    promptTokens: r.promptTokens.length,
    newTokens: r.tokens.length,
    exportSeconds,
    generateSeconds: (performance.now() - t1) / 1000,
    device,
    model: ex.what,
  };
}
