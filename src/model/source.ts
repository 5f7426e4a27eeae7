/**
 * Where model files come from. The loader only sees this interface, so the same code reads a folder on disk
 * (CLI), File objects picked in the browser, and in-memory maps in tests. Ranged reads let safetensors be
 * decoded tensor by tensor.
 */
import { ModelFormatError } from './errors';

export interface ModelSource {
  /** Human-readable origin (a path, "memory", "files") used in error messages. */
  readonly label: string;
  /** Relative file names, '/'-separated, sorted. */
  list(): Promise<string[]>;
  has(name: string): Promise<boolean>;
  size(name: string): Promise<number>;
  readBytes(name: string): Promise<Uint8Array>;
  /** Bytes [start, end) of a file. */
  readRange(name: string, start: number, end: number): Promise<Uint8Array>;
  readText(name: string): Promise<string>;
}

function missing(label: string, name: string): ModelFormatError {
  return new ModelFormatError(`file not found in ${label}`, name);
}

function checkRange(name: string, start: number, end: number, size: number): void {
  if (!(start >= 0 && end >= start && end <= size)) {
    throw new ModelFormatError(`byte range [${start}, ${end}) is outside the ${size}-byte file`, name);
  }
}

/** Files held in memory (tests, unzipped packages). */
export class MemorySource implements ModelSource {
  readonly files: Map<string, Uint8Array>;
  constructor(
    files: Map<string, Uint8Array> | Record<string, Uint8Array | string>,
    readonly label = 'memory',
  ) {
    this.files = new Map();
    const entries = files instanceof Map ? files.entries() : Object.entries(files);
    for (const [k, v] of entries) this.files.set(k, typeof v === 'string' ? new TextEncoder().encode(v) : v);
  }
  private get(name: string): Uint8Array {
    const f = this.files.get(name);
    if (!f) throw missing(this.label, name);
    return f;
  }
  async list(): Promise<string[]> {
    return [...this.files.keys()].sort();
  }
  async has(name: string): Promise<boolean> {
    return this.files.has(name);
  }
  async size(name: string): Promise<number> {
    return this.get(name).byteLength;
  }
  async readBytes(name: string): Promise<Uint8Array> {
    return this.get(name);
  }
  async readRange(name: string, start: number, end: number): Promise<Uint8Array> {
    const f = this.get(name);
    checkRange(name, start, end, f.byteLength);
    return f.subarray(start, end);
  }
  async readText(name: string): Promise<string> {
    return new TextDecoder().decode(this.get(name));
  }
}

export function memorySource(files: Map<string, Uint8Array> | Record<string, Uint8Array | string>, label?: string): MemorySource {
  return new MemorySource(files, label);
}

/**
 * Browser File objects (from <input type=file webkitdirectory> or drag and drop). Names are taken from
 * `webkitRelativePath` minus its first (folder) component, else `name`; nothing is read until asked.
 */
export class FileListSource implements ModelSource {
  private readonly files = new Map<string, Blob>();
  constructor(
    files: Iterable<File> | Map<string, Blob>,
    readonly label = 'selected files',
  ) {
    if (files instanceof Map) {
      for (const [k, v] of files) this.files.set(k, v);
    } else {
      for (const f of files) {
        const rel = (f as File & { webkitRelativePath?: string }).webkitRelativePath;
        const name = rel ? rel.split('/').slice(1).join('/') || f.name : f.name;
        this.files.set(name, f);
      }
    }
  }
  private get(name: string): Blob {
    const f = this.files.get(name);
    if (!f) throw missing(this.label, name);
    return f;
  }
  async list(): Promise<string[]> {
    return [...this.files.keys()].sort();
  }
  async has(name: string): Promise<boolean> {
    return this.files.has(name);
  }
  async size(name: string): Promise<number> {
    return this.get(name).size;
  }
  async readBytes(name: string): Promise<Uint8Array> {
    return new Uint8Array(await this.get(name).arrayBuffer());
  }
  async readRange(name: string, start: number, end: number): Promise<Uint8Array> {
    const f = this.get(name);
    checkRange(name, start, end, f.size);
    return new Uint8Array(await f.slice(start, end).arrayBuffer());
  }
  async readText(name: string): Promise<string> {
    return this.get(name).text();
  }
}

