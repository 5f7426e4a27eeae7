/**
 * The UI's handle on the studio worker, plus the small browser plumbing the views share: turning picked or
 * dropped files into InputFile lists, reporting errors to the single error surface, and saving downloads.
 */
import * as Comlink from 'comlink';
import { decodeStudioError, type InputFile, type ProgressFn, type StudioApi } from '../jobs/studio-api';
import { useUi } from '../store/ui';

let remote: Comlink.Remote<StudioApi> | null = null;

export function studio(): Comlink.Remote<StudioApi> {
  if (!remote) {
    // new URL(..., import.meta.url) lets Vite bundle the worker and resolve it under any base path.
    const worker = new Worker(new URL('../../workers/studio.worker.ts', import.meta.url), { type: 'module' });
    worker.addEventListener('error', (e) => {
      reportError(new Error(`studio worker failed to start: ${e.message || 'unknown error'}`));
    });
    remote = Comlink.wrap<StudioApi>(worker);
  }
  return remote;
}

export function progressProxy(fn: ProgressFn): ProgressFn {
  return Comlink.proxy(fn);
}

/** The one error surface: every failure (file drop, worker, fetch) ends here as a toast naming the file. */
export function reportError(err: unknown, file?: string): void {
  const info = decodeStudioError(err);
  useUi.getState().pushToast({ level: 'error', file: info.file ?? file, line: info.line, message: info.message });
}

/** A job ended because the user cancelled it (the worker's "cancelled", or an abort inside the engine). */
export function isCancelError(err: unknown): boolean {
  const m = decodeStudioError(err).message;
  return /\bcancel(l)?ed\b|\babort(ed)?\b|AbortError/i.test(m);
}

export function reportInfo(message: string): void {
  useUi.getState().pushToast({ level: 'info', message });
}

function relPath(f: File): string {
  return (f as File & { webkitRelativePath?: string }).webkitRelativePath || f.name;
}

export function filesFromList(list: FileList | File[] | null): InputFile[] {
  if (!list) return [];
  return Array.from(list).map((f) => ({ path: relPath(f), data: f }));
}

/** Reads a drop, walking dropped folders (webkitGetAsEntry) so a model folder can be dropped whole. */
export async function filesFromDrop(dt: DataTransfer): Promise<InputFile[]> {
  const entries: FileSystemEntry[] = [];
  for (const item of Array.from(dt.items)) {
    const e = item.kind === 'file' ? item.webkitGetAsEntry?.() : null;
    if (e) entries.push(e);
  }
  if (entries.length === 0) return filesFromList(dt.files);
  const out: InputFile[] = [];
  const walk = async (entry: FileSystemEntry, prefix: string): Promise<void> => {
    if (entry.isFile) {
      const file = await new Promise<File>((res, rej) => (entry as FileSystemFileEntry).file(res, rej));
      out.push({ path: prefix + entry.name, data: file });
    } else if (entry.isDirectory) {
      const reader = (entry as FileSystemDirectoryEntry).createReader();
      // readEntries returns batches; an empty batch means the directory is exhausted.
      for (;;) {
        const batch = await new Promise<FileSystemEntry[]>((res, rej) => reader.readEntries(res, rej));
        if (batch.length === 0) break;
        for (const child of batch) await walk(child, `${prefix}${entry.name}/`);
      }
    }
  };
  for (const e of entries) await walk(e, '');
  return out;
}

/** Fetches files relative to the page (the bundled demo) or an absolute URL; CSP decides what is allowed. */
export async function fetchFiles(base: string, names: string[], optional: string[] = []): Promise<InputFile[]> {
  const baseUrl = new URL(base.endsWith('/') ? base : `${base}/`, document.baseURI);
  const out: InputFile[] = [];
  for (const name of [...names, ...optional]) {
    const url = new URL(name, baseUrl);
    let res: Response;
    try {
      res = await fetch(url);
    } catch (e) {
      if (optional.includes(name)) continue;
      throw new Error(
        `${url.href}: could not be fetched (${(e as Error).message}). ` +
          (url.origin !== location.origin
            ? "This page's Content-Security-Policy allows only same-origin requests; download the files and open them locally."
            : ''),
      );
    }
    if (!res.ok) {
      if (optional.includes(name)) continue;
      throw new Error(`${url.href}: HTTP ${res.status}`);
    }
    out.push({ path: name, data: await res.blob() });
  }
  return out;
}

export function download(name: string, bytes: Uint8Array | Blob | string, mime: string): void {
  const blob =
    bytes instanceof Blob && bytes.type === mime
      ? bytes
      : new Blob([typeof bytes === 'string' || bytes instanceof Blob ? bytes : (bytes as Uint8Array<ArrayBuffer>)], { type: mime });
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}

export function formatBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
  return `${n} B`;
}

/** Kept here for the views' existing imports; the pure version (unit-tested) is in ./format. */
export { formatDuration } from './format';
