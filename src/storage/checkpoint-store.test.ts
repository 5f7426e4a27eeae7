import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CheckpointError,
  MANIFEST_NAME,
  ManifestCheckpointStore,
  MemoryBlobStore,
  NodeBlobStore,
  TEMP_MARKER,
  autoCheckpointStore,
  crc32,
  type BlobStore,
} from './index';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array | undefined) => new TextDecoder().decode(b);

/** A BlobStore that "crashes" (throws, leaving what a killed writer would) on the n-th put. */
class CrashingBlobStore implements BlobStore {
  puts = 0;
  constructor(
    readonly inner: BlobStore,
    readonly crashOnPut: number,
    /** what the crash leaves: a partial temp object (as a kill mid-write of Node's put would) */
    readonly leaveTemp = true,
  ) {}
  async put(name: string, bytes: Uint8Array): Promise<void> {
    this.puts++;
    if (this.puts === this.crashOnPut) {
      if (this.leaveTemp && this.inner instanceof MemoryBlobStore)
        this.inner.objects.set(name + TEMP_MARKER + 'x', bytes.slice(0, bytes.length >> 1));
      throw new Error('simulated crash');
    }
    return this.inner.put(name, bytes);
  }
  get(name: string) {
    return this.inner.get(name);
  }
  list(prefix?: string) {
    return this.inner.list(prefix);
  }
  delete(name: string) {
    return this.inner.delete(name);
  }
  listTemp() {
    return this.inner.listTemp();
  }
}

function rand(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    b[i] = s >>> 24;
  }
  return b;
}

/** The checkpoint semantics, run against each backend. */
function suite(name: string, make: () => Promise<{ blobs: BlobStore; reopen: () => BlobStore }>) {
  describe(`CheckpointStore over ${name}`, () => {
    it('put/get/list/delete round-trip', async () => {
      const { blobs } = await make();
      const s = new ManifestCheckpointStore(blobs);
      await s.put('a/b.bin', enc('x'));
      await s.put('c.txt', enc('y'));
      await s.put('c.txt', enc('z'));
      expect(dec((await s.get('c.txt')) ?? undefined)).toBe('z');
      expect(await s.get('nope')).toBeNull();
      expect(await s.list()).toEqual(['a/b.bin', 'c.txt']);
      expect(await s.list('a/')).toEqual(['a/b.bin']);
      await s.delete('a/b.bin');
      await s.delete('a/b.bin');
      expect(await s.list()).toEqual(['c.txt']);
      await expect(s.put('../escape', enc('x'))).rejects.toThrow(CheckpointError);
      await expect(s.put(`x${TEMP_MARKER}1`, enc('x'))).rejects.toThrow(/invalid object name/);
    });

    it('commit, latest, load with verification; re-commit replaces the old generation', async () => {
      const { blobs, reopen } = await make();
      const s = new ManifestCheckpointStore(blobs);
      expect(await s.latest()).toBeNull();
      expect(await s.loadLatest()).toBeNull();
      const w1 = rand(1000, 1);
      const e1 = await s.commit('step-10', { 'weights.bin': w1, 'state.json': enc('{"step":10}') }, { step: 10 });
      expect(e1.files.find((f) => f.name === 'weights.bin')).toEqual({
        name: 'weights.bin',
        bytes: 1000,
        crc32: crc32(w1).toString(16).padStart(8, '0'),
      });
      await s.commit('best', { 'weights.bin': rand(10, 2) }, { loss: 1.5 });
      await s.commit('best', { 'weights.bin': rand(10, 3) }, { loss: 1.2 });
      const again = new ManifestCheckpointStore(reopen()); // a fresh process sees the same state
      expect((await again.latest())?.id).toBe('best');
      expect((await again.checkpoints()).map((c) => [c.id, c.meta])).toEqual([
        ['step-10', { step: 10 }],
        ['best', { loss: 1.2 }],
      ]);
      const best = await again.load('best');
      expect(best.files['weights.bin']).toEqual(rand(10, 3));
      const l = await again.load('step-10');
      expect(l.files['weights.bin']).toEqual(w1);
      expect(dec(l.files['state.json'])).toBe('{"step":10}');
      // only the live generation of "best" remains on storage
      expect((await blobs.list('checkpoints/')).filter((n) => n.includes('best'))).toHaveLength(1);
      await expect(again.load('nope')).rejects.toMatchObject({ code: 'not-found' });
    });

    it('prune and remove', async () => {
      const { blobs } = await make();
      const s = new ManifestCheckpointStore(blobs);
      for (let i = 1; i <= 4; i++) await s.commit(`step-${i}`, { w: rand(8, i) });
      await s.commit('best', { w: rand(8, 9) });
      expect(await s.prune(2, ['step-1'])).toEqual(['step-3', 'step-2']);
      expect((await s.checkpoints()).map((c) => c.id)).toEqual(['step-1', 'step-4', 'best']);
      await s.remove('best');
      expect((await s.latest())?.id).toBe('step-4');
      expect(await blobs.list('checkpoints/')).toHaveLength(2);
    });

    it('detects damaged files and resumes from the last good checkpoint', async () => {
      const { blobs } = await make();
      const s = new ManifestCheckpointStore(blobs);
      await s.commit('a', { w: rand(64, 1) });
      const eb = await s.commit('b', { w: rand(64, 2) });
      const bad = rand(64, 2);
      bad[5] = (bad[5] as number) ^ 1;
      await blobs.put(`${eb.dir}/w`, bad); // bit rot under the manifest
      await expect(s.load('b')).rejects.toMatchObject({ code: 'corrupt', message: expect.stringMatching(/CRC-32/) });
      const r = await s.loadLatest();
      expect(r?.entry.id).toBe('a');
      expect(r?.skipped[0]).toMatch(/checkpoint "b"/);
      await blobs.put(`${eb.dir}/w`, rand(10, 2));
      await expect(s.load('b')).rejects.toThrow(/has 10 bytes, expected 64/);
      await blobs.delete(`${eb.dir}/w`);
      await expect(s.load('b')).rejects.toThrow(/missing/);
    });

    it('a corrupt manifest is an error, not an empty store', async () => {
      const { blobs } = await make();
      await blobs.put(MANIFEST_NAME, enc('{"format":'));
      await expect(new ManifestCheckpointStore(blobs).latest()).rejects.toMatchObject({ code: 'corrupt-manifest' });
    });
  });
}

