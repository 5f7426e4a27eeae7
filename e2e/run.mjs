// Runs every Playwright spec in e2e/ against Debian's Chromium (playwright-core; no browser downloads).
// Filled in by the WebGPU kernel suite and the studio specs.
import { readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const specs = readdirSync(here).filter((f) => f.endsWith('.spec.ts')).sort();
if (specs.length === 0) {
  console.log('[e2e] no browser specs yet');
  process.exit(0);
}
let failed = 0;
for (const spec of specs) {
  console.log(`[e2e] ${spec}`);
  const r = spawnSync('npx', ['tsx', join(here, spec)], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
console.log(`${specs.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
