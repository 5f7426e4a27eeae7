import { createWebGpuBackend } from '../../src/engine/webgpu/backend';
import { CpuBackend } from '../../src/engine/cpu/backend';
import type { Backend } from '../../src/engine/backend';
import { type BackendInfo } from '../../src/jobs/studio-api';


// ---------------------------------------------------------------- backend badge

export interface EngineInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isFallbackAdapter: boolean;
  features: string[];
  limits: Record<string, number>;
}
export type CreateWebGpuBackend = () => Promise<Backend & { info: EngineInfo }>;
/** The engine's WebGPU backend, created once here and reused by every job in this worker. */
export let gpuBackend: (Backend & { info: EngineInfo }) | null = null;

export async function probeBackend(): Promise<BackendInfo> {
  try {
    gpuBackend ??= await (createWebGpuBackend as unknown as CreateWebGpuBackend)();
    const i = gpuBackend.info;
    const name = [i.description, i.vendor, i.architecture, i.device].filter((x) => x && x.length > 0).join(' · ');
    return {
      kind: 'webgpu',
      source: 'engine',
      adapterName: name || 'unnamed adapter',
      vendor: i.vendor,
      architecture: i.architecture,
      isFallbackAdapter: i.isFallbackAdapter,
      features: i.features,
      limits: { ...i.limits },
    };
  } catch (e) {
    return {
      kind: 'cpu',
      source: 'engine',
      reason: `${(e as Error).message || String(e)}. Everything runs on the CPU backend instead, only slower.`,
    };
  }
}

export async function pickBackend(pref: 'auto' | 'cpu'): Promise<Backend> {
  if (pref === 'auto') {
    const info = await probeBackend();
    // A software adapter (SwiftShader) is ~30x slower than the CPU backend for training (ARCHITECTURE.md).
    if (info.kind === 'webgpu' && gpuBackend && !info.isFallbackAdapter) return gpuBackend;
  }
  return new CpuBackend({ dtype: 'f32' });
}
