import { mkdtemp, readFile, rm, utimes, writeFile, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointError, MemoryBlobStore, ManifestCheckpointStore, memoryCheckpointStore, nodeCheckpointStore } from '../storage';
import { tune, type TuneOptions } from '../ot/offsite/tune';
import { cpuDecoder, synthExamples, tinyModel } from '../ot/offsite/test-helpers';
import { LOCK_FILE, RunLockedError, acquireRunLock } from './run-lock';

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gradot-ckpt-faults-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('checkpoint generations', () => {
  it('a newest generation failing its CRC falls back to the previous one, and says so', async () => {
    const blobs = new MemoryBlobStore();
    const s = new ManifestCheckpointStore(blobs);
    await s.commit('last', { 'state.json': enc('{"step":2}') }, { step: 2 }, { keepPrevious: true });
    await s.commit('last', { 'state.json': enc('{"step":4}') }, { step: 4 }, { keepPrevious: true });
    await s.commit('last', { 'state.json': enc('{"step":6}') }, { step: 6 }, { keepPrevious: true });
    // Two generations on storage, not three.
    expect((await blobs.list('checkpoints/')).length).toBe(2);
    const newest = (await s.checkpoints())[0]!;
    blobs.objects.set(`${newest.dir}/state.json`, enc('{"step":7}')); // same size, wrong CRC
    const l = await s.load('last');
    expect(new TextDecoder().decode(l.files['state.json'])).toBe('{"step":4}');
    expect(l.fallback).toMatch(/checkpoint "last": file state\.json fails its CRC-32 check; loaded the previous generation \(#2\) instead/);
    // Both damaged: a named error that says so, not a silent fresh start.
    blobs.objects.set(`${newest.previous!.dir}/state.json`, enc('{"step":5}'));
    await expect(s.load('last')).rejects.toThrow(/previous generation is damaged too/);
    await expect(s.load('last')).rejects.toBeInstanceOf(CheckpointError);
  });

  const train = synthExamples(24, 3);
  const valid = synthExamples(6, 4);
  const opts: TuneOptions = {
    split: { bottom: 1, top: 1 },
    lr: 3e-3,
    batchSize: 4,
    gradAccum: 2,
    epochs: 2,
    seed: 5,
    evalEvery: 2,
    checkpointEvery: 1,
  };

  it('tune resumes from the previous generation when the newest is damaged, bit-identical to an uninterrupted run', async () => {
    const { spec, weights } = tinyModel('llama', 4);
    const ref = await tune(cpuDecoder(spec, weights), { train, valid }, opts);
    const folder = join(dir, 'run-crc');
    const store = nodeCheckpointStore(folder);
    const ac = new AbortController();
    await expect(
      tune(
        cpuDecoder(spec, weights),
        { train, valid },
        {
          ...opts,
          store,
          signal: ac.signal,
          onProgress: (p) => {
            if (p.phase === 'train' && p.step === 4) ac.abort();
          },
        },
      ),
    ).rejects.toThrow();
    const last = (await store.checkpoints()).find((e) => e.id === 'last')!;
    expect(last.previous).toBeDefined();
    // Flip one byte of the newest generation's tensors, plus leftovers of a crashed write.
    const f = join(folder, last.dir, 'tensors.bin');
    const bytes = await readFile(f);
    bytes[bytes.length - 5]! ^= 0xff;
    await writeFile(f, bytes);
    await writeFile(join(folder, last.dir, 'tensors.bin.tmp-crash1'), 'partial');
    await mkdir(join(folder, 'checkpoints', '999-orphan'), { recursive: true });
    await writeFile(join(folder, 'checkpoints', '999-orphan', 'tensors.bin'), 'orphan');
    const resumed = await tune(cpuDecoder(spec, weights), { train, valid }, { ...opts, store });
    expect(resumed.resumedFrom).toBe(last.previous!.meta && (last.previous!.meta as { step: number }).step);
    expect(resumed.notes?.join('\n')).toMatch(/fails its CRC-32 check; loaded the previous generation .*: resuming from its step/);
    expect(resumed.notes?.join('\n')).toMatch(/removed 2 leftover file\(s\)/);
    expect(existsSync(join(folder, 'checkpoints', '999-orphan', 'tensors.bin'))).toBe(false);
    for (const [k, t] of ref.adapter.weights) {
      expect(Buffer.from(resumed.adapter.weights.get(k)!.data.buffer).equals(Buffer.from(t.data.buffer)), k).toBe(true);
    }
  });

  it('a memory store keeps the same semantics (the studio uses OPFS through the same class)', async () => {
    const s = memoryCheckpointStore();
    await s.commit('last', { a: enc('1') }, null, { keepPrevious: true });
    await s.commit('best', { a: enc('2') });
    await s.commit('best', { a: enc('3') });
    expect((await s.checkpoints()).find((e) => e.id === 'best')!.previous).toBeUndefined();
    await s.remove('last');
    expect(await s.gc()).toEqual([]);
  });
});

describe('one run per folder', () => {
  it('a second lock on a folder is refused, naming the holder; release frees it', async () => {
    const d = join(dir, 'lock-a');
    const a = await acquireRunLock(d);
    expect(a.tookOver).toBeNull();
    const err = await acquireRunLock(d).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RunLockedError);
    expect(String(err)).toMatch(new RegExp(`is in use by another run \\(pid ${process.pid} on ${hostname()}`));
    await a.release();
    expect(existsSync(join(d, LOCK_FILE))).toBe(false);
    const b = await acquireRunLock(d);
    await b.release();
  });

  it('a stale lock (dead process here, or no heartbeat from another host) is taken over and said so', async () => {
    const d = join(dir, 'lock-b');
    await mkdir(d, { recursive: true });
    await writeFile(
      join(d, LOCK_FILE),
      JSON.stringify({ pid: 2 ** 22 + 12345, host: hostname(), startedAt: '2020-01-01T00:00:00Z', token: 'x' }),
    );
    const a = await acquireRunLock(d);
    expect(a.tookOver).toMatch(/took over a stale lock .*that process is gone/);
    await a.release();
    await writeFile(join(d, LOCK_FILE), JSON.stringify({ pid: 1, host: 'elsewhere', startedAt: '2020-01-01T00:00:00Z', token: 'y' }));
    await expect(acquireRunLock(d)).rejects.toBeInstanceOf(RunLockedError); // fresh heartbeat: respected
    const old = new Date(Date.now() - 3600_000);
    await utimes(join(d, LOCK_FILE), old, old);
    const b = await acquireRunLock(d);
    expect(b.tookOver).toMatch(/no heartbeat for \d+ s/);
    await b.release();
  });
});

describe('one run per OPFS folder in the browser (Web Locks)', () => {
  it('a second tab on the same run is refused while the first holds it; other runs are free', async () => {
    const { RunInUseError, withRunLock } = await import('./web-lock');
    // Node has no Web Locks: a minimal LockManager with the API's ifAvailable semantics.
    const held = new Set<string>();
    const locks = {
      async request<T>(name: string, _o: { ifAvailable: boolean }, cb: (lock: unknown) => Promise<T>): Promise<T> {
        if (held.has(name)) return cb(null);
        held.add(name);
        try {
          return await cb({ name });
        } finally {
          held.delete(name);
        }
      },
    };
    const g = globalThis as { navigator?: unknown };
    const saved = Object.getOwnPropertyDescriptor(globalThis, 'navigator');
    Object.defineProperty(globalThis, 'navigator', { value: { locks }, configurable: true });
    try {
      let release!: () => void;
      const first = withRunLock('run-a', () => new Promise<string>((ok) => (release = () => ok('first done'))));
      await expect(withRunLock('run-a', async () => 'second')).rejects.toBeInstanceOf(RunInUseError);
      await expect(withRunLock('run-a', async () => 'second')).rejects.toThrow(/run-a is being tuned in another tab/);
      expect(await withRunLock('run-b', async () => 'other run')).toBe('other run');
      release();
      expect(await first).toBe('first done');
      expect(await withRunLock('run-a', async () => 'after release')).toBe('after release');
    } finally {
      if (saved) Object.defineProperty(globalThis, 'navigator', saved);
      else delete g.navigator;
    }
  });
});
