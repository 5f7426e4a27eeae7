// WebGPU kernel suite in headless Debian Chromium (SwiftShader when there is no GPU): every kernel of the
// Backend contract vs the CPU reference, run inside the engine worker. Prints one line per case, writes
// e2e/artifacts/kernels.json, and exits non-zero on any failure.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { launchChromium } from './lib/browser';
import { repoRoot, startServer } from './lib/server';
import type { SuiteResult } from '../src/engine/webgpu/suite';

const TIMEOUT_MS = Number(process.env.KERNEL_SUITE_TIMEOUT_MS ?? 240_000);

async function main(): Promise<number> {
  const t0 = Date.now();
  const server = await startServer();
  const browser = await launchChromium();
  try {
    const page = await browser.context.newPage();
    const consoleErrors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    const filter = process.env.KERNEL_FILTER ? `?filter=${encodeURIComponent(process.env.KERNEL_FILTER)}` : '';
    await page.goto(server.url(`e2e/pages/kernels.html${filter}`));
    await page.waitForFunction(() => window.__suite !== undefined, null, { timeout: TIMEOUT_MS });
    const r = (await page.evaluate(() => window.__suite)) as SuiteResult | { fatal: string };
    if ('fatal' in r) {
      console.error(`[kernels] fatal: ${r.fatal}`);
      for (const e of consoleErrors) console.error(`[kernels] console: ${e}`);
      return 1;
    }
    const i = r.info;
    console.log(
      `[kernels] adapter: ${i.vendor}/${i.architecture} ${i.description} fallback=${i.isFallbackAdapter} ` +
        `shader-f16=${i.shaderF16} subgroups=${i.subgroups} maxBuffer=${i.limits.maxBufferSize} ` +
        `maxBinding=${i.limits.maxStorageBufferBindingSize}`,
    );
    for (const c of r.cases) {
      const err = c.error ? `  ERROR ${c.error}` : '';
      console.log(
        `  ${c.ok ? 'ok  ' : 'FAIL'} ${c.kernel.padEnd(28)} ${c.shape.padEnd(34)} normRel=${c.normRel.toExponential(2)} ` +
          `maxRel=${c.maxRel.toExponential(2)} ${c.ms.toFixed(0)}ms${err}`,
      );
    }
    const byKernel = new Map<string, number>();
    for (const c of r.cases) byKernel.set(c.kernel, Math.max(byKernel.get(c.kernel) ?? 0, c.normRel));
    const dir = join(repoRoot, 'e2e', 'artifacts');
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, 'kernels.json'),
      JSON.stringify({ ...r, normRelByKernel: Object.fromEntries(byKernel), wallMs: Date.now() - t0 }, null, 2),
    );
    console.log(
      `[kernels] ${r.passed} passed, ${r.failed} failed (normRel < ${r.tol}, elementwise < ${r.elemTol}; suite ${(r.ms / 1000).toFixed(1)}s, ` +
        `total ${((Date.now() - t0) / 1000).toFixed(1)}s)`,
    );
    return r.failed === 0 ? 0 : 1;
  } finally {
    await browser.close();
    await server.close();
  }
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error('[kernels] harness error:', e);
    process.exit(1);
  },
);
