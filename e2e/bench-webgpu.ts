// `npm run bench:webgpu`: drives e2e/pages/bench.html in Debian's Chromium and prints our WebGPU matmul,
// onnxruntime-web's WebGPU MatMul and our CPU backend in GFLOP/s with ratios. Not part of `npm test`.
// Sizes: 256,512 by default (SwiftShader is slow); `--large` adds 1024,2048; `--sizes=a,b,c` overrides.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { launchChromium } from './lib/browser';
import { repoRoot, startServer } from './lib/server';
import type { BenchResult } from './pages/bench';

const argSizes = process.argv.find((a) => a.startsWith('--sizes='))?.slice('--sizes='.length);
const sizes = argSizes ?? (process.argv.includes('--large') ? '256,512,1024,2048' : '256,512');

async function main(): Promise<number> {
  const server = await startServer();
  const browser = await launchChromium();
  try {
    const page = await browser.context.newPage();
    page.on('console', (m) => {
      if (m.type() === 'error') console.error(`[page] ${m.text()}`);
    });
    const offOrigin: string[] = [];
    page.on('request', (r) => {
      if (!r.url().startsWith(server.url(''))) offOrigin.push(r.url());
    });
    await page.goto(server.url(`e2e/pages/bench.html?sizes=${sizes}`));
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
