// Exported models in the browser: onnxruntime-web with the WebGPU EP (SwiftShader in headless Chromium)
// and the WASM EP must give our engine's logits (computed here in Node on the CPU backend) within 1e-4
// relative, for a full model, an emulator (factored q/v, pruned MLP, dropped block) and a plug-in model,
// including prefill + single steps through the KV cache; transformers.js must generate from in-memory
// exported files (the studio's "try it" path) the same greedy tokens as our engine. Every request must stay
// on the page's origin (ORT's wasm is served locally). Writes e2e/artifacts/onnx.json.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from '@playwright/test';
import { tokenizerFilesOf } from '../src/cli/commands/export-onnx';
import { CpuBackend } from '../src/engine/cpu/backend';
import { decoderFromWeights } from '../src/model/decoder';
import { generate } from '../src/model/generate';
import { loadHFModel } from '../src/model/hf';
import { randomModel, randomTestModel, smallSpec } from '../src/model/random-model';
import { nodeDirSource } from '../src/model/source';
import type { ModelSpec } from '../src/model/spec';
import type { WeightMap } from '../src/model/weights';
import { exportOnnx, exportTransformersJsFolder } from '../src/onnx/export';
import { ortInfoFromSpec } from '../src/onnx/runtime';
import { buildTestEmulator, buildTestPlugin, engineLogits, maxRelErr, randomIds } from '../src/onnx/testing';
import { artifacts, expect, pagesUrl, repoRoot, test } from './fixtures';
import type { GenerateJob, LogitsJob, LogitsResult } from './pages/onnx';

const TOL = 1e-4;
const TIMEOUT_MS = Number(process.env.ONNX_E2E_TIMEOUT_MS ?? 240_000);
const b64 = (u: Uint8Array): string => Buffer.from(u).toString('base64');

interface Case {
  label: string;
  ep: 'webgpu' | 'wasm';
  model: () => { spec: ModelSpec; weights: WeightMap };
}

/** Random models, built on first use (test collection stays cheap). */
const once = <T>(f: () => T): (() => T) => {
  let v: T | undefined;
  return () => (v ??= f());
};
const llama = once(() => {
  const spec = smallSpec('llama', { numLayers: 4, maxPositions: 32 });
  return { spec, weights: randomTestModel(spec, 1) };
});
const llamaEmulator = once(() => {
  const { spec, weights } = llama();
  return buildTestEmulator(spec, weights, { rank: 4, mlpWidth: 40, dropBlocks: 1 });
});
const gpt2Plugin = once(() => {
  const spec = smallSpec('gpt2', { numLayers: 3, maxPositions: 32 });
  return { spec, weights: buildTestPlugin(spec, randomTestModel(spec, 2), 3) };
});

const CASES: Case[] = [
  { label: 'llama full (GQA)', ep: 'webgpu', model: llama },
  { label: 'llama emulator', ep: 'webgpu', model: llamaEmulator },
  { label: 'gpt2 plug-in', ep: 'webgpu', model: gpt2Plugin },
  { label: 'llama full (GQA)', ep: 'wasm', model: llama },
];

const DEMO = join(repoRoot, 'public/models/demo');
const PROMPT = 'Once upon a time, the model';
const N = 20;

/** transformers.js runs: a random llama exported with the demo's tokenizer, and the real demo model when its
 *  checkpoint is there (what the studio's "try it" box runs). */
interface GenerateRun {
  label: string;
  device: 'webgpu' | 'wasm';
  build: () => Promise<{ spec: ModelSpec; w: WeightMap; files: Map<string, Uint8Array> }>;
}
const randomLlamaFolder = once(async () => {
  const spec: ModelSpec = {
    ...smallSpec('llama', { numLayers: 2, hiddenSize: 64, numHeads: 4, vocabSize: 4096, maxPositions: 64 }),
    numKvHeads: 2,
    tieWordEmbeddings: false,
  };
  const w = randomModel(spec, 2024, { std: 0.25, normJitter: 0.2 });
  const files = exportTransformersJsFolder(spec, w, {
    baseConfig: { bos_token_id: 4095, eos_token_id: 4095 },
    extraFiles: {
      'tokenizer.json': readFileSync(join(DEMO, 'tokenizer.json')),
      'tokenizer_config.json': readFileSync(join(DEMO, 'tokenizer_config.json')),
    },
  });
  return { spec, w, files };
});
const demoFolder = async () => {
  const m = await loadHFModel(nodeDirSource(DEMO));
  const files = exportTransformersJsFolder(m.spec, m.weights, {
    baseConfig: m.config,
    extraFiles: await tokenizerFilesOf(nodeDirSource(DEMO)),
  });
  return { spec: m.spec, w: m.weights, files };
};
const GENERATE_RUNS: GenerateRun[] = [
  { label: 'random llama', device: 'webgpu', build: randomLlamaFolder },
  { label: 'random llama', device: 'wasm', build: randomLlamaFolder },
  ...(existsSync(join(DEMO, 'model.safetensors')) ? [{ label: 'demo model', device: 'webgpu' as const, build: demoFolder }] : []),
];

