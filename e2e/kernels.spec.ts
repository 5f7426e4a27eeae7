// WebGPU kernel suite in headless Debian Chromium (SwiftShader when there is no GPU): every kernel of the
// Backend contract vs the CPU reference, run inside the engine worker (e2e/pages/kernels.ts,
// src/engine/webgpu/suite.ts). The page runs the suite once; each test below checks one family of its cases
// and prints one line per case. Pass: normRel < tol and elementwise maxRel < elemTol per output.
// Writes e2e/artifacts/kernels.json. KERNEL_FILTER=matmul runs the cases whose kernel name contains it.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from '@playwright/test';
import type { CaseResult, SuiteResult } from '../src/engine/webgpu/suite';
import { artifacts, expect, pagesUrl, test } from './fixtures';

const TIMEOUT_MS = Number(process.env.KERNEL_SUITE_TIMEOUT_MS ?? 240_000);
const filter = process.env.KERNEL_FILTER;

/** Families of the suite's cases, by kernel name. A case in none of them fails the last test. */
const FAMILIES: [string, RegExp][] = [
  ['matmul', /^matmul$/],
  ['elementwise (add, sub, mul, scale, axpy, sumSquares, copy)', /^(add|sub|mul|scale|axpy|sumSquares|copy|zeros\+axpy)$/],
  ['activations and bias', /^(activation|activationBackward) |^addBias/],
  ['column slices and row sums', /^(sumRows|sliceCols|addIntoCols)$/],
  ['embedding gather / scatterAdd', /^(gather|scatterAdd)$/],
  ['normalization (layerNorm, rmsNorm)', /^(layerNorm|rmsNorm)/],
  ['attention and rope', /^(attention|attentionBackward|rope)/],
  ['cross-entropy', /^crossEntropy/],
  ['adamw', /^adamw$/],
  [
    'behaviour (pool, limits, split dispatches, backend choice, device loss)',
    /^(pool|limits|gather split|matmul batch split|chooseBackend|device\.lost)$/,
  ],
  ['training step vs CPU (loss, gradients, AdamW, allocations)', /^train step /],
  ['engine worker self-test', /^worker selftest$/],
];

function report(c: CaseResult): string {
  const err = c.error ? `  ERROR ${c.error}` : '';
  return (
    `  ${c.ok ? 'ok  ' : 'FAIL'} ${c.kernel.padEnd(28)} ${c.shape.padEnd(34)} normRel=${c.normRel.toExponential(2)} ` +
    `maxRel=${c.maxRel.toExponential(2)} ${c.ms.toFixed(0)}ms${err}`
  );
}

test.describe('WebGPU kernels vs the CPU reference', () => {
  test.describe.configure({ mode: 'serial' });
  let suite: SuiteResult;
  let page: Page;

  test.beforeAll(async ({ browser }) => {
    test.setTimeout(TIMEOUT_MS + 60_000);
    const t0 = Date.now();
    page = await browser.newPage();
    const consoleErrors: string[] = [];
    page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    await page.goto(pagesUrl(`e2e/pages/kernels.html${filter ? `?filter=${encodeURIComponent(filter)}` : ''}`));
    await page.waitForFunction(() => window.__suite !== undefined, null, { timeout: TIMEOUT_MS });
    const r = (await page.evaluate(() => window.__suite)) as SuiteResult | { fatal: string };
    if ('fatal' in r) throw new Error(`kernel suite page failed: ${r.fatal}\n${consoleErrors.join('\n')}`);
    suite = r;
    const i = r.info;
    console.log(
      `[kernels] adapter: ${i.vendor}/${i.architecture} ${i.description} fallback=${i.isFallbackAdapter} ` +
        `shader-f16=${i.shaderF16} subgroups=${i.subgroups} maxBuffer=${i.limits.maxBufferSize} ` +
        `maxBinding=${i.limits.maxStorageBufferBindingSize}; ${r.passed} passed, ${r.failed} failed ` +
        `(normRel < ${r.tol}, elementwise < ${r.elemTol}; suite ${(r.ms / 1000).toFixed(1)} s)`,
    );
    const byKernel = new Map<string, number>();
    for (const c of r.cases) byKernel.set(c.kernel, Math.max(byKernel.get(c.kernel) ?? 0, c.normRel));
    writeFileSync(
      join(artifacts, 'kernels.json'),
      JSON.stringify({ ...r, normRelByKernel: Object.fromEntries(byKernel), wallMs: Date.now() - t0 }, null, 2),
    );
  });
  test.afterAll(async () => page?.close());

  for (const [family, pattern] of FAMILIES) {
    test(family, () => {
      const cases = suite.cases.filter((c) => pattern.test(c.kernel));
      test.skip(filter !== undefined && cases.length === 0, `no case of this family matches KERNEL_FILTER=${filter}`);
      console.log(cases.map(report).join('\n'));
      expect(cases.length, 'cases in this family').toBeGreaterThan(0);
      expect(cases.filter((c) => !c.ok).map(report), 'failed cases').toEqual([]);
    });
  }

  test('every case of the suite belongs to a family above', () => {
    const orphans = suite.cases.filter((c) => !FAMILIES.some(([, p]) => p.test(c.kernel))).map(report);
    expect(orphans).toEqual([]);
    expect(suite.cases.filter((c) => !c.ok).length).toBe(suite.failed);
  });
});
