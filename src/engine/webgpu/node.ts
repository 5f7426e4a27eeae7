/// <reference types="@webgpu/types" />
/**
 * WebGPU in Node through Dawn (the optional `webgpu` npm package, prebuilt for linux x64/arm64, macOS and
 * Windows), so the CLI can run the same kernels on a GPU server as the studio runs in a browser tab.
 *
 * Dawn reaches the GPU through Vulkan (Linux), Metal or D3D12. On a Linux machine without a GPU driver,
 * point the Vulkan loader at a software driver before starting Node, e.g. Chromium's SwiftShader:
 * `LD_LIBRARY_PATH=/usr/lib/chromium VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json`
 * (tools/gpu/swiftshader-env.sh does this); such an adapter reports itself as a CPU device.
 */
import type { Backend } from '../backend';
import { createWebGpuBackend, WebGpuUnavailableError, type WebGpuBackend, type WebGpuBackendOptions } from './backend';
import type { GpuRunInfo } from './run-info';

interface DawnModule {
  create(flags: string[]): GPU;
  globals: Record<string, unknown>;
}

/**
 * The `webgpu` package (or its native binary for this platform) could not be loaded. A WebGpuUnavailableError,
 * so callers that fall back to the CPU on a missing WebGPU treat it the same way.
 */
export class DawnUnavailableError extends WebGpuUnavailableError {
  constructor(readonly detail: string) {
    super(
      `WebGPU in Node needs the optional package 'webgpu' (Dawn) with its native binary for ${process.platform}-${process.arch}, ` +
        `and it could not be loaded (${detail}). Install it with 'npm install webgpu' (prebuilt for linux x64/arm64, ` +
        "macOS, Windows), or run on the CPU backend: '--backend cpu' (or '--backend auto', which falls back by itself)",
    );
    this.name = 'DawnUnavailableError';
  }
}

let dawn: Promise<DawnModule> | null = null;
/** Test hook: the module specifier to load instead of 'webgpu' (a missing one checks the error path). */
let dawnSpecifier = 'webgpu';

export function setDawnSpecifierForTests(name: string): void {
  dawnSpecifier = name;
  dawn = null;
}

async function loadDawn(): Promise<DawnModule> {
  // A variable specifier keeps bundlers from trying to resolve the native module for the browser build.
  const name = dawnSpecifier;
  try {
    return (await import(/* @vite-ignore */ name)) as DawnModule;
  } catch (e) {
    dawn = null; // a later call may try again (e.g. after installing the package in a long-lived process)
    throw new DawnUnavailableError(e instanceof Error ? e.message.split('\n')[0]! : String(e));
  }
}

/** Dawn's GPU object; installs the WebGPU globals (GPUBufferUsage, GPUMapMode, ...) the backend uses. */
export async function nodeGpu(flags: string[] = []): Promise<GPU> {
  dawn ??= loadDawn();
  const m = await dawn;
  for (const [k, v] of Object.entries(m.globals)) {
    if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  }
  return m.create(flags);
}

/** A WebGpuBackend on Dawn. Throws WebGpuUnavailableError when the package or an adapter is missing. */
export async function createNodeWebGpuBackend(opts: WebGpuBackendOptions & { dawnFlags?: string[] } = {}): Promise<WebGpuBackend> {
  const gpu = await nodeGpu(opts.dawnFlags);
  try {
    return await createWebGpuBackend({ ...opts, gpu });
  } catch (e) {
    if (e instanceof WebGpuUnavailableError && process.platform === 'linux') {
      throw new WebGpuUnavailableError(
        `${e.message}. Dawn found no Vulkan adapter: install the GPU's Vulkan driver, or for a software adapter ` +
          'set LD_LIBRARY_PATH and VK_ICD_FILENAMES (see tools/gpu/swiftshader-env.sh); or use the CPU backend',
      );
    }
    throw e;
  }
}

export interface NodeBackendChoice {
  backend: Backend;
  kind: 'webgpu' | 'cpu';
  /** The WebGPU side of what runs (adapter, f16 / subgroup variants), null on the CPU. */
  gpu: GpuRunInfo | null;
  /** Why the CPU runs when WebGPU was possible or asked for ('auto' only), else null. */
  why: string | null;
  /** A warning to print: an explicit 'webgpu' choice got a software adapter (correct, but slower than the CPU). */
  warning: string | null;
}

/**
 * The CLI's backend choice, with the studio's rule (select.ts): 'cpu'; 'webgpu' (Dawn; an error if
 * unavailable; a software adapter is accepted with a warning, as `?gpu=software` in the studio) or 'auto'
 * (Dawn on a hardware adapter, else the CPU backend with the reason; a software adapter is refused, being
 * slower than the CPU backend). `cpu` builds the CPU backend, so the caller keeps its own CPU settings.
 */
export async function chooseNodeBackend<C extends Backend>(
  kind: 'cpu' | 'webgpu' | 'auto',
  cpu: () => C,
  opts: WebGpuBackendOptions & { dawnFlags?: string[] } = {},
): Promise<NodeBackendChoice> {
  const onCpu = (why: string | null): NodeBackendChoice => ({ backend: cpu(), kind: 'cpu', gpu: null, why, warning: null });
  if (kind === 'cpu') return onCpu(null);
  let gpu: WebGpuBackend;
  try {
    gpu = await createNodeWebGpuBackend(opts);
  } catch (e) {
    if (kind === 'webgpu') throw e;
    return onCpu(`WebGPU unavailable: ${e instanceof Error ? e.message : String(e)}`);
  }
  const run = gpu.runInfo('Dawn');
  if (gpu.info.isFallbackAdapter) {
    if (kind === 'auto') {
      gpu.destroy();
      return onCpu(`only a software WebGPU adapter (${run.adapter}): the CPU backend is faster; '--backend webgpu' uses it anyway`);
    }
    return {
      backend: gpu,
      kind: 'webgpu',
      gpu: run,
      why: null,
      warning:
        `${run.adapter} is a software adapter (WebGPU emulated on the CPU): results are correct but slower than ` +
        "'--backend cpu'; use it to check the GPU path, not for speed",
    };
  }
  return { backend: gpu, kind: 'webgpu', gpu: run, why: null, warning: null };
}