suite('memory', async () => {
  const m = new MemoryBlobStore();
  return { blobs: m, reopen: () => m };
});

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'gradot-ckpt-'));
  dirs.push(d);
  return d;
}

suite('node fs', async () => {
  const d = await tempDir();
  return { blobs: new NodeBlobStore(d), reopen: () => new NodeBlobStore(d) };
});

describe('crash mid-commit', () => {
  it('memory: a commit that dies after some files leaves the previous checkpoint latest; gc cleans up', async () => {
    const mem = new MemoryBlobStore();
    const ok = new ManifestCheckpointStore(mem);
    await ok.commit('step-1', { a: rand(16, 1), b: rand(16, 2) }, { step: 1 });
    // step-2 writes a (put 1), then dies writing b (put 2): the manifest (put 3) is never written.
    const crashing = new ManifestCheckpointStore(new CrashingBlobStore(mem, 2));
    await expect(crashing.commit('step-2', { a: rand(16, 3), b: rand(16, 4) })).rejects.toThrow('simulated crash');
    const after = new ManifestCheckpointStore(mem);
    expect((await after.latest())?.id).toBe('step-1');
    const l = await after.loadLatest();
    expect(l?.entry.id).toBe('step-1');
    expect(l?.files.a).toEqual(rand(16, 1));
    expect(await after.list('checkpoints/')).toContain('checkpoints/2-step-2/a'); // orphan, not a checkpoint
    const removed = await after.gc();
    expect(removed.sort()).toEqual(['checkpoints/2-step-2/a', `checkpoints/2-step-2/b${TEMP_MARKER}x`]);
    expect(await after.list('checkpoints/')).toEqual(['checkpoints/1-step-1/a', 'checkpoints/1-step-1/b']);
    // and the next commit succeeds normally
    await after.commit('step-2', { a: rand(16, 5) });
    expect((await after.loadLatest())?.files.a).toEqual(rand(16, 5));
  });

  it('memory: dying while re-committing "best" keeps the old best intact', async () => {
    const mem = new MemoryBlobStore();
    await new ManifestCheckpointStore(mem).commit('best', { w: rand(32, 1) }, { loss: 2 });
    const crashing = new ManifestCheckpointStore(new CrashingBlobStore(mem, 2)); // file ok, manifest write dies
    await expect(crashing.commit('best', { w: rand(32, 2) }, { loss: 1 })).rejects.toThrow();
    const s = new ManifestCheckpointStore(mem);
    const best = await s.load('best');
    expect(best.entry.meta).toEqual({ loss: 2 });
    expect(best.files.w).toEqual(rand(32, 1));
  });

  it('node: a torn temp file from a killed write is invisible, and gc removes it', async () => {
    const d = await tempDir();
    const s = new ManifestCheckpointStore(new NodeBlobStore(d));
    await s.commit('step-1', { w: rand(100, 1) });
    const manifestBefore = await readFile(join(d, MANIFEST_NAME), 'utf8');
    // What a kill during step-2 leaves: one complete file, one half-written temp, old manifest.
    await s.put('checkpoints/2-step-2/a', rand(100, 2));
    await writeFile(join(d, 'checkpoints/2-step-2', `b${TEMP_MARKER}dead`), rand(50, 3));
    await writeFile(join(d, `${MANIFEST_NAME}${TEMP_MARKER}dead`), '{"format":"gradot-ch');
    const fresh = new ManifestCheckpointStore(new NodeBlobStore(d));
    expect(await readFile(join(d, MANIFEST_NAME), 'utf8')).toBe(manifestBefore);
    expect((await fresh.loadLatest())?.entry.id).toBe('step-1');
    expect(await fresh.list()).not.toContain(`${MANIFEST_NAME}${TEMP_MARKER}dead`);
    expect((await fresh.listTemp()).length).toBe(2);
    expect((await fresh.gc()).length).toBe(3);
    expect(await fresh.list()).toEqual(['checkpoints/1-step-1/w', MANIFEST_NAME]);
  });

  it('gc never deletes checkpoint files when the manifest is missing', async () => {
    const mem = new MemoryBlobStore();
    const s = new ManifestCheckpointStore(mem);
    await s.commit('x', { w: rand(4, 1) });
    await mem.delete(MANIFEST_NAME);
    expect(await s.gc()).toEqual([]);
    expect(await mem.list('checkpoints/')).toHaveLength(1);
  });

  it('node: SIGKILL of a process committing in a loop never leaves a bad latest checkpoint', async () => {
    const d = await tempDir();
    const script = join(d, '..', `ckpt-writer-${process.pid}-${Date.now()}.mts`);
    const storeModule = new URL('./node.ts', import.meta.url).pathname;
    // The writer commits checkpoints whose contents are a function of their step, 2 MB each so a kill
    // is likely to land mid-write.
    await writeFile(
      script,
      `import { nodeCheckpointStore } from ${JSON.stringify(storeModule)};
const s = nodeCheckpointStore(${JSON.stringify(d)});
for (let step = 1; ; step++) {
  const w = new Uint8Array(2 << 20).fill(step & 255);
  await s.commit('last', { 'w.bin': w, 'step.json': new TextEncoder().encode(JSON.stringify({ step })) }, { step });
  if (step === 2) process.stdout.write('ready\\n');
}
`,
    );
    try {
      for (let trial = 0; trial < 2; trial++) {
        const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'inherit'] });
        await new Promise<void>((resolve, reject) => {
          child.stdout.on('data', (b: Buffer) => b.toString().includes('ready') && resolve());
          child.on('exit', (code) => reject(new Error(`writer exited early (${code})`)));
        });
        await new Promise((r) => setTimeout(r, 50 + Math.random() * 250));
        child.kill('SIGKILL');
        await new Promise((r) => child.once('exit', r));
        const s = new ManifestCheckpointStore(new NodeBlobStore(d));
        const l = await s.loadLatest();
        expect(l).not.toBeNull();
        expect(l?.skipped).toEqual([]);
        const step = (JSON.parse(dec(l?.files['step.json'])) as { step: number }).step;
        expect(l?.entry.meta).toEqual({ step });
        expect(l?.files['w.bin']?.every((v) => v === (step & 255))).toBe(true);
        const removed = await s.gc();
        if (process.env.CKPT_DEBUG) console.log('step', step, 'gc removed', removed);
        expect(await s.listTemp()).toEqual([]);
      }
    } finally {
      await rm(script, { force: true });
    }
  });
});

describe('autoCheckpointStore', () => {
  it('uses the file system in Node', async () => {
    const d = await tempDir();
    const s = autoCheckpointStore(d);
    expect(s.blobs).toBeInstanceOf(NodeBlobStore);
    await s.commit('a', { w: rand(3, 1) });
    expect((await readFile(join(d, MANIFEST_NAME), 'utf8')).length).toBeGreaterThan(0);
  });
});
