/**
 * Output folders that never destroy inputs (Node only).
 *
 * `checkOutputFolder` runs BEFORE any work: the output must not be (or contain, or sit inside) an input,
 * must not hold files the command did not write unless `force`, must not be a kernel pseudo-file-system
 * (/proc, /sys, /dev: writes there hang or fail late), and must be writable — proved by creating and
 * removing a probe file, so a read-only folder is found in milliseconds, not after an hour of tuning.
 *
 * `writeOutputFolder` writes every file into a temporary folder next to (or inside) the target and renames
 * it into place: a new folder appears complete or not at all; an existing one has its previous output of
 * the same kind (old shards, index, config) removed, so a sharded model overwritten by a single-file one
 * cannot keep loading the OLD weights through its stale index. The marker file (config.json, adapter.json)
 * is removed first and moved in last, so a crash leaves a folder that does not pass for a finished output.
 */
import { lstat, mkdir, readdir, realpath, rename, rm, stat, writeFile, open } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { OutputFolderError } from './errors';
import { fsError } from './fs-errors';

export interface OutputKind {
  /** Name used in messages: "model folder", "adapter folder", ... */
  label: string;
  /** Files (or top-level folders) this command may have written before: they are ours to replace. */
  owned: (name: string) => boolean;
  /** Written last; removed first when replacing an earlier output. */
  marker: string;
}

const TOKENIZER = new Set([
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'vocab.json',
  'merges.txt',
  'generation_config.json',
]);

export const HF_MODEL_OUTPUT: OutputKind = {
  label: 'model folder',
  owned: (n) =>
    n === 'config.json' ||
    n === 'model.safetensors' ||
    n === 'model.safetensors.index.json' ||
    /^model-\d+-of-\d+\.safetensors$/.test(n) ||
    TOKENIZER.has(n),
  marker: 'config.json',
};

export const ADAPTER_OUTPUT: OutputKind = {
  label: 'adapter folder',
  owned: (n) =>
    ['adapter.json', 'adapter.safetensors', 'adapter_config.json', 'adapter_model.safetensors', 'tune.json', 'run', 'README.md'].includes(
      n,
    ),
  marker: 'adapter.json',
};

export const EMULATOR_OUTPUT: OutputKind = {
  label: 'emulator package',
  owned: (n) => n === 'emulator.json' || n === 'emulator.safetensors' || n === 'report.json' || n === 'report.md' || TOKENIZER.has(n),
  marker: 'emulator.json',
};

export const ONNX_OUTPUT: OutputKind = {
  label: 'ONNX export',
  owned: (n) => n === 'config.json' || n === 'onnx' || TOKENIZER.has(n),
  marker: 'config.json',
};

export const REPORT_OUTPUT: OutputKind = {
  label: 'report folder',
  owned: (n) => /^(report|failed)([-.].*)?\.(json|md)$/.test(n),
  marker: 'report.md',
};

const PSEUDO_FS = ['/proc', '/sys', '/dev'];

async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch {
    return false;
  }
}

/** realpath of the path, or of its nearest existing ancestor joined with the rest. */
async function canonical(p: string): Promise<string> {
  let cur = resolve(p);
  const rest: string[] = [];
  for (;;) {
    try {
      return join(await realpath(cur), ...rest.reverse());
    } catch {
      const up = dirname(cur);
      if (up === cur) return resolve(p);
      rest.push(cur.slice(up.length + (up.endsWith(sep) ? 0 : 1)));
      cur = up;
    }
  }
}

function inside(child: string, parent: string): boolean {
  const r = relative(parent, child);
  return r === '' || (!r.startsWith('..') && !r.startsWith(sep) && r !== '..');
}

export interface CheckOutputOptions {
  /** Paths the command reads (model folders, adapters, data files). */
  inputs: string[];
  kind: OutputKind;
  /** Allow unrelated files in the output folder (they are left alone, never deleted). */
  force?: boolean;
}

/** Throws OutputFolderError / FileAccessError unless `out` is safe and writable; creates it (empty) if missing. */
export async function checkOutputFolder(out: string, o: CheckOutputOptions): Promise<void> {
  const outC = await canonical(out);
  for (const pfx of PSEUDO_FS) {
    if (outC === pfx || outC.startsWith(pfx + '/'))
      throw new OutputFolderError(out, `${pfx} is a kernel pseudo-file-system, not a place for outputs`);
  }
  for (const input of o.inputs) {
    const inC = await canonical(input);
    if (outC === inC)
      throw new OutputFolderError(out, `is an input of this command (${input}); writing there would overwrite it — choose another --out`);
    if (inside(inC, outC)) throw new OutputFolderError(out, `contains an input of this command (${input}) — choose another --out`);
  }
  let isNew = false;
  try {
    const s = await stat(out);
    if (!s.isDirectory()) throw new OutputFolderError(out, 'exists and is not a folder');
  } catch (e) {
    if (e instanceof OutputFolderError) throw e;
    if ((e as { code?: string }).code !== 'ENOENT') throw fsError(e, out, 'use as output folder');
    isNew = true;
  }
  if (!isNew) {
    const names = (await readdir(out)).filter((n) => !n.includes('.tmp-'));
    const foreign = names.filter((n) => !o.kind.owned(n));
    if (foreign.length > 0 && !o.force) {
      throw new OutputFolderError(
        out,
        `holds files this command did not write (${foreign.slice(0, 5).join(', ')}${foreign.length > 5 ? `, … ${foreign.length} in all` : ''}); ` +
          'choose an empty or new folder, or pass --force to write next to them (they are left alone)',
      );
    }
  }
  // Writable, proved now: mkdir + a probe file (access(W_OK) says yes for root on read-only mounts).
  try {
    await mkdir(out, { recursive: true });
    const probe = join(out, `.write-probe.tmp-${process.pid}`);
    const fh = await open(probe, 'w');
    await fh.close();
    await rm(probe, { force: true });
  } catch (e) {
    throw fsError(e, out, 'write to the output folder');
  }
  if (isNew) await rm(out, { recursive: true, force: true }).catch(() => undefined); // writeOutputFolder creates it atomically
}

