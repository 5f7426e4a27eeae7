// Exported models in the browser: onnxruntime-web with the WebGPU EP (SwiftShader in headless Chromium)
// and the WASM EP must give our engine's logits (computed here in Node on the CPU backend) within 1e-4
// relative, for a full model, an emulator (factored q/v, pruned MLP, dropped block) and a plug-in model,
// including prefill + single steps through the KV cache; transformers.js must generate from in-memory
// exported files (the studio's "try it" path) the same greedy tokens as our engine. Every request must stay
// on the page's origin (ORT's wasm is served locally). Writes e2e/artifacts/onnx.json.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadHFModel } from '../src/model/hf';
import { nodeDirSource } from '../src/model/source';
import { tokenizerFilesOf } from '../src/cli/commands/export-onnx';
import { join } from 'node:path';
import { launchChromium } from './lib/browser';
import { createServer } from 'vite';
import { repoRoot } from './lib/server';
import type { GenerateJob, LogitsJob, LogitsResult } from './pages/onnx';
import { exportOnnx, exportTransformersJsFolder } from '../src/onnx/export';
import { ortInfoFromSpec } from '../src/onnx/runtime';
import { buildTestEmulator, buildTestPlugin, engineLogits, maxRelErr, randomIds } from '../src/onnx/testing';
import { randomModel, randomTestModel, smallSpec } from '../src/model/random-model';
import { decoderFromWeights } from '../src/model/decoder';
import { CpuBackend } from '../src/engine/cpu/backend';
import { generate } from '../src/model/generate';
import type { ModelSpec } from '../src/model/spec';
import type { WeightMap } from '../src/model/weights';

const TOL = 1e-4;
const TIMEOUT_MS = Number(process.env.ONNX_E2E_TIMEOUT_MS ?? 240_000);
const b64 = (u: Uint8Array): string => Buffer.from(u).toString('base64');

interface Case {
  label: string;
  spec: ModelSpec;
  weights: WeightMap;
  ep: 'webgpu' | 'wasm';
}

function cases(): Case[] {
  const llama = smallSpec('llama', { numLayers: 4, maxPositions: 32 });
  const full = randomTestModel(llama, 1);
  const emu = buildTestEmulator(llama, full, { rank: 4, mlpWidth: 40, dropBlocks: 1 });
  const gpt = smallSpec('gpt2', { numLayers: 3, maxPositions: 32 });
  const gfull = randomTestModel(gpt, 2);
  return [
    { label: 'llama full (GQA)', spec: llama, weights: full, ep: 'webgpu' },
    { label: 'llama emulator', spec: emu.spec, weights: emu.weights, ep: 'webgpu' },
    { label: 'gpt2 plug-in', spec: gpt, weights: buildTestPlugin(gpt, gfull, 3), ep: 'webgpu' },
    { label: 'llama full (GQA)', spec: llama, weights: full, ep: 'wasm' },
  ];
}

const DEMO = join(repoRoot, 'public/models/demo');
const PROMPT = 'Once upon a time, the model';
const N = 20;

/** e2e/lib/server's Vite dev server, plus onnx-proto pre-bundled: it is CommonJS, and the page exports
 *  ONNX in the browser (Vite's normal dev server and builds handle it without this). */
async function startServer(): Promise<{ url(path: string): string; close(): Promise<void> }> {
  const server = await createServer({
    root: repoRoot, configFile: false, logLevel: 'warn', clearScreen: false,
    server: { host: '127.0.0.1', port: 0, strictPort: false, hmr: false, watch: null },
    optimizeDeps: { noDiscovery: true, include: ['onnx-proto'] },
    worker: { format: 'es' },
  });
  await server.listen();
  const addr = server.httpServer?.address();
  if (!addr || typeof addr === 'string') throw new Error('vite server has no TCP address');
  return { url: (p: string) => `http://127.0.0.1:${addr.port}/${p.replace(/^\//, '')}`, close: () => server.close() };
}

