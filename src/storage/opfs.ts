/** The browser's `BlobStore` on the origin private file system, and its checkpoint store. */
import { ManifestCheckpointStore, TEMP_MARKER, checkName, tempSuffix, type BlobStore } from './checkpoint-store';

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
    private readonly getRoot: () => Promise<OpfsDir> = async () => (await navigator.storage.getDirectory()) as unknown as OpfsDir,
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

export function opfsCheckpointStore(dir: string): ManifestCheckpointStore {
  return new ManifestCheckpointStore(new OpfsBlobStore(dir));
}
