/**
 * FolderFactorSpill: the SVD factors GradOT's scorer cannot keep within its memory budget, parked in a
 * temporary folder until the build takes them back (Node only; the CLI's `gradot compress`).
 *
 * Why: the scorer needs every matrix's full factors until the global rank allocation has seen all scores.
 * Beyond the budget they used to be dropped and the SVD recomputed at build time; on TinyLlama-1.1B that is
 * about 4.6 GB of factors and most of the SVD time a second time, while writing and reading them back costs
 * seconds. The bytes go out and come back exactly, so the package is the same.
 *
 * Nothing here may fail the job: a full disk or a write error leaves that matrix to be recomputed (put
 * returns false), and a file that cannot be read back is recomputed too (take returns null).
 */
import { closeSync, mkdtempSync, openSync, readSync, rmSync, statfsSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BuildFactors, FactorSpill } from '../ot/emulator/compress';

/** Free space left on the folder's disk after a write (other programs need room too). */
export const SPILL_DISK_RESERVE = 2 * 2 ** 30;

/**
 * Where spill folders go: the launcher's scratch folder (bin/launcher.mjs sets GRADOT_SCRATCH_DIR and
 * removes it however the job ends, a signal included), else the system's temporary folder.
 */
export function spillParent(): string {
  return process.env.GRADOT_SCRATCH_DIR || tmpdir();
}

interface Entry {
  path: string;
  rank: number;
  usLength: number;
  vtLength: number;
}

export class FolderFactorSpill implements FactorSpill {
  readonly dir: string;
  private readonly entries = new Map<string, Entry>();
  private seq = 0;
  /** Bytes written / read back, for the job's report. */
  written = 0;
  read = 0;
  private readonly onExit = () => this.close();

  constructor(
    parent = spillParent(),
    private readonly freeBytes: (dir: string) => number = diskFree,
  ) {
    this.dir = mkdtempSync(join(parent, 'gradot-factors-'));
    // A job that ends or fails leaves no folder behind. No signal handlers: a handler only runs when the
    // event loop turns, which a compress does not do for minutes, so one would defer Ctrl-C and SIGTERM
    // until the job ends. A signal ends the process at once instead, and the launcher, which owns the
    // parent folder, removes it (an embedding program that passes its own `parent` cleans up after itself).
    process.once('exit', this.onExit);
  }

  put(key: string, f: BuildFactors): boolean {
    const bytes = 4 * (f.US.length + f.Vt.length);
    try {
      if (this.freeBytes(this.dir) - bytes < SPILL_DISK_RESERVE) return false;
    } catch {
      return false;
    }
    const path = join(this.dir, `${this.seq++}.f32`);
    let fd = -1;
    try {
      fd = openSync(path, 'w');
      writeAll(fd, new Uint8Array(f.US.buffer, f.US.byteOffset, f.US.byteLength));
      writeAll(fd, new Uint8Array(f.Vt.buffer, f.Vt.byteOffset, f.Vt.byteLength));
    } catch {
      if (fd >= 0) closeSync(fd);
      fd = -1;
      rmSync(path, { force: true });
      return false;
    } finally {
      if (fd >= 0) closeSync(fd);
    }
    this.entries.set(key, { path, rank: f.rank, usLength: f.US.length, vtLength: f.Vt.length });
    this.written += bytes;
    return true;
  }

  take(key: string): BuildFactors | null {
    const e = this.entries.get(key);
    if (!e) return null;
    this.entries.delete(key);
    const all = new Float32Array(e.usLength + e.vtLength);
    try {
      const fd = openSync(e.path, 'r');
      try {
        const bytes = new Uint8Array(all.buffer);
        let at = 0;
        while (at < bytes.length) {
          const n = readSync(fd, bytes, at, bytes.length - at, at);
          if (n === 0) return null; // truncated: recompute
          at += n;
        }
      } finally {
        closeSync(fd);
      }
    } catch {
      return null;
    } finally {
      rmSync(e.path, { force: true });
    }
    this.read += all.byteLength;
    return { rank: e.rank, US: all.subarray(0, e.usLength), Vt: all.subarray(e.usLength) };
  }

  /** Removes the folder and whatever is still in it. */
  close(): void {
    process.removeListener('exit', this.onExit);
    for (const e of this.entries.values()) {
      try {
        unlinkSync(e.path);
      } catch {
        // already gone
      }
    }
    this.entries.clear();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function writeAll(fd: number, b: Uint8Array): void {
  let at = 0;
  while (at < b.length) at += writeSync(fd, b, at, b.length - at);
}

function diskFree(dir: string): number {
  const s = statfsSync(dir);
  return Number(s.bavail) * Number(s.bsize);
}