async function main(): Promise<number> {
  const t0 = Date.now();
  const server = await startServer();
  const browser = await launchChromium();
  const foreign: string[] = [];
  let failed = 0;
  const results: Record<string, unknown>[] = [];
  try {
    const page = await browser.context.newPage();
    const logs: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') logs.push(m.text());
    });
    page.on('pageerror', (e) => logs.push(String(e)));
    page.on('request', (r) => {
      const u = new URL(r.url());
      if (!['127.0.0.1', 'localhost'].includes(u.hostname) && !['data:', 'blob:'].includes(u.protocol)) foreign.push(r.url());
    });
    await page.goto(server.url('e2e/pages/onnx.html'));
    try {
      await page.waitForFunction(() => window.__onnxReady !== undefined, null, { timeout: TIMEOUT_MS });
    } catch (e) {
      logs.forEach((l) => console.error(`[onnx] console: ${l.slice(0, 500)}`));
      throw e;
    }
    const ready = (await page.evaluate(() => window.__onnxReady)) as { webgpu: boolean } | { fatal: string };
    if ('fatal' in ready) {
      console.error(`[onnx] page failed: ${ready.fatal}`);
      logs.forEach((l) => console.error(`[onnx] console: ${l}`));
      return 1;
    }
    console.log(`[onnx] WebGPU adapter in page: ${ready.webgpu}`);
    if (!ready.webgpu) {
      console.error('[onnx] no WebGPU adapter: the WebGPU EP cannot be tested');
      failed++;
    }

    for (const c of cases()) {
      const B = 2;
      const T = 8;
      const ids = Array.from(randomIds(B * T, c.spec.vocabSize, 7));
      const want = await engineLogits(c.spec, c.weights, Int32Array.from(ids), B, T);
      const job: LogitsJob = { model: b64(exportOnnx(c.spec, c.weights)), info: ortInfoFromSpec(c.spec), ep: c.ep, ids, B, T, prefill: 5 };
      try {
        const r = (await page.evaluate((j) => window.__runLogits!(j), job)) as LogitsResult;
        const eFull = maxRelErr(r.full, want);
        const eCache = maxRelErr(r.cached, want);
        const ok = eFull < TOL && eCache < TOL;
        if (!ok) failed++;
        results.push({ label: c.label, ep: c.ep, maxRelErr: eFull, maxRelErrCached: eCache, ms: r.ms, ok });
        console.log(`  ${ok ? 'ok  ' : 'FAIL'} ${c.ep.padEnd(6)} ${c.label.padEnd(18)} full ${eFull.toExponential(2)}  prefill+steps ${eCache.toExponential(2)}  ${r.ms.toFixed(0)} ms`);
      } catch (e) {
        failed++;
        results.push({ label: c.label, ep: c.ep, error: String(e) });
        console.log(`  FAIL ${c.ep} ${c.label}: ${String(e).slice(0, 500)}`);
      }
    }

    for (const ep of ['webgpu', 'wasm'] as const) {
      try {
        const r = (await page.evaluate((e) => window.__runInPage!(e), ep)) as { maxRelErr: number; ms: number };
        const ok = r.maxRelErr < TOL;
        if (!ok) failed++;
        results.push({ label: 'in-page export (emulator)', ep, maxRelErr: r.maxRelErr, ms: r.ms, ok });
        console.log(`  ${ok ? 'ok  ' : 'FAIL'} ${ep.padEnd(6)} in-page export + engine  ${r.maxRelErr.toExponential(2)}  ${r.ms.toFixed(0)} ms`);
      } catch (e) {
        failed++;
        results.push({ label: 'in-page export (emulator)', ep, error: String(e) });
        console.log(`  FAIL ${ep} in-page export: ${String(e).slice(0, 500)}`);
      }
    }

    // transformers.js from in-memory exported files, greedy, vs our engine's greedy decoding.
    const spec: ModelSpec = {
      ...smallSpec('llama', { numLayers: 2, hiddenSize: 64, numHeads: 4, vocabSize: 4096, maxPositions: 64 }),
      numKvHeads: 2, tieWordEmbeddings: false,
    };
    const w = randomModel(spec, 2024, { std: 0.25, normJitter: 0.2 });
    const files = exportTransformersJsFolder(spec, w, {
      baseConfig: { bos_token_id: 4095, eos_token_id: 4095 },
      extraFiles: { 'tokenizer.json': readFileSync(join(DEMO, 'tokenizer.json')), 'tokenizer_config.json': readFileSync(join(DEMO, 'tokenizer_config.json')) },
    });
    const runs: { label: string; spec: ModelSpec; w: WeightMap; files: Map<string, Uint8Array>; devices: ('webgpu' | 'wasm')[] }[] = [
      { label: 'random llama', spec, w, files, devices: ['webgpu', 'wasm'] },
    ];
    if (existsSync(join(DEMO, 'model.safetensors'))) {
      // the real demo model, when its checkpoint is there: what the studio's "try it" box runs
      const m = await loadHFModel(nodeDirSource(DEMO));
      const demoFiles = exportTransformersJsFolder(m.spec, m.weights, { baseConfig: m.config, extraFiles: await tokenizerFilesOf(nodeDirSource(DEMO)) });
      runs.push({ label: 'demo model', spec: m.spec, w: m.weights, files: demoFiles, devices: ['webgpu'] });
    }
    for (const run of runs) for (const device of run.devices) {
      const { spec, w, files } = run;
      const job: GenerateJob = { files: Object.fromEntries([...files].map(([k, v]) => [k, b64(v)])), prompt: PROMPT, maxNewTokens: N, device };
      try {
        const r = (await page.evaluate((j) => window.__runGenerate!(j), job)) as { tokens: number[]; promptTokens: number[]; text: string; streamed: number[]; ms: number };
        const dec = decoderFromWeights(new CpuBackend(), spec, w);
        const want = Array.from((await generate(dec, r.promptTokens, { maxNewTokens: N, eosTokenId: 4095 })).tokens);
        const ok = JSON.stringify(r.tokens) === JSON.stringify(want) && JSON.stringify(r.streamed) === JSON.stringify(want) && r.tokens.length === N;
        if (!ok) failed++;
        results.push({ label: `transformers.js greedy (${run.label})`, device, tokens: r.tokens, engine: want, text: r.text, ms: r.ms, ok });
        console.log(`  ${ok ? 'ok  ' : 'FAIL'} ${device.padEnd(6)} transformers.js greedy ${N} tokens (${run.label}) ${ok ? 'equal to engine' : `DIFFER: ${JSON.stringify(r.tokens)} vs ${JSON.stringify(want)}`} (${r.ms.toFixed(0)} ms) "${r.text}"`);
      } catch (e) {
        failed++;
        results.push({ label: `transformers.js greedy (${run.label})`, device, error: String(e) });
        console.log(`  FAIL ${device} transformers.js: ${String(e).slice(0, 500)}`);
      }
    }
    if (foreign.length) {
      failed++;
      console.log(`  FAIL requests left the origin: ${foreign.slice(0, 5).join(', ')}`);
    }
    const epWarnings = logs.filter((l) => /fall ?back|not supported|webgpu/i.test(l));
    if (epWarnings.length) console.log(`[onnx] EP-related console messages: ${epWarnings.slice(0, 5).join(' | ').slice(0, 800)}`);
    if (failed) logs.slice(0, 10).forEach((l) => console.error(`[onnx] console: ${l.slice(0, 300)}`));
  } finally {
    await browser.close();
    await server.close();
  }
  const dir = join(repoRoot, 'e2e', 'artifacts');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'onnx.json'), JSON.stringify({ results, foreignRequests: foreign, failed, wallMs: Date.now() - t0 }, null, 2));
  console.log(`[onnx] ${results.length - failed} passed, ${failed} failed (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  return failed === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error('[onnx] harness error:', e);
    process.exit(1);
  },
);
