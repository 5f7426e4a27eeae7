/** The Node `BlobStore` (temp file, fsync, rename; fs/promises imported lazily so browser bundles never resolve it) and its checkpoint store. */
import { ManifestCheckpointStore, TEMP_MARKER, checkName, tempSuffix, type BlobStore } from './checkpoint-store';

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

export function nodeCheckpointStore(dir: string): ManifestCheckpointStore {
  return new ManifestCheckpointStore(new NodeBlobStore(dir));
}
