// Runs every browser spec in e2e/ (each a Node script run with tsx that drives Debian's Chromium through
// playwright-core; no browser downloads) and closes with 'N passed, N failed'. Non-zero exit on failure.
// `node e2e/run.mjs kernels` runs only specs whose file name contains 'kernels'.
import { readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const only = process.argv[2];
const specs = readdirSync(here)
  .filter((f) => f.endsWith('.spec.ts') && (!only || f.includes(only)))
  .sort();
if (specs.length === 0) {
  console.log('[e2e] no browser specs found');
  console.log('0 passed, 0 failed');
  process.exit(0);
}
const perSpecMs = Number(process.env.E2E_SPEC_TIMEOUT_MS ?? 600_000);
let failed = 0;
for (const spec of specs) {
  const t0 = Date.now();
  console.log(`[e2e] ${spec}`);
  const r = spawnSync(process.execPath, [join(here, '..', 'node_modules', 'tsx', 'dist', 'cli.mjs'), join(here, spec)], {
    stdio: 'inherit',
    timeout: perSpecMs,
    killSignal: 'SIGKILL',
  });
  const secs = ((Date.now() - t0) / 1000).toFixed(1);
  if (r.status !== 0) {
    failed++;
    const why = r.error ? ` (${r.error.message})` : r.signal ? ` (signal ${r.signal})` : ` (exit ${r.status})`;
    console.log(`[e2e] FAILED ${spec} in ${secs}s${why}`);
  } else {
    console.log(`[e2e] passed ${spec} in ${secs}s`);
  }
}
console.log(`${specs.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
