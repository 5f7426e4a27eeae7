/**
 * What a job actually runs on, as a small plain object (structured-cloneable: it crosses the studio's worker
 * boundary) and one line of text shared by the CLI ("backend: ..." at the start of a job) and the studio's
 * backend badge, so both say the same thing:
 *
 *   webgpu (Dawn, NVIDIA GeForce RTX 4090, f16: yes, subgroups: yes)
 *   webgpu (browser, SwiftShader Device (Subzero), software adapter, f16: no, subgroups: yes)
 *   cpu (2 threads, relaxed SIMD)
 *   cpu (1 thread: the page is not cross-origin isolated (COOP/COEP headers missing), SIMD)
 *
 * "f16" and "subgroups" say which kernel variants the WebGPU backend selected (WebGpuInfo.uses), not merely
 * what the adapter offers: subgroups = matmul runs the subgroup-shuffle kernel; f16 = f16 operands are read
 * as native `f16` (shader-f16) rather than unpacked from 32-bit words.
 *
 * No Node or DOM imports: the UI bundle imports this file.
 */
import type { WebGpuInfo } from './backend';

export interface GpuRunInfo {
  /** Where WebGPU comes from: Dawn in Node (the CLI) or the browser's implementation (the studio). */
  via: 'Dawn' | 'browser';
  /** Adapter name as reported (description, else vendor/architecture). */
  adapter: string;
  /** A software adapter (SwiftShader and the like): WebGPU emulated on the CPU. */
  software: boolean;
  /** f16 matmul operands read natively (device has shader-f16 and the backend selected that variant). */
  f16: boolean;
  /** Matmul runs the subgroup kernel (device has subgroups and the backend selected it). */
  subgroups: boolean;
}

export interface CpuRunInfo {
  /** Threads an f32 product runs on. */
  threads: number;
  /** Why fewer threads than asked (e.g. not cross-origin isolated), else null. */
  reason: string | null;
  /** The f32 kernel: 'wasm-relaxed-simd', 'wasm-simd' or 'js'. */
  kernel: string;
}

export interface RunInfo {
  kind: 'webgpu' | 'cpu';
  gpu?: GpuRunInfo;
  cpu?: CpuRunInfo;
  /** CPU only: why WebGPU does not run the jobs (no adapter, software adapter refused, device lost...). */
  why?: string | null;
}

/** An adapter's name for people: its description, else vendor and architecture. */
export function adapterName(i: Pick<WebGpuInfo, 'vendor' | 'architecture' | 'description'>): string {
  return i.description || [i.vendor, i.architecture].filter(Boolean).join(' ') || 'unnamed adapter';
}

/** The GPU part of RunInfo from the backend's own record of its variant selection. */
export function gpuRunInfo(i: WebGpuInfo, via: GpuRunInfo['via']): GpuRunInfo {
  return {
    via,
    adapter: adapterName(i),
    software: i.isFallbackAdapter,
    f16: i.shaderF16 && i.uses.f16Operands === 'native',
    subgroups: i.subgroups && i.uses.subgroupMatmul,
  };
}

const KERNEL_WORDS: Record<string, string> = { 'wasm-relaxed-simd': 'relaxed SIMD', 'wasm-simd': 'SIMD', js: 'plain JS' };

/** "2 threads, relaxed SIMD" or "1 thread: <why>, SIMD". */
export function describeCpuRun(c: CpuRunInfo): string {
  const t = `${c.threads} thread${c.threads === 1 ? '' : 's'}`;
  return `${t}${c.reason ? `: ${c.reason}` : ''}, ${KERNEL_WORDS[c.kernel] ?? c.kernel}`;
}

/** "Dawn, <adapter>, f16: no, subgroups: yes" (with "software adapter" after the name when it is one). */
export function describeGpuRun(g: GpuRunInfo): string {
  return `${g.via}, ${g.adapter}${g.software ? ', software adapter' : ''}, f16: ${g.f16 ? 'yes' : 'no'}, subgroups: ${g.subgroups ? 'yes' : 'no'}`;
}

/** The one line: "webgpu (...)" or "cpu (...)", with " — why" when the CPU runs in place of WebGPU. */
export function describeRun(r: RunInfo): string {
  if (r.kind === 'webgpu' && r.gpu) return `webgpu (${describeGpuRun(r.gpu)})`;
  const inner = r.cpu ? describeCpuRun(r.cpu) : 'threads unknown';
  return `cpu (${inner})${r.why ? ` — ${r.why}` : ''}`;
}

/** A CPU thread limit's reason in a few words, for the badge ("not cross-origin isolated"); the full reason
 *  stays in the tooltip and the CLI line. */
export function shortCpuReason(reason: string): string {
  if (/cross-origin isolated/i.test(reason)) return 'not cross-origin isolated';
  if (/Atomics\.wait/.test(reason)) return 'Atomics.wait not allowed here';
  const head = reason.split(/[(:]/)[0]!.trim();
  return head.length > 40 ? `${head.slice(0, 39)}…` : head;
}

/**
 * The badge's short form of the same facts: "2 threads · relaxed SIMD", "1 thread (not cross-origin
 * isolated) · SIMD", or on WebGPU "f16: no · subgroups: yes" (the adapter is named beside it).
 */
export function runSummary(r: RunInfo): string {
  if (r.kind === 'webgpu' && r.gpu) return `f16: ${r.gpu.f16 ? 'yes' : 'no'} · subgroups: ${r.gpu.subgroups ? 'yes' : 'no'}`;
  if (!r.cpu) return 'threads unknown';
  const c = r.cpu;
  return `${c.threads} thread${c.threads === 1 ? '' : 's'}${c.reason ? ` (${shortCpuReason(c.reason)})` : ''} · ${KERNEL_WORDS[c.kernel] ?? c.kernel}`;
}
