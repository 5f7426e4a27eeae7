/**
 * Checkpoint storage that a crash cannot fool.
 *
 * Two layers:
 * - `BlobStore`: named byte objects with an ATOMIC put (a reader sees the old bytes or the new ones,
 *   never a mix). Node writes a temp file, fsyncs it and renames it over the target; OPFS writes through
 *   `createWritable()`, whose stream goes to a swap file that replaces the target on `close()` (and, where
 *   `FileSystemHandle.move` exists, a new file is written under a temp name and moved into place, so a
 *   crash cannot leave an empty file under the final name either). Memory is a Map, for tests.
 * - `CheckpointStore`: a checkpoint is a set of files committed together. `commit` writes every file
 *   under a fresh generation folder `checkpoints/<seq>-<id>/`, then atomically rewrites `manifest.json`
 *   with the new entry (file sizes and CRC-32s). The manifest is the only thing that makes a checkpoint
 *   exist: a crash before it is written leaves only unreferenced files, which `gc()` deletes, and the
 *   previous checkpoint stays the latest. Loading verifies every size and CRC, so even storage that lost
 *   data under the manifest is reported, not resumed from. Re-committing an id (e.g. "best") writes a new
 *   generation and deletes the old one only after the manifest points at the new one.
 *
 * One writer per store is assumed (one training run); calls on one instance are serialised.
 *
 * This file holds the contract, the manifest logic and the in-memory store; `node.ts` and `opfs.ts` hold the
 * two persistent `BlobStore`s, and `index.ts` picks one at run time (`autoCheckpointStore`).
 */

/** Marker in the names of in-flight temp objects; `list` hides them, `gc` deletes them. */
export const TEMP_MARKER = '.tmp-';
export const MANIFEST_NAME = 'manifest.json';
export const CHECKPOINT_DIR = 'checkpoints';

export interface BlobStore {
  /** Atomically creates or replaces `name`. Names are relative paths with '/' separators. */
  put(name: string, bytes: Uint8Array): Promise<void>;
  /** The bytes of `name`, or null if it does not exist. */
  get(name: string): Promise<Uint8Array | null>;
  /** Names of complete objects (temp objects excluded), sorted, optionally under a prefix. */
  list(prefix?: string): Promise<string[]>;
  /** Deletes `name`; no error if it does not exist. */
  delete(name: string): Promise<void>;
  /** Names of leftover temp objects (from crashed writes). */
  listTemp(): Promise<string[]>;
}

export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };

export interface CheckpointFile {
  name: string;
  bytes: number;
  /** CRC-32 (IEEE), lower-case hex */
  crc32: string;
}

export interface CheckpointEntry {
  id: string;
  /** Monotonic commit number; also names the generation folder. */
  seq: number;
  /** Folder holding the files, e.g. "checkpoints/7-last". */
  dir: string;
  files: CheckpointFile[];
  meta: JsonValue;
  committedAt: string;
  /**
   * The generation this one replaced, kept (files and all) when committed with `keepPrevious`, so a newest
   * generation that fails its check can fall back to it. Never nested deeper than one.
   */
  previous?: CheckpointEntry;
}

export interface CheckpointManifest {
  format: 'gradot-checkpoints';
  version: 1;
  nextSeq: number;
  /** Id of the most recent commit, or null. */
  latest: string | null;
  /** One entry per id (its newest generation), in commit order. */
  checkpoints: CheckpointEntry[];
}

export interface LoadedCheckpoint {
  entry: CheckpointEntry;
  files: Record<string, Uint8Array>;
  /** Set when the newest generation failed its check and the previous one was loaded instead: says so. */
  fallback?: string;
}

export interface CommitOptions {
  /** Keep the generation this commit replaces as a fallback (see CheckpointEntry.previous). */
  keepPrevious?: boolean;
}

export type CheckpointErrorCode = 'not-found' | 'corrupt' | 'corrupt-manifest' | 'bad-name';

