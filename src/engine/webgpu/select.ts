/**
 * Run-time backend choice: WebGPU when an adapter exists, else the CPU backend.
 *
 * A *fallback* adapter (SwiftShader: WebGPU emulated on the CPU) is refused by default: measured here it
 * runs a 6-layer training step ~10x slower than the CPU backend (`npm run bench:webgpu`), so it is only
 * worth using to test the WebGPU path itself.
 */
import type { Backend } from '../backend';
import { CpuBackend } from '../cpu/backend';
import { createWebGpuBackend, type WebGpuBackendOptions, type WebGpuInfo } from './backend';

export interface BackendChoice {
  backend: Backend;
  kind: 'webgpu' | 'cpu';
  /** Why this backend was chosen (for the UI badge / logs). */
  reason: string;
  info: WebGpuInfo | null;
}

export async function chooseBackend(
  opts: WebGpuBackendOptions & { allowFallbackAdapter?: boolean; forceCpu?: boolean } = {},
): Promise<BackendChoice> {
  const cpu = (reason: string, info: WebGpuInfo | null = null): BackendChoice => ({
    backend: new CpuBackend({ dtype: 'f32' }),
    kind: 'cpu',
    reason,
    info,
  });
  if (opts.forceCpu) return cpu('CPU requested');
  let gpu;
  try {
    gpu = await createWebGpuBackend(opts);
  } catch (e) {
    return cpu(`WebGPU unavailable: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (gpu.info.isFallbackAdapter && !opts.allowFallbackAdapter) {
    gpu.destroy();
    return cpu(`only a software WebGPU adapter (${gpu.info.architecture || gpu.info.vendor}); the CPU backend is faster`, gpu.info);
  }
  return {
    backend: gpu,
    kind: 'webgpu',
    info: gpu.info,
    reason:
      `WebGPU on ${[gpu.info.vendor, gpu.info.architecture, gpu.info.description].filter(Boolean).join(' ')}` +
      ` (${describeWebGpuFeatures(gpu.info)})`,
  };
}

/**
 * What the device offers and what the engine does with it, for the backend badge, e.g.
 * "subgroups: used (matmul, size 32-32); shader-f16: available, f16 matmul operands read natively".
 */
export function describeWebGpuFeatures(info: WebGpuInfo): string {
  const sizes = info.subgroupMinSize ? `, size ${info.subgroupMinSize}-${info.subgroupMaxSize}` : '';
  const sg = !info.subgroups
    ? 'subgroups: not available'
    : info.uses.subgroupMatmul
      ? `subgroups: used (matmul${sizes})`
      : `subgroups: available, not used${sizes}`;
  const f16 = info.shaderF16
    ? `shader-f16: available, f16 matmul operands read ${info.uses.f16Operands === 'native' ? 'natively' : 'as packed words'}`
    : 'shader-f16: not available (f16 matmul operands read as packed words)';
  return `${sg}; ${f16}`;
}
