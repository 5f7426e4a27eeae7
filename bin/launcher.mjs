import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';

// How the `gradot` launcher (bin/gradot.mjs) re-runs itself on Linux, kept apart from it so that tests can
// check it: the environment (glibc's malloc tuned for the many large typed arrays of a real-size job) and a
// scratch folder that the child's temporary files go into and that this process removes however the child
// ends.
//
// - MALLOC_ARENA_MAX=2, MALLOC_MMAP_THRESHOLD_=128 KiB: glibc raises its mmap threshold each time a large
//   block is freed (up to 32 MB), so the 1-32 MB activations, gradients and statistics of a step would then
//   come from heaps whose freed pages are rarely given back, one arena per worker thread. Measured on the
//   gpt2-shaped compress: peak RSS 2.14 GB without, 1.88 GB with, same output bytes.
// - glibc.malloc.hugetlb=1 (glibc 2.35+; older glibc ignores the tunable, a kernel with transparent huge
//   pages off ignores the advice): those mmap'd buffers are backed by 2 MiB pages where the kernel can.
//   Every fresh buffer is otherwise faulted in 4 KiB at a time: 3.2 M page faults in a gpt2-shaped compress
//   with one support batch, against 1.0-1.2 M with huge pages, for 12-20% less CPU time (user and system),
//   the same output bytes and peak RSS within 2% (two interleaved A/B pairs). A hugetlb setting the user
//   already gave in GLIBC_TUNABLES wins.

/** Variables to add to `env` for the re-run, or null when the user set malloc up themselves. */
export function mallocTuningEnv(env) {
  if (env.GRADOT_MALLOC_TUNED !== undefined || env.MALLOC_ARENA_MAX !== undefined || env.MALLOC_MMAP_THRESHOLD_ !== undefined) return null;
  const tunables = env.GLIBC_TUNABLES ?? '';
  const hugetlb = /(^|:)glibc\.malloc\.hugetlb=/.test(tunables) ? tunables : [tunables, 'glibc.malloc.hugetlb=1'].filter(Boolean).join(':');
  return { GRADOT_MALLOC_TUNED: '1', MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '131072', GLIBC_TUNABLES: hugetlb };
}

/**
 * Starts `command args` with `env` plus GRADOT_SCRATCH_DIR, a fresh folder under the system's temporary
 * folder that the CLI puts its temporary files in (the factor spill of a compress). The folder goes when the
 * child ends, whether it exits, throws or is killed by a signal.
 *
 * Why here and not in the child: a compress computes for minutes on its main thread without returning to
 * its event loop, and a JavaScript signal handler only runs when the loop turns. A handler in the child
 * (as the spill had) turned Ctrl-C and SIGTERM into no-ops until the job ended, 25 minutes in one case;
 * without one the signal ends the child at once, and this process, idle in its loop, cleans up.
 * Resolves `done` with the exit status a shell would report (128 + signal number when killed).
 */
export function runTuned(command, args, env) {
  const scratch = mkdtempSync(join(tmpdir(), 'gradot-run-'));
  const child = spawn(command, args, { stdio: 'inherit', env: { ...env, GRADOT_SCRATCH_DIR: scratch } });
  const done = new Promise((resolve) => {
    const finish = (status) => {
      rmSync(scratch, { recursive: true, force: true });
      resolve(status);
    };
    child.on('error', (e) => {
      process.stderr.write(`gradot: cannot start (${e.message})\n`);
      finish(1);
    });
    child.on('exit', (code, signal) => finish(code ?? 128 + (constants.signals[signal] ?? 0)));
  });
  return { child, scratch, done };
}