type FsPromises = typeof import('node:fs/promises');
type PathMod = typeof import('node:path');

/** A folder on disk (Node only). `fs` is imported lazily so browser bundles never pull it in. */
export class NodeDirSource implements ModelSource {
  private fsP: Promise<{ fs: FsPromises; path: PathMod }> | null = null;
  constructor(readonly dir: string) {}
  get label(): string {
    return this.dir;
  }
  private mods(): Promise<{ fs: FsPromises; path: PathMod }> {
    // The specifiers are held in variables so bundlers do not try to resolve node builtins for the browser.
    const fsName = 'node:fs/promises';
    const pathName = 'node:path';
    this.fsP ??= Promise.all([
      import(/* @vite-ignore */ fsName) as Promise<FsPromises>,
      import(/* @vite-ignore */ pathName) as Promise<PathMod>,
    ]).then(([fs, path]) => ({ fs, path }));
    return this.fsP;
  }
  private async resolve(name: string): Promise<{ fs: FsPromises; p: string }> {
    const { fs, path } = await this.mods();
    const p = path.resolve(this.dir, name);
    const root = path.resolve(this.dir);
    if (p !== root && !p.startsWith(root + path.sep)) throw new ModelFormatError(`path escapes ${this.dir}`, name);
    return { fs, p };
  }
  async list(): Promise<string[]> {
    const { fs, path } = await this.mods();
    const out: string[] = [];
    const walk = async (rel: string): Promise<void> => {
      let ents;
      try {
        ents = await fs.readdir(path.join(this.dir, rel), { withFileTypes: true });
      } catch (e) {
        if (rel === '') throw new ModelFormatError(`cannot read directory (${(e as Error).message})`, this.dir);
        throw e;
      }
      for (const d of ents) {
        const r = rel ? `${rel}/${d.name}` : d.name;
        if (d.isDirectory()) await walk(r);
        else if (d.isFile()) out.push(r);
      }
    };
    await walk('');
    return out.sort();
  }
  async has(name: string): Promise<boolean> {
    const { fs, p } = await this.resolve(name);
    try {
      return (await fs.stat(p)).isFile();
    } catch {
      return false;
    }
  }
  async size(name: string): Promise<number> {
    const { fs, p } = await this.resolve(name);
    try {
      return (await fs.stat(p)).size;
    } catch {
      throw missing(this.label, name);
    }
  }
  async readBytes(name: string): Promise<Uint8Array> {
    const { fs, p } = await this.resolve(name);
    try {
      const b = await fs.readFile(p);
      return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    } catch {
      throw missing(this.label, name);
    }
  }
  async readRange(name: string, start: number, end: number): Promise<Uint8Array> {
    const { fs, p } = await this.resolve(name);
    let h;
    try {
      h = await fs.open(p, 'r');
    } catch {
      throw missing(this.label, name);
    }
    try {
      const size = (await h.stat()).size;
      checkRange(name, start, end, size);
      const out = new Uint8Array(end - start);
      let got = 0;
      while (got < out.length) {
        const { bytesRead } = await h.read(out, got, out.length - got, start + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      if (got !== out.length) throw new ModelFormatError(`short read (${got} of ${out.length} bytes)`, name);
      return out;
    } finally {
      await h.close();
    }
  }
  async readText(name: string): Promise<string> {
    return new TextDecoder().decode(await this.readBytes(name));
  }
}

export function nodeDirSource(dir: string): NodeDirSource {
  return new NodeDirSource(dir);
}
