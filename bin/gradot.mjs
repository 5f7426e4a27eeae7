#!/usr/bin/env node
// Launcher for `npx gradot`: registers tsx's ESM loader in-process and runs the TypeScript CLI, so no build
// step is needed after `npm ci`.
//
// On Linux (glibc) it first re-runs itself once with malloc tuned for big typed arrays (bin/launcher.mjs
// says what and why: a fixed mmap threshold, two arenas, transparent huge pages; and a scratch folder for the
// job's temporary files that is removed however the job ends). The CPU backend's storage
// pool (src/engine/cpu/storage-pool.ts) serves most allocations from freed tensors without asking malloc;
// the arrays it drops, or never keeps, go back to the system when collected, through the fixed mmap
// threshold. GRADOT_MALLOC_TUNED=0 turns the re-run off.
import { mallocTuningEnv, runTuned } from './launcher.mjs';

const tuning = process.platform === 'linux' ? mallocTuningEnv(process.env) : null;

if (tuning) {
  // --expose-gc: the engine asks for a collection after freeing large blocks (src/engine/reclaim.ts).
  const { child, done } = runTuned(process.execPath, [...process.execArgv, '--expose-gc', ...process.argv.slice(1)], {
    ...process.env,
    ...tuning,
  });
  // Ctrl-C reaches the child directly (same process group), so this process only waits for it (passing a
  // second SIGINT on would make a tune stop before its checkpoint is written). SIGTERM and SIGHUP are
  // passed on.
  process.on('SIGINT', () => {});
  for (const s of ['SIGTERM', 'SIGHUP']) process.on(s, () => child.kill(s));
  process.exitCode = await done;
} else {
  if (process.env.GRADOT_MALLOC_TUNED === '1') {
    // Never outlive the launcher (even one killed by SIGKILL): a thread of its own watches the parent, since
    // the main thread can compute for minutes without returning to its event loop.
    const { Worker } = await import('node:worker_threads');
    const watch = `const p0 = ${process.ppid}; setInterval(() => { if (process.ppid !== p0) process.kill(process.pid, 'SIGKILL'); }, 500);`;
    new Worker(watch, { eval: true }).unref();
  }
  const { register } = await import('tsx/esm/api');
  register();
  const { main } = await import('../src/cli/main.ts');
  process.exitCode = await main(process.argv.slice(2));
}
