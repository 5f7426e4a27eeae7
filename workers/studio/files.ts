/**
 * Dropped files: folder prefixes, zips, JSON and safetensors headers, and errors the UI shows with their
 * file (and line).
 */
import { SafetensorsReader } from '../../src/model/safetensors';
import type { FileListSource } from '../../src/model/source';
import { BlobSource, readBlob } from './blob-source';
import { numel } from '../../src/model/weights';
import { unzipBounded } from '../../src/faults/zip';
import { EMULATOR_JSON, EMULATOR_WEIGHTS, readEmulatorPackage, type EmulatorPackage } from '../../src/ot/emulator/package';
import { encodeStudioError, type InputFile, type TensorInfo } from '../../src/jobs/studio-api';

export function fail(file: string | undefined, message: string, line?: number): never {
  throw new Error(encodeStudioError({ file, message, line }));
}

/** Strips the folder the user picked so names match the HF layout ("config.json", not "gpt2/config.json"). */
export function stripCommonFolder(files: InputFile[]): InputFile[] {
  const firsts = new Set(files.map((f) => (f.path.includes('/') ? f.path.split('/')[0] : '')));
  if (firsts.size !== 1 || firsts.has('')) return files;
  return files.map((f) => ({ path: f.path.split('/').slice(1).join('/'), data: f.data }));
}

export function sourceOf(files: InputFile[], label: string): FileListSource {
  return new BlobSource(new Map(files.map((f) => [f.path, f.data])), label);
}

/** Header-only read through src/model's SafetensorsReader (validates offsets against the file size). */
export async function readSafetensorsHeader(file: InputFile): Promise<TensorInfo[]> {
  const reader = await SafetensorsReader.open(sourceOf([file], file.path), file.path);
  return [...reader.header.entries].map(([name, e]) => ({ name, dtype: e.dtype, shape: e.shape, params: numel(e.shape) }));
}

/** Turns the model/data modules' named errors into ones the UI can show with their file (and line). */
export function rethrow(e: unknown, fallbackFile?: string): never {
  if (e instanceof Error && e.message.startsWith('{"studioError"')) throw e;
  const err = e as Error & { file?: string; line?: number | null; detail?: string };
  const file = typeof err.file === 'string' ? err.file : fallbackFile;
  let message = err.detail ?? err.message ?? String(e);
  // The modules' messages start with the file name; the toast shows it separately.
  if (file && message.startsWith(file)) message = message.slice(file.length).replace(/^:?\s+/, '');
  fail(file, message, err.line ?? undefined);
}

export function baseName(p: string): string {
  const i = p.lastIndexOf('/');
  return i >= 0 ? p.slice(i + 1) : p;
}

export function findFile(files: InputFile[], name: string): InputFile | undefined {
  return files.find((f) => baseName(f.path) === name);
}

export async function readJson(file: InputFile): Promise<Record<string, unknown>> {
  const text = await file.data.text();
  try {
    const v = JSON.parse(text) as unknown;
    if (!v || typeof v !== 'object' || Array.isArray(v)) fail(file.path, 'expected a JSON object');
    return v as Record<string, unknown>;
  } catch (e) {
    if (e instanceof Error && e.message.startsWith('{"studioError"')) throw e;
    fail(file.path, `not valid JSON: ${(e as Error).message}`);
  }
}

export async function expandZip(file: InputFile): Promise<InputFile[]> {
  const bytes = await readBlob(file.data, file.path);
  // Entry count and sizes are checked before inflating: a zip bomb is refused, not expanded.
  let entries: [string, Uint8Array][];
  try {
    entries = [...unzipBounded(bytes, file.path)];
  } catch (e) {
    rethrow(e, file.path);
  }
  return entries.filter(([p]) => !p.endsWith('/')).map(([p, b]) => ({ path: p, data: new Blob([b as Uint8Array<ArrayBuffer>]) }));
}

/**
 * An emulator package's weights, decoded from its files (a dropped folder or zip, or a run's saved copy):
 * jobs call this when they start and let go of the result when they end, so an open package costs its
 * files' Blobs between jobs, not its decoded weights.
 */
export async function readPackage(files: InputFile[], label: string): Promise<EmulatorPackage> {
  const manifestFile = findFile(files, EMULATOR_JSON);
  if (!manifestFile) {
    fail(label, `not an emulator package: no ${EMULATOR_JSON} (found ${files.map((f) => f.path).join(', ') || 'nothing'})`);
  }
  const weightsFile = findFile(files, EMULATOR_WEIGHTS);
  if (!weightsFile) fail(label, `${EMULATOR_WEIGHTS} is missing next to ${EMULATOR_JSON}`);
  const map = new Map<string, Uint8Array>();
  for (const f of [manifestFile, weightsFile]) map.set(baseName(f.path), await readBlob(f.data, f.path));
  try {
    // src/ot checks format, version, and every tensor against the emulator's spec.
    return readEmulatorPackage(map);
  } catch (e) {
    rethrow(e, label);
  }
}
