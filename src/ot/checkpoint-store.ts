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

export function crc32(bytes: Uint8Array): number {
  if (!CRC_TABLE) {
    CRC_TABLE = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      CRC_TABLE[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
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

function tempSuffix(): string {
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

  commit(id: string, files: Readonly<Record<string, Uint8Array>>, meta: JsonValue = null, opts: CommitOptions = {}): Promise<CheckpointEntry> {
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
      const latest = m.latest === id ? (rest.length ? (rest.reduce((p, q) => (q.seq > p.seq ? q : p)).id) : null) : m.latest;
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
      for (const c of m.checkpoints) for (const e of c.previous ? [c, c.previous] : [c]) for (const f of e.files) live.add(`${e.dir}/${f.name}`);
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

// ---------------------------------------------------------------------------------------------------
// Node (fs/promises, imported lazily so browser bundles never resolve it)

type NodeFs = typeof import('node:fs/promises');
// A variable specifier keeps bundlers from trying to resolve the module for the browser build.
const NODE_FS = 'node:fs/promises';

function isEnoent(e: unknown): boolean {
  return typeof e === 'object' && e !== null && (e as { code?: unknown }).code === 'ENOENT';
}

export class NodeBlobStore implements BlobStore {
  private fsp: Promise<NodeFs> | null = null;

  /** `root` is a directory; it is created on first write. */
  constructor(readonly root: string) {}

  private fs(): Promise<NodeFs> {
    this.fsp ??= import(/* @vite-ignore */ NODE_FS) as Promise<NodeFs>;
    return this.fsp;
  }

  private path(name: string): string {
    return `${this.root}/${checkName(name).join('/')}`;
  }

  async put(name: string, bytes: Uint8Array): Promise<void> {
    const fs = await this.fs();
    const target = this.path(name);
    const dir = target.slice(0, target.lastIndexOf('/'));
    await fs.mkdir(dir, { recursive: true });
    const tmp = target + tempSuffix();
    const fh = await fs.open(tmp, 'w');
    try {
      await fh.writeFile(bytes);
      await fh.sync(); // the data must be on disk before the rename makes it visible
    } catch (e) {
      await fh.close().catch(() => undefined);
      await fs.rm(tmp, { force: true }).catch(() => undefined);
      throw e;
    }
    await fh.close();
    await fs.rename(tmp, target);
    // Persist the rename itself; directories cannot be opened for sync on every platform (Windows).
    try {
      const d = await fs.open(dir, 'r');
      try {
        await d.sync();
      } finally {
        await d.close();
      }
    } catch {
      /* best effort */
    }
  }

  async get(name: string): Promise<Uint8Array | null> {
    const fs = await this.fs();
    try {
      const b = await fs.readFile(this.path(name));
      return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    } catch (e) {
      if (isEnoent(e)) return null;
      throw e;
    }
  }

  private async walk(): Promise<string[]> {
    const fs = await this.fs();
    const out: string[] = [];
    const visit = async (rel: string) => {
      let entries;
      try {
        entries = await fs.readdir(rel ? `${this.root}/${rel}` : this.root, { withFileTypes: true });
      } catch (e) {
        if (isEnoent(e)) return;
        throw e;
      }
      for (const ent of entries) {
        const p = rel ? `${rel}/${ent.name}` : ent.name;
        if (ent.isDirectory()) await visit(p);
        else if (ent.isFile()) out.push(p);
      }
    };
    await visit('');
    return out.sort();
  }

  async list(prefix = ''): Promise<string[]> {
    return (await this.walk()).filter((n) => n.startsWith(prefix) && !n.includes(TEMP_MARKER));
  }

  async listTemp(): Promise<string[]> {
    return (await this.walk()).filter((n) => n.includes(TEMP_MARKER));
  }

  async delete(name: string): Promise<void> {
    const fs = await this.fs();
    // Temp names are not valid object names, but gc must be able to delete them.
    const parts = name.split('/');
    if (parts.some((p) => p === '' || p === '.' || p === '..') || name.includes('\\')) checkName(name);
    await fs.rm(`${this.root}/${name}`, { force: true });
    // Drop now-empty folders up to the root so old generations do not leave a trail of directories.
    for (let i = parts.length - 1; i > 0; i--) {
      try {
        await fs.rmdir(`${this.root}/${parts.slice(0, i).join('/')}`);
      } catch {
        break;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// OPFS (browser; not testable in Node)

/** The parts of the File System API this store uses; `move` and `values` are not in every lib.dom. */
interface OpfsFile {
  createWritable(opts?: { keepExistingData?: boolean }): Promise<{
    write(data: Uint8Array): Promise<void>;
    close(): Promise<void>;
    abort(): Promise<void>;
  }>;
  getFile(): Promise<Blob>;
  move?: (newName: string) => Promise<void>;
}
interface OpfsDir {
  getDirectoryHandle(name: string, opts?: { create?: boolean }): Promise<OpfsDir>;
  getFileHandle(name: string, opts?: { create?: boolean }): Promise<OpfsFile>;
  removeEntry(name: string, opts?: { recursive?: boolean }): Promise<void>;
  entries(): AsyncIterable<[string, { kind: 'file' | 'directory' }]>;
}

function isNotFound(e: unknown): boolean {
  return typeof e === 'object' && e !== null && (e as { name?: unknown }).name === 'NotFoundError';
}

export class OpfsBlobStore implements BlobStore {
  /** `root` is a folder path inside the origin's private file system, e.g. "runs/2026-01-01-abc". */
  constructor(
    readonly root: string,
    private readonly getRoot: () => Promise<OpfsDir> = async () =>
      (await navigator.storage.getDirectory()) as unknown as OpfsDir,
  ) {}

  private async dirOf(parts: string[], create: boolean): Promise<OpfsDir | null> {
    let d = await this.getRoot();
    for (const p of [...this.root.split('/').filter(Boolean), ...parts]) {
      try {
        d = await d.getDirectoryHandle(p, { create });
      } catch (e) {
        if (!create && (isNotFound(e) || (e as { name?: unknown }).name === 'TypeMismatchError')) return null;
        throw e;
      }
    }
    return d;
  }

  async put(name: string, bytes: Uint8Array): Promise<void> {
    const parts = checkName(name);
    const base = parts.pop() as string;
    const dir = (await this.dirOf(parts, true)) as OpfsDir;
    const write = async (fh: OpfsFile) => {
      // The stream writes a swap file; close() replaces the file's contents in one step.
      const w = await fh.createWritable({ keepExistingData: false });
      try {
        await w.write(bytes);
      } catch (e) {
        await w.abort().catch(() => undefined);
        throw e;
      }
      await w.close();
    };
    let existing: OpfsFile | null = null;
    try {
      existing = await dir.getFileHandle(base);
    } catch (e) {
      if (!isNotFound(e) && (e as { name?: unknown }).name !== 'TypeMismatchError') throw e;
    }
    // Replacing a file: the writable's swap-and-replace on close() is the atomic step, and the old
    // contents survive a crash. (Removing the old file and moving a temp file over it would leave a
    // window with no file at all, fatal for manifest.json.)
    if (existing) return write(existing);
    // A new file: creating it under its final name would expose an empty file if we crashed before
    // close(), so write a temp file and move it into place where the browser supports move().
    const tmpName = base + tempSuffix();
    const tmp = await dir.getFileHandle(tmpName, { create: true });
    if (typeof tmp.move === 'function') {
      try {
        await write(tmp);
        await tmp.move(base);
        return;
      } catch (e) {
        await dir.removeEntry(tmpName).catch(() => undefined);
        throw e;
      }
    }
    await dir.removeEntry(tmpName).catch(() => undefined);
    await write(await dir.getFileHandle(base, { create: true }));
  }

  async get(name: string): Promise<Uint8Array | null> {
    const parts = checkName(name);
    const base = parts.pop() as string;
    const dir = await this.dirOf(parts, false);
    if (!dir) return null;
    try {
      const f = await (await dir.getFileHandle(base)).getFile();
      return new Uint8Array(await f.arrayBuffer());
    } catch (e) {
      if (isNotFound(e) || (e as { name?: unknown }).name === 'TypeMismatchError') return null;
      throw e;
    }
  }

  private async walk(): Promise<string[]> {
    const out: string[] = [];
    const root = await this.dirOf([], false);
    if (!root) return out;
    const visit = async (d: OpfsDir, rel: string) => {
      for await (const [n, h] of d.entries()) {
        const p = rel ? `${rel}/${n}` : n;
        if (h.kind === 'directory') await visit(await d.getDirectoryHandle(n), p);
        else if (!n.endsWith('.crswap')) out.push(p); // Chromium's swap files for open writables
      }
    };
    await visit(root, '');
    return out.sort();
  }

  async list(prefix = ''): Promise<string[]> {
    return (await this.walk()).filter((n) => n.startsWith(prefix) && !n.includes(TEMP_MARKER));
  }

  async listTemp(): Promise<string[]> {
    return (await this.walk()).filter((n) => n.includes(TEMP_MARKER));
  }

  async delete(name: string): Promise<void> {
    const parts = name.split('/');
    if (parts.some((p) => p === '' || p === '.' || p === '..')) checkName(name);
    const base = parts.pop() as string;
    const dir = await this.dirOf(parts, false);
    if (!dir) return;
    try {
      await dir.removeEntry(base);
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Factories

export function memoryCheckpointStore(): ManifestCheckpointStore {
  return new ManifestCheckpointStore(new MemoryBlobStore());
}

export function nodeCheckpointStore(dir: string): ManifestCheckpointStore {
  return new ManifestCheckpointStore(new NodeBlobStore(dir));
}

export function opfsCheckpointStore(dir: string): ManifestCheckpointStore {
  return new ManifestCheckpointStore(new OpfsBlobStore(dir));
}

/**
 * OPFS where the page or worker has it, else the file system (Node): `location` is an OPFS folder path
 * or a directory path respectively.
 */
export function autoCheckpointStore(location: string): ManifestCheckpointStore {
  const nav = (globalThis as { navigator?: { storage?: { getDirectory?: unknown } } }).navigator;
  if (typeof nav?.storage?.getDirectory === 'function') return opfsCheckpointStore(location);
  return nodeCheckpointStore(location);
}
