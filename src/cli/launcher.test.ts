import { describe, expect, it } from 'vitest';
import { mallocTuningEnv } from '../../bin/launcher.mjs';

describe('launcher malloc tuning (bin/launcher.mjs)', () => {
  it('sets the mmap threshold, two arenas and huge pages for the re-run', () => {
    expect(mallocTuningEnv({})).toEqual({
      GRADOT_MALLOC_TUNED: '1',
      MALLOC_ARENA_MAX: '2',
      MALLOC_MMAP_THRESHOLD_: '131072',
      GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1',
    });
  });

  it("keeps the user's other glibc tunables and their own hugetlb choice", () => {
    expect(mallocTuningEnv({ GLIBC_TUNABLES: 'glibc.malloc.tcache_count=0' })?.GLIBC_TUNABLES).toBe(
      'glibc.malloc.tcache_count=0:glibc.malloc.hugetlb=1',
    );
    expect(mallocTuningEnv({ GLIBC_TUNABLES: 'glibc.malloc.hugetlb=0' })?.GLIBC_TUNABLES).toBe('glibc.malloc.hugetlb=0');
    expect(mallocTuningEnv({ GLIBC_TUNABLES: 'glibc.malloc.check=1:glibc.malloc.hugetlb=2' })?.GLIBC_TUNABLES).toBe(
      'glibc.malloc.check=1:glibc.malloc.hugetlb=2',
    );
  });

  it('does not re-run when malloc was set up by hand or the re-run already happened', () => {
    expect(mallocTuningEnv({ GRADOT_MALLOC_TUNED: '0' })).toBeNull();
    expect(mallocTuningEnv({ GRADOT_MALLOC_TUNED: '1' })).toBeNull();
    expect(mallocTuningEnv({ MALLOC_ARENA_MAX: '4' })).toBeNull();
    expect(mallocTuningEnv({ MALLOC_MMAP_THRESHOLD_: '65536' })).toBeNull();
  });
});