test.describe('exported ONNX models in onnxruntime-web and transformers.js', () => {
  test.describe.configure({ mode: 'serial' });
  let page: Page;
  const logs: string[] = [];
  const foreign: string[] = [];
  const results: Record<string, unknown>[] = [];
  const t0 = Date.now();

  test.beforeAll(async ({ browser }) => {
    test.setTimeout(TIMEOUT_MS + 30_000);
    page = await browser.newPage();
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') logs.push(m.text());
    });
    page.on('pageerror', (e) => logs.push(String(e)));
    page.on('request', (r) => {
      const u = new URL(r.url());
      if (!['127.0.0.1', 'localhost'].includes(u.hostname) && !['data:', 'blob:'].includes(u.protocol)) foreign.push(r.url());
    });
    await page.goto(pagesUrl('e2e/pages/onnx.html'));
    await page.waitForFunction(() => window.__onnxReady !== undefined, null, { timeout: TIMEOUT_MS });
    const ready = (await page.evaluate(() => window.__onnxReady)) as { webgpu: boolean } | { fatal: string };
    if ('fatal' in ready) throw new Error(`ONNX page failed: ${ready.fatal}\n${logs.join('\n')}`);
  });

  test.afterEach(() => {
    const info = test.info();
    if (info.status !== info.expectedStatus) for (const l of logs.slice(0, 10)) console.error(`[onnx] console: ${l.slice(0, 300)}`);
  });

  test.afterAll(async () => {
    const epWarnings = logs.filter((l) => /fall ?back|not supported|webgpu/i.test(l));
    if (epWarnings.length) console.log(`[onnx] EP-related console messages: ${epWarnings.slice(0, 5).join(' | ').slice(0, 800)}`);
    writeFileSync(join(artifacts, 'onnx.json'), JSON.stringify({ results, foreignRequests: foreign, wallMs: Date.now() - t0 }, null, 2));
    await page?.close();
  });

  test('the page has a WebGPU adapter (the WebGPU EP can be tested)', async () => {
    expect(await page.evaluate(() => (window.__onnxReady as { webgpu: boolean }).webgpu)).toBe(true);
  });

  for (const c of CASES) {
    test(`${c.ep} logits equal the engine's: ${c.label} (full sequence and prefill + KV-cache steps)`, async () => {
      const { spec, weights } = c.model();
      const B = 2;
      const T = 8;
      const ids = Array.from(randomIds(B * T, spec.vocabSize, 7));
      const want = await engineLogits(spec, weights, Int32Array.from(ids), B, T);
      const job: LogitsJob = { model: b64(exportOnnx(spec, weights)), info: ortInfoFromSpec(spec), ep: c.ep, ids, B, T, prefill: 5 };
      const r = (await page.evaluate((j) => window.__runLogits!(j), job)) as LogitsResult;
      const eFull = maxRelErr(r.full, want);
      const eCache = maxRelErr(r.cached, want);
      results.push({ label: c.label, ep: c.ep, maxRelErr: eFull, maxRelErrCached: eCache, ms: r.ms, ok: eFull < TOL && eCache < TOL });
      console.log(
        `  ${c.ep.padEnd(6)} ${c.label.padEnd(18)} full ${eFull.toExponential(2)}  prefill+steps ${eCache.toExponential(2)}  ${r.ms.toFixed(0)} ms`,
      );
      expect(eFull, 'max relative error, full sequence').toBeLessThan(TOL);
      expect(eCache, 'max relative error, prefill + steps').toBeLessThan(TOL);
    });
  }

  for (const ep of ['webgpu', 'wasm'] as const) {
    test(`${ep}: an emulator exported in the page runs like the engine`, async () => {
      const r = (await page.evaluate((e) => window.__runInPage!(e), ep)) as { maxRelErr: number; ms: number };
      results.push({ label: 'in-page export (emulator)', ep, maxRelErr: r.maxRelErr, ms: r.ms, ok: r.maxRelErr < TOL });
      console.log(`  ${ep.padEnd(6)} in-page export + engine  ${r.maxRelErr.toExponential(2)}  ${r.ms.toFixed(0)} ms`);
      expect(r.maxRelErr).toBeLessThan(TOL);
    });
  }

  // transformers.js from in-memory exported files, greedy, vs our engine's greedy decoding.
  for (const run of GENERATE_RUNS) {
    test(`${run.device}: transformers.js greedy-generates the engine's ${N} tokens (${run.label})`, async () => {
      test.setTimeout(TIMEOUT_MS);
      const { spec, w, files } = await run.build();
      const job: GenerateJob = {
        files: Object.fromEntries([...files].map(([k, v]) => [k, b64(v)])),
        prompt: PROMPT,
        maxNewTokens: N,
        device: run.device,
      };
      const r = (await page.evaluate((j) => window.__runGenerate!(j), job)) as {
        tokens: number[];
        promptTokens: number[];
        text: string;
        streamed: number[];
        ms: number;
      };
      const dec = decoderFromWeights(new CpuBackend(), spec, w);
      const want = Array.from((await generate(dec, r.promptTokens, { maxNewTokens: N, eosTokenId: 4095 })).tokens);
      const ok =
        JSON.stringify(r.tokens) === JSON.stringify(want) && JSON.stringify(r.streamed) === JSON.stringify(want) && r.tokens.length === N;
      results.push({
        label: `transformers.js greedy (${run.label})`,
        device: run.device,
        tokens: r.tokens,
        engine: want,
        text: r.text,
        ms: r.ms,
        ok,
      });
      console.log(`  ${run.device.padEnd(6)} transformers.js greedy ${N} tokens (${run.label}) (${r.ms.toFixed(0)} ms) "${r.text}"`);
      expect(r.tokens, 'generated tokens').toEqual(want);
      expect(r.streamed, 'streamed tokens').toEqual(want);
      expect(r.tokens).toHaveLength(N);
    });
  }

  test('every request stayed on the page origin', () => {
    expect(foreign).toEqual([]);
  });
});
