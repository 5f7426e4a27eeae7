// The environment the `gradot` launcher (bin/gradot.mjs) re-runs itself with on Linux: glibc's malloc
// tuned for the many large typed arrays of a real-size job. Kept apart from the launcher so that tests can
// check it without starting a process.
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
