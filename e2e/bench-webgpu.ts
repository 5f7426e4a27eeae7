// `npm run bench:webgpu`: drives e2e/pages/bench.html in Debian's Chromium and prints our WebGPU matmul,
// onnxruntime-web's WebGPU MatMul and our CPU backend in GFLOP/s with ratios. Not part of `npm test`.
// Sizes: 256,512 by default (SwiftShader is slow); `--large` adds 1024,2048; `--sizes=a,b,c` overrides.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { launchChromium } from './chromium';
import { repoRoot, startServer } from './pages-server';
import type { BenchResult } from './pages/bench';

const argSizes = process.argv.find((a) => a.startsWith('--sizes='))?.slice('--sizes='.length);
const sizes = argSizes ?? (process.argv.includes('--large') ? '256,512,1024,2048' : '256,512');
// `--train-layers=N` (default 6; 0 skips) and `--train-t=T` (default 64) for the training-step timing.
const trainLayers = process.argv.find((a) => a.startsWith('--train-layers='))?.split('=')[1] ?? '6';
const trainT = process.argv.find((a) => a.startsWith('--train-t='))?.split('=')[1] ?? '64';
// `--profile`: GPU time per kernel over one training step (timestamp queries).
const profile = process.argv.includes('--profile') ? '&profile=1' : '';
// `--census`: dispatches per kernel over one training step.
const census = process.argv.includes('--census') ? '&census=1' : '';
// `--no-tfjs`: skip the TF.js webgpu training-step peer.
const tfjs = process.argv.includes('--no-tfjs') ? '&tfjs=0' : '';

async function main(): Promise<number> {
  const server = await startServer();
  // GRADOT_CHROMIUM_ARGS: extra switches, e.g. the Vulkan ones tools/gpu/bench.sh passes on a GPU machine.
  const browser = await launchChromium((process.env.GRADOT_CHROMIUM_ARGS ?? '').split(' ').filter(Boolean));
  try {
    const page = await browser.context.newPage();
    page.on('console', (m) => {
      if (m.type() === 'error') console.error(`[page] ${m.text()}`);
    });
    const offOrigin: string[] = [];
    page.on('request', (r) => {
      if (!r.url().startsWith(server.url(''))) offOrigin.push(r.url());
    });
    await page.goto(
      server.url(`e2e/pages/bench.html?sizes=${sizes}&trainLayers=${trainLayers}&trainT=${trainT}${profile}${census}${tfjs}`),
    );
    await page.waitForFunction(() => window.__bench !== undefined, null, { timeout: 3_600_000, polling: 1000 });
    const r = (await page.evaluate(() => window.__bench)) as BenchResult | { fatal: string };
    if ('fatal' in r) {
      console.error(`[bench] fatal: ${r.fatal}`);
      return 1;
    }
    const info = r.info as { vendor: string; architecture: string; isFallbackAdapter: boolean };
    console.log(`[bench] adapter ${info.vendor}/${info.architecture} fallback=${info.isFallbackAdapter}`);
    const f = (x: number | null | undefined, d = 2) => (x == null ? '-' : x.toFixed(d));
    console.log('    n   ours GFLOP/s   ort GFLOP/s   cpu GFLOP/s   ours/ort   ours/cpu   ours ms     ort ms');
    for (const x of r.rows) {
      console.log(
        `${String(x.n).padStart(5)} ${f(x.gpuGflops).padStart(14)} ${f(x.ortGflops).padStart(13)} ` +
          `${f(x.cpuGflops).padStart(13)} ${f(x.ortGflops ? x.gpuGflops / x.ortGflops : null).padStart(10)} ` +
          `${f(x.cpuGflops ? x.gpuGflops / x.cpuGflops : null).padStart(10)} ${f(x.gpuMs, 1).padStart(9)} ` +
          `${f(x.ortMs, 1).padStart(10)}${x.ortError ? `  ort error: ${x.ortError}` : ''}` +
          `${x.ortCheck !== undefined && x.ortCheck > 1e-3 ? `  ORT OUTPUT MISMATCH ${x.ortCheck}` : ''}`,
      );
    }
    if (r.train && 'error' in r.train) console.log(`[bench] training step failed: ${r.train.error}`);
    else if (r.train) {
      const [g, c] = r.train;
      for (const x of r.train) {
        console.log(
          `[bench] train step ${x.backend}: ${x.layers} layers, ${(x.params / 1e6).toFixed(2)}M params, ` +
            `${x.tokens} tokens: ${x.msPerStep.toFixed(0)} ms/step, ${x.tokensPerSec.toFixed(1)} tokens/s (loss ${x.loss.toFixed(3)})` +
            (x.dispatchesPerStep !== undefined ? `; ${x.dispatchesPerStep} dispatches, ${x.submitsPerStep} submits per step` : ''),
        );
      }
      if (g && c) console.log(`[bench] train step webgpu/cpu speed ratio: ${(c.msPerStep / g.msPerStep).toFixed(2)}`);
      if (r.tfjs && 'error' in r.tfjs) console.log(`[bench] TF.js training step failed: ${r.tfjs.error}`);
      else if (r.tfjs && g) {
        const t = r.tfjs;
        console.log(
          `[bench] train step ${t.backend}: ${(t.params / 1e6).toFixed(2)}M params, ${t.tokens} tokens: ` +
            `${t.msPerStep.toFixed(0)} ms/step, ${t.tokensPerSec.toFixed(1)} tokens/s (loss ${t.loss.toFixed(3)})`,
        );
        console.log(
          `[bench] train step ours/TF.js webgpu speed ratio: ${(t.msPerStep / g.msPerStep).toFixed(2)} (target >= 2 on a real GPU)`,
        );
      }
    }
    if (r.census) {
      const total = r.census.reduce((a, x) => a + x.count, 0);
      console.log(`[bench] dispatches per kernel over one training step (total ${total}):`);
      for (const x of r.census) console.log(`  ${x.kernel.padEnd(36)} ${String(x.count).padStart(5)}`);
    }
    if (r.profile) {
      const total = r.profile.reduce((a, x) => a + x.ms, 0);
      console.log(`[bench] GPU time per kernel over one training step (total ${total.toFixed(0)} ms):`);
      for (const x of r.profile.slice(0, 25)) {
        console.log(`  ${x.label.padEnd(36)} ${x.ms.toFixed(1).padStart(9)} ms  x${x.count}  ${((100 * x.ms) / total).toFixed(1)}%`);
      }
    }
    if (offOrigin.length) console.error(`[bench] requests left the origin: ${offOrigin.join(', ')}`);
    const dir = join(repoRoot, 'e2e', 'artifacts');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'bench-webgpu.json'), JSON.stringify(r, null, 2));
    return offOrigin.length ? 1 : 0;
  } finally {
    await browser.close();
    await server.close();
  }
}

main().then(
  (c) => process.exit(c),
  (e) => {
    console.error('[bench] harness error:', e);
    process.exit(1);
  },
);