async function writeAll(dir: string, files: Map<string, Uint8Array>): Promise<void> {
  for (const [name, bytes] of files) {
    const p = join(dir, name);
    await mkdir(dirname(p), { recursive: true });
    const fh = await open(p, 'w');
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
  }
}

/**
 * Writes `files` as the folder `out` (see the module comment). Files of an earlier output of the same
 * kind that are not in `files` are removed; files the kind does not own are left alone.
 */
export async function writeOutputFolder(out: string, files: Map<string, Uint8Array>, kind: OutputKind): Promise<string[]> {
  const tag = `.tmp-${process.pid}-${Date.now().toString(36)}`;
  try {
    if (!(await exists(out))) {
      const tmp = `${out.replace(/[\\/]+$/, '')}${tag}`;
      await mkdir(dirname(tmp), { recursive: true });
      try {
        await mkdir(tmp);
        await writeAll(tmp, files);
        await rename(tmp, out);
      } catch (e) {
        await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
        throw e;
      }
      return [...files.keys()];
    }
    const tmp = join(out, tag);
    await mkdir(tmp);
    try {
      await writeAll(tmp, files);
      // From here the old output is being replaced: the marker goes first, so a crash cannot leave a
      // folder that looks finished but mixes old and new files.
      await rm(join(out, kind.marker), { force: true });
      for (const n of await readdir(out)) {
        if (n === tag || n === kind.marker || files.has(n) || !kind.owned(n)) continue;
        if (n === 'run') continue; // checkpoints of a tuning run: the tuner manages them
        await rm(join(out, n), { recursive: true, force: true });
      }
      const order = [...files.keys()].filter((n) => n !== kind.marker);
      if (files.has(kind.marker)) order.push(kind.marker);
      for (const n of order) {
        await mkdir(dirname(join(out, n)), { recursive: true });
        await rename(join(tmp, n), join(out, n));
      }
    } finally {
      await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    }
    return [...files.keys()];
  } catch (e) {
    throw fsError(e, out, 'write the output folder');
  }
}

/** For single-file outputs (a .zip): not a pseudo-file-system, not an input, not a folder; its folder writable. */
export async function checkOutputFile(out: string, inputs: string[]): Promise<void> {
  const outC = await canonical(out);
  for (const pfx of PSEUDO_FS)
    if (outC === pfx || outC.startsWith(pfx + '/'))
      throw new OutputFolderError(out, `${pfx} is a kernel pseudo-file-system, not a place for outputs`);
  for (const input of inputs)
    if ((await canonical(input)) === outC) throw new OutputFolderError(out, `is an input of this command (${input})`);
  if (
    await stat(out).then(
      (s) => s.isDirectory(),
      () => false,
    )
  )
    throw new OutputFolderError(out, 'is a folder, not a file name');
  const dir = dirname(out);
  try {
    await mkdir(dir, { recursive: true });
    const probe = join(dir, `.write-probe.tmp-${process.pid}`);
    await (await open(probe, 'w')).close();
    await rm(probe, { force: true });
  } catch (e) {
    throw fsError(e, dir, 'write to the output folder');
  }
}

/** Writes a single-file output atomically (temp + rename) after `checkOutputFile`'s checks. */
export async function writeOutputFile(out: string, bytes: Uint8Array, inputs: string[]): Promise<void> {
  await checkOutputFile(out, inputs);
  const tmp = `${out}.tmp-${process.pid}`;
  try {
    await mkdir(dirname(out), { recursive: true });
    await writeFile(tmp, bytes);
    await rename(tmp, out);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw fsError(e, out, 'write');
  }
}

/** compress's output: a package folder, or one .zip (`zip`). */
export async function checkCompressOutput(out: string, zip: boolean, inputs: string[], force: boolean): Promise<void> {
  if (zip) await checkOutputFile(out, inputs);
  else await checkOutputFolder(out, { inputs, kind: EMULATOR_OUTPUT, force });
}
