// Runs the kernel suite inside the engine worker (so the worker + comlink path is exercised too) and
// publishes the result on window.__suite for the Playwright spec.
import * as Comlink from 'comlink';
import type { EngineWorkerApi } from '../../workers/engine.worker';
import type { SuiteResult } from '../../src/engine/webgpu/suite';

declare global {
  interface Window {
    __suite?: SuiteResult | { fatal: string };
  }
}

const params = new URLSearchParams(location.search);
const worker = new Worker(new URL('../../workers/engine.worker.ts', import.meta.url), { type: 'module' });
worker.addEventListener('error', (e) => (window.__suite = { fatal: `worker error: ${e.message}` }));
const api = Comlink.wrap<EngineWorkerApi>(worker);
try {
  const probe = await api.probe();
  if (!probe.info) throw new Error(`no WebGPU in worker: ${probe.error}`);
  const r = await api.runKernelSuite({ filter: params.get('filter') ?? undefined });
  if (!params.get('filter')) {
    for (const c of await api.trainStepCheck()) {
      r.cases.push(c);
      if (c.ok) r.passed++;
      else r.failed++;
    }
  }
  const st = await api.selftest();
  r.cases.push({
    kernel: 'worker selftest',
    shape: 'matmul 33x29x47 + sumSquares',
    ok: st.ok,
    maxRel: st.maxAbsErr,
    normRel: st.maxAbsErr,
    ms: st.ms,
  });
  if (!st.ok) r.failed++;
  else r.passed++;
  window.__suite = r;
  document.getElementById('log')!.textContent = `${r.passed} passed, ${r.failed} failed`;
} catch (e) {
  window.__suite = { fatal: e instanceof Error ? `${e.message}\n${e.stack}` : String(e) };
}