export class CheckpointError extends Error {
  override readonly name = 'CheckpointError';
  constructor(
    readonly code: CheckpointErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface CheckpointStore extends BlobStore {
  /** Writes all files, then makes the checkpoint visible in one atomic manifest write. */
  commit(id: string, files: Readonly<Record<string, Uint8Array>>, meta?: JsonValue, opts?: CommitOptions): Promise<CheckpointEntry>;
  /** Committed checkpoints, oldest first. */
  checkpoints(): Promise<CheckpointEntry[]>;
  /** The most recently committed checkpoint's entry (not verified), or null. */
  latest(): Promise<CheckpointEntry | null>;
  /** Loads and verifies a checkpoint; CheckpointError 'not-found' or 'corrupt'. */
  load(id: string): Promise<LoadedCheckpoint>;
  /**
   * The newest checkpoint whose files all verify, or null; a damaged newer one is skipped (and reported
   * in `skipped`) so a run resumes from the last good state rather than failing or using bad bytes.
   */
  loadLatest(): Promise<(LoadedCheckpoint & { skipped: string[] }) | null>;
  /** Removes a checkpoint from the manifest, then its files. */
  remove(id: string): Promise<void>;
  /** Keeps the `keep` most recent checkpoints plus the ids in `protect`; removes the rest. */
  prune(keep: number, protect?: readonly string[]): Promise<string[]>;
  /** Deletes temp objects and checkpoint files no manifest entry references; returns their names. */
  gc(): Promise<string[]>;
}

// ---------------------------------------------------------------------------------------------------
// Helpers

let CRC_TABLE: Uint32Array | null = null;

/** CRC-32 (IEEE) of `bytes`; `prev`, the CRC of the bytes before them, continues it over several parts (as
 *  zlib's crc32(data, value)). */
export function crc32(bytes: Uint8Array, prev = 0): number {
  if (!CRC_TABLE) {
    CRC_TABLE = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      CRC_TABLE[n] = c >>> 0;
    }
  }
  let c = (prev ^ 0xffffffff) >>> 0;
  for (let i = 0; i < bytes.length; i++) c = (CRC_TABLE[(c ^ (bytes[i] as number)) & 0xff] as number) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const hex32 = (n: number) => n.toString(16).padStart(8, '0');

/** Relative '/'-separated names only: no '..', no empty or absolute segments, no temp marker. */
export function checkName(name: string): string[] {
  const parts = name.split('/');
  if (
    name === '' ||
    name.includes('\\') ||
    name.includes('\0') ||
    name.includes(TEMP_MARKER) ||
    parts.some((p) => p === '' || p === '.' || p === '..')
  ) {
    throw new CheckpointError('bad-name', `invalid object name ${JSON.stringify(name)}`);
  }
  return parts;
}

function checkId(id: string): void {
  if (!/^[A-Za-z0-9_.-]{1,100}$/.test(id) || id.startsWith('.')) {
    throw new CheckpointError('bad-name', `checkpoint id must be 1-100 of [A-Za-z0-9_.-], got ${JSON.stringify(id)}`);
  }
}

export function tempSuffix(): string {
  return TEMP_MARKER + Date.now().toString(36) + Math.random().toString(36).slice(2, 10);
}

// ---------------------------------------------------------------------------------------------------
// Manifest-based checkpoint store over any BlobStore

export class ManifestCheckpointStore implements CheckpointStore {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(readonly blobs: BlobStore) {}

  /** Serialises operations so two commits never interleave their manifest read-modify-write. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  async put(name: string, bytes: Uint8Array): Promise<void> {
    checkName(name);
    return this.blobs.put(name, bytes);
  }
  async get(name: string): Promise<Uint8Array | null> {
    checkName(name);
    return this.blobs.get(name);
  }
  list(prefix?: string): Promise<string[]> {
    return this.blobs.list(prefix);
  }
  async delete(name: string): Promise<void> {
    checkName(name);
    return this.blobs.delete(name);
  }
  listTemp(): Promise<string[]> {
    return this.blobs.listTemp();
  }

  private async readManifest(): Promise<CheckpointManifest> {
    const raw = await this.blobs.get(MANIFEST_NAME);
    // An empty manifest can only come from a crash while creating it (OPFS without move): nothing was
    // committed through it yet.
    if (!raw || raw.length === 0) return { format: 'gradot-checkpoints', version: 1, nextSeq: 1, latest: null, checkpoints: [] };
    let m: unknown;
    try {
      m = JSON.parse(new TextDecoder().decode(raw));
    } catch (e) {
      throw new CheckpointError('corrupt-manifest', `${MANIFEST_NAME} is not valid JSON (${e instanceof Error ? e.message : String(e)})`);
    }
    const mm = m as Partial<CheckpointManifest>;
    if (mm.format !== 'gradot-checkpoints' || mm.version !== 1 || !Array.isArray(mm.checkpoints) || typeof mm.nextSeq !== 'number') {
      throw new CheckpointError('corrupt-manifest', `${MANIFEST_NAME} is not a version-1 checkpoint manifest`);
    }
    return mm as CheckpointManifest;
  }

  private writeManifest(m: CheckpointManifest): Promise<void> {
    return this.blobs.put(MANIFEST_NAME, new TextEncoder().encode(JSON.stringify(m, null, 1)));
  }

  commit(
    id: string,
    files: Readonly<Record<string, Uint8Array>>,
    meta: JsonValue = null,
    opts: CommitOptions = {},
  ): Promise<CheckpointEntry> {
    return this.serial(async () => {
      checkId(id);
      const names = Object.keys(files).sort();
      if (names.length === 0) throw new CheckpointError('bad-name', 'a checkpoint needs at least one file');
      for (const n of names) checkName(n);
      const m = await this.readManifest();
      const seq = m.nextSeq;
      const dir = `${CHECKPOINT_DIR}/${seq}-${id}`;
      // A crashed earlier attempt may have left files in this same folder; put() replaces them atomically
      // and the manifest entry lists exactly the files of this commit, so leftovers stay unreferenced.
      const entryFiles: CheckpointFile[] = [];
      for (const n of names) {
        const bytes = files[n] as Uint8Array;
        await this.blobs.put(`${dir}/${n}`, bytes);
        entryFiles.push({ name: n, bytes: bytes.length, crc32: hex32(crc32(bytes)) });
      }
      const entry: CheckpointEntry = { id, seq, dir, files: entryFiles, meta, committedAt: new Date().toISOString() };
      const old = m.checkpoints.filter((c) => c.id === id);
      let stale: CheckpointEntry[] = old;
      if (opts.keepPrevious && old.length > 0) {
        const { previous: older, ...prev } = old[old.length - 1]!;
        entry.previous = prev;
        stale = [...old.slice(0, -1), ...(older ? [older] : [])].map((e) => ({ ...e, previous: undefined }));
      }
      const next: CheckpointManifest = {
        ...m,
        nextSeq: seq + 1,
        latest: id,
        checkpoints: [...m.checkpoints.filter((c) => c.id !== id), entry],
      };
      await this.writeManifest(next); // the commit point
      for (const o of stale) await this.deleteFiles(o);
      return entry;
    });
  }

  private async deleteFiles(e: CheckpointEntry): Promise<void> {
    for (const f of e.files) await this.blobs.delete(`${e.dir}/${f.name}`);
    if (e.previous) await this.deleteFiles(e.previous);
  }

  async checkpoints(): Promise<CheckpointEntry[]> {
    return (await this.readManifest()).checkpoints;
  }

  async latest(): Promise<CheckpointEntry | null> {
    const m = await this.readManifest();
    if (m.latest === null) return null;
    return m.checkpoints.find((c) => c.id === m.latest) ?? null;
  }

  private async loadEntry(e: CheckpointEntry): Promise<LoadedCheckpoint> {
    const files: Record<string, Uint8Array> = {};
    for (const f of e.files) {
      const b = await this.blobs.get(`${e.dir}/${f.name}`);
      if (!b) throw new CheckpointError('corrupt', `checkpoint "${e.id}": file ${f.name} is missing`);
      if (b.length !== f.bytes) {
        throw new CheckpointError('corrupt', `checkpoint "${e.id}": file ${f.name} has ${b.length} bytes, expected ${f.bytes}`);
      }
      if (hex32(crc32(b)) !== f.crc32) throw new CheckpointError('corrupt', `checkpoint "${e.id}": file ${f.name} fails its CRC-32 check`);
      files[f.name] = b;
    }
    return { entry: e, files };
  }

  async load(id: string): Promise<LoadedCheckpoint> {
    const e = (await this.readManifest()).checkpoints.find((c) => c.id === id);
    if (!e) throw new CheckpointError('not-found', `no committed checkpoint "${id}"`);
    try {
      return await this.loadEntry(e);
    } catch (err) {
      if (!(err instanceof CheckpointError && err.code === 'corrupt') || !e.previous) throw err;
      // The newest generation is damaged: the previous one (kept for this) is the last good state.
      let prev: LoadedCheckpoint;
      try {
        prev = await this.loadEntry(e.previous);
      } catch (err2) {
        if (err2 instanceof CheckpointError && err2.code === 'corrupt') {
          throw new CheckpointError('corrupt', `${err.message}; its previous generation is damaged too (${err2.message})`);
        }
        throw err2;
      }
      return { ...prev, fallback: `${err.message}; loaded the previous generation (#${e.previous.seq}) instead` };
    }
  }

  async loadLatest(): Promise<(LoadedCheckpoint & { skipped: string[] }) | null> {
    const m = await this.readManifest();
    const skipped: string[] = [];
    const all = m.checkpoints.flatMap((c) => (c.previous ? [c, c.previous] : [c]));
    for (const e of all.sort((p, q) => q.seq - p.seq)) {
      try {
        return { ...(await this.loadEntry(e)), skipped };
      } catch (err) {
        if (!(err instanceof CheckpointError && err.code === 'corrupt')) throw err;
        skipped.push(err.message);
      }
    }
    return null;
  }

  remove(id: string): Promise<void> {
    return this.serial(async () => {
      const m = await this.readManifest();
      const gone = m.checkpoints.filter((c) => c.id === id);
      if (gone.length === 0) return;
      const rest = m.checkpoints.filter((c) => c.id !== id);
      const latest = m.latest === id ? (rest.length ? rest.reduce((p, q) => (q.seq > p.seq ? q : p)).id : null) : m.latest;
      await this.writeManifest({ ...m, latest, checkpoints: rest });
      for (const e of gone) await this.deleteFiles(e);
    });
  }

  async prune(keep: number, protect: readonly string[] = []): Promise<string[]> {
    const all = await this.checkpoints();
    const newestFirst = [...all].sort((p, q) => q.seq - p.seq);
    const drop = newestFirst.filter((e, i) => i >= keep && !protect.includes(e.id)).map((e) => e.id);
    for (const id of drop) await this.remove(id);
    return drop;
  }

  gc(): Promise<string[]> {
    return this.serial(async () => {
      const m = await this.readManifest();
      const removed: string[] = [];
      for (const n of await this.blobs.listTemp()) {
        await this.blobs.delete(n);
        removed.push(n);
      }
      // With no manifest at all, checkpoint files are not provably garbage (someone may have deleted or
      // not yet copied the manifest): leave them for a human rather than wipe a run.
      if ((await this.blobs.get(MANIFEST_NAME)) === null) return removed;
      const live = new Set<string>();
      for (const c of m.checkpoints)
        for (const e of c.previous ? [c, c.previous] : [c]) for (const f of e.files) live.add(`${e.dir}/${f.name}`);
      for (const n of await this.blobs.list(CHECKPOINT_DIR + '/')) {
        if (!live.has(n)) {
          await this.blobs.delete(n);
          removed.push(n);
        }
      }
      return removed;
    });
  }
}

// ---------------------------------------------------------------------------------------------------
// Memory

export class MemoryBlobStore implements BlobStore {
  readonly objects = new Map<string, Uint8Array>();

  async put(name: string, bytes: Uint8Array): Promise<void> {
    checkName(name);
    this.objects.set(name, bytes.slice());
  }
  async get(name: string): Promise<Uint8Array | null> {
    const b = this.objects.get(name);
    return b ? b.slice() : null;
  }
  async list(prefix = ''): Promise<string[]> {
    return [...this.objects.keys()].filter((k) => k.startsWith(prefix) && !k.includes(TEMP_MARKER)).sort();
  }
  async delete(name: string): Promise<void> {
    this.objects.delete(name);
  }
  async listTemp(): Promise<string[]> {
    return [...this.objects.keys()].filter((k) => k.includes(TEMP_MARKER)).sort();
  }
}

export function memoryCheckpointStore(): ManifestCheckpointStore {
  return new ManifestCheckpointStore(new MemoryBlobStore());
}
