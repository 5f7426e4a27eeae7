/// <reference types="@webgpu/types" />
/**
 * WebGpuBackend: the Backend contract on WebGPU compute shaders (f32).
 *
 * Execution model: every op encodes one or more dispatches into a shared command encoder and returns at
 * once; consecutive dispatches share one compute pass. The encoder is submitted when `read()` needs data
 * or after `batchDispatches` (default 2048) dispatches, so a whole training step (forward, backward,
 * optimizer) is one command buffer and one submit, without a GPU->CPU round trip.
 *
 * Memory: storage comes from a size-bucketed pool. A freed buffer may still be referenced by commands in
 * the not-yet-submitted encoder. Commands of one encoder run in order (WebGPU synchronises storage between
 * dispatches), so such a buffer may be reused at once as the *output* of a later command in the same
 * encoder; but uploads (`queue.writeBuffer`) execute *before* that encoder, so a buffer freed in the open
 * encoder only becomes available for uploads after the encoder is submitted.
 */
import type { Activation, AdamWParams, AttentionParams, Backend, DType, FloatArray, MatmulParams, RopeParams, Storage } from '../backend';
import { floatToHalf, halfToFloat } from '../../model/safetensors';
import * as K from './kernels/index';
import type { Kernel } from './kernels/define';
import { gpuRunInfo, type GpuRunInfo } from './run-info';

export class DeviceLostError extends Error {
  constructor(
    public readonly reason: string,
    message: string,
  ) {
    super(`WebGPU device lost (${reason}): ${message}`);
    this.name = 'DeviceLostError';
  }
}

export class WebGpuUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WebGpuUnavailableError';
  }
}

/** A tensor or binding that exceeds what the device allows. */
export class GpuLimitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GpuLimitError';
  }
}

export interface WebGpuInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isFallbackAdapter: boolean;
  features: string[];
  /** Features we enabled on the device and may use (f32 kernels never need them). */
  shaderF16: boolean;
  subgroups: boolean;
  /** Subgroup sizes the adapter reports (0 when unknown). */
  subgroupMinSize: number;
  subgroupMaxSize: number;
  /** What the backend actually uses them for (the badge shows this). */
  uses: {
    /** Matmul shares operands through subgroup shuffles. */
    subgroupMatmul: boolean;
    /** How f16 matmul operands are read: native `f16` (shader-f16) or packed words (`unpack2x16float`). */
    f16Operands: 'native' | 'packed';
  };
  limits: {
    maxBufferSize: number;
    maxStorageBufferBindingSize: number;
    maxComputeWorkgroupStorageSize: number;
    maxComputeInvocationsPerWorkgroup: number;
    maxComputeWorkgroupsPerDimension: number;
    maxStorageBuffersPerShaderStage: number;
    minStorageBufferOffsetAlignment: number;
  };
}

export interface WebGpuBackendOptions {
  /** Defaults to `navigator.gpu` (browser or worker). */
  gpu?: GPU;
  powerPreference?: GPUPowerPreference;
  /** Called once when the device is lost (driver reset, `destroy()`, tab backgrounded by the OS...). */
  onLost?: (info: { reason: string; message: string }) => void;
  /** Submit after this many dispatches even without a read (bounds memory held by pending frees). */
  batchDispatches?: number;
  /** Test hook: pretend bindings above this many bytes must be split where an op supports splitting
   *  (gather), so the split path runs on devices whose real limit is large (SwiftShader: 1 GiB). */
  splitBindingBytes?: number;
  /** Test hook: split batched matmuls at this many entries per dispatch instead of the device limit. */
  splitDispatchZ?: number;
  /** Debugging aid: remember where every live storage was allocated (see `liveStorages()`). */
  trackLive?: boolean;
  /** Use the subgroup matmul when the device has `subgroups` (default true). */
  subgroupMatmul?: boolean;
  /** Read f16 operands as native `array<f16>` when the device has `shader-f16` (default true); otherwise,
   *  or when false, as packed words unpacked with `unpack2x16float` (core WGSL). */
  nativeF16?: boolean;
  /** Count dispatches per kernel name (see `takeDispatchCounts()`). */
  countDispatches?: boolean;
  /** Record GPU time per kernel label with timestamp queries (when the adapter offers 'timestamp-query'). */
  profile?: boolean;
}

/** Element type of a GPU storage: f32 everywhere, or IEEE half (two per 32-bit word, element 2j in the
 *  low half) for matmul operands (`toF16`, `fromArrayF16`). */
export type GpuDType = 'f32' | 'f16';

export class GpuStorage implements Storage {
  freed = false;
  constructor(
    readonly length: number,
    readonly buffer: GPUBuffer,
    /** Bytes actually allocated (the pool bucket), >= `bytes`. */
    readonly capacity: number,
    readonly dtype: GpuDType = 'f32',
  ) {}

  /** Bytes the elements occupy (f16 rounded up to whole 32-bit words). */
  get bytes(): number {
    return this.dtype === 'f32' ? this.length * 4 : Math.ceil(this.length / 2) * 4;
  }
}

const STORAGE_USAGE = GPUBufferUsageFlagsValue('storage');

/** GPUBufferUsage is only defined where WebGPU exists; resolve lazily so importing this file is safe in
 *  Node (type checks, bundling for the CPU path). */
function GPUBufferUsageFlagsValue(kind: 'storage' | 'uniform' | 'read'): () => number {
  return () => {
    const U = globalThis.GPUBufferUsage;
    if (kind === 'storage') return U.STORAGE | U.COPY_SRC | U.COPY_DST;
    if (kind === 'uniform') return U.UNIFORM | U.COPY_DST;
    return U.MAP_READ | U.COPY_DST;
  };
}
const UNIFORM_USAGE = GPUBufferUsageFlagsValue('uniform');
const READ_USAGE = GPUBufferUsageFlagsValue('read');

/** Size classes: 4 per power of two (<= 25% slack), multiples of 256 bytes. */
export function bucketBytes(bytes: number): number {
  const b = Math.max(256, bytes);
  const p = 2 ** Math.floor(Math.log2(b));
  const step = Math.max(256, p / 4);
  return Math.ceil(b / step) * step;
}

/** Asks for an adapter (a fallback adapter such as SwiftShader is accepted) and a device with the adapter's
 *  own limits, enabling shader-f16 and subgroups when offered. */
export async function createWebGpuBackend(opts: WebGpuBackendOptions = {}): Promise<WebGpuBackend> {
  const gpu = opts.gpu ?? (globalThis.navigator as Navigator | undefined)?.gpu;
  if (!gpu) throw new WebGpuUnavailableError('WebGPU is not available here (navigator.gpu is undefined)');
  const adapter = await gpu.requestAdapter({ powerPreference: opts.powerPreference ?? 'high-performance' });
  if (!adapter) throw new WebGpuUnavailableError('navigator.gpu.requestAdapter() returned no adapter');
  const wanted: GPUFeatureName[] = [];
  for (const f of ['shader-f16', 'subgroups'] as GPUFeatureName[]) if (adapter.features.has(f)) wanted.push(f);
  if (opts.profile && adapter.features.has('timestamp-query')) wanted.push('timestamp-query');
  const requiredLimits: Record<string, number> = {};
  // The limits object exposes its fields as prototype getters; copy every numeric one.
  for (const key in adapter.limits) {
    const v = (adapter.limits as unknown as Record<string, unknown>)[key];
    if (typeof v === 'number') requiredLimits[key] = v;
  }
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredFeatures: wanted, requiredLimits });
  } catch {
    // Some implementations reject individual limits they list; the essentials are enough.
    const L = adapter.limits;
    device = await adapter.requestDevice({
      requiredFeatures: wanted,
      requiredLimits: {
        maxBufferSize: L.maxBufferSize,
        maxStorageBufferBindingSize: L.maxStorageBufferBindingSize,
        maxComputeWorkgroupStorageSize: L.maxComputeWorkgroupStorageSize,
        maxStorageBuffersPerShaderStage: L.maxStorageBuffersPerShaderStage,
      },
    });
  }
  const ai = adapter.info;
  const info: WebGpuInfo = {
    vendor: ai.vendor,
    architecture: ai.architecture,
    device: ai.device,
    description: ai.description,
    isFallbackAdapter: Boolean(
      (ai as { isFallbackAdapter?: boolean }).isFallbackAdapter ??
        (adapter as unknown as { isFallbackAdapter?: boolean }).isFallbackAdapter,
    ),
    features: [...adapter.features].map(String).sort(),
    shaderF16: device.features.has('shader-f16'),
    subgroups: device.features.has('subgroups'),
    subgroupMinSize: Number((ai as { subgroupMinSize?: number }).subgroupMinSize ?? 0),
    subgroupMaxSize: Number((ai as { subgroupMaxSize?: number }).subgroupMaxSize ?? 0),
    uses: {
      subgroupMatmul: device.features.has('subgroups') && opts.subgroupMatmul !== false,
      f16Operands: device.features.has('shader-f16') && opts.nativeF16 !== false ? 'native' : 'packed',
    },
    limits: {
      maxBufferSize: device.limits.maxBufferSize,
      maxStorageBufferBindingSize: device.limits.maxStorageBufferBindingSize,
      maxComputeWorkgroupStorageSize: device.limits.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: device.limits.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupsPerDimension: device.limits.maxComputeWorkgroupsPerDimension,
      maxStorageBuffersPerShaderStage: device.limits.maxStorageBuffersPerShaderStage,
      minStorageBufferOffsetAlignment: device.limits.minStorageBufferOffsetAlignment,
    },
  };
  return new WebGpuBackend(device, info, { ...opts, gpu });
}

type Binding = GpuStorage | GPUBuffer | { buffer: GPUBuffer; offset: number; size: number };

export class WebGpuBackend implements Backend {
  readonly name = 'webgpu';
  readonly dtype: DType = 'f32';
  private lostInfo: { reason: string; message: string } | null = null;
  private readonly pool = new Map<string, GPUBuffer[]>();
  /** Freed while the encoder is open: reusable as outputs of later commands in it, not for uploads. */
  private pendingRelease = new Map<string, GPUBuffer[]>();
  private pass: GPUComputePassEncoder | null = null;
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private encoder: GPUCommandEncoder | null = null;
  private dispatches = 0;
  private readonly batchDispatches: number;
  private readonly splitBindingBytes: number | undefined;
  private readonly splitDispatchZ: number | undefined;
  private readonly liveSet: Map<GpuStorage, string> | null;
  /**
   * Backstop for storages dropped without free(): the autograd tape leaves forward activations to the
   * garbage collector, which would otherwise strand their GPU buffers outside the pool (fresh createBuffer
   * every step). When a GpuStorage handle is collected, its buffer goes back to the pool (via the pending
   * list, so commands still queued in the open encoder keep a valid buffer).
   */
  private readonly reclaim = new FinalizationRegistry<{ key: string; buf: GPUBuffer }>((h) => {
    if (this.lostInfo) return;
    this.stats.reclaimedByGc++;
    this.release(h.key, h.buf);
  });
  private readonly ropeTables = new Map<string, GpuStorage>();
  private readonly prof: {
    qs: GPUQuerySet;
    labels: string[];
    totals: Map<string, { ns: number; count: number }>;
    pending: Promise<void>[];
  } | null = null;
  /** With `countDispatches`: dispatches per kernel name since the last `takeDispatchCounts()`. */
  private dispatchLabels: Map<string, number> | null = null;
  /** Counters for tests and the UI badge. */
  readonly stats = {
    buffersCreated: 0,
    poolHits: 0,
    submits: 0,
    pipelinesCompiled: 0,
    dispatches: 0,
    reclaimedByGc: 0,
    /** Largest single buffer ever created (bytes). */
    largestBufferBytes: 0,
  };

  /** The WebGPU entry point this device came from (navigator.gpu, or Dawn's in Node): lets tests and
   *  benchmarks open further devices the same way. */
  readonly gpuApi: GPU | undefined;

  constructor(
    readonly device: GPUDevice,
    readonly info: WebGpuInfo,
    opts: WebGpuBackendOptions = {},
  ) {
    this.gpuApi = opts.gpu ?? (globalThis.navigator as Navigator | undefined)?.gpu;
    this.batchDispatches = opts.batchDispatches ?? (opts.profile ? 1024 : 2048);
    this.splitBindingBytes = opts.splitBindingBytes;
    this.splitDispatchZ = opts.splitDispatchZ;
    this.liveSet = opts.trackLive ? new Map() : null;
    if (opts.countDispatches) this.dispatchLabels = new Map();
    if (opts.profile && device.features.has('timestamp-query')) {
      this.prof = {
        qs: device.createQuerySet({ type: 'timestamp', count: 2 * this.batchDispatches }),
        labels: [],
        totals: new Map(),
        pending: [],
      };
    }
    void device.lost.then((l) => {
      this.lostInfo = { reason: l.reason, message: l.message };
      opts.onLost?.(this.lostInfo);
    });
  }

  get lost(): boolean {
    return this.lostInfo !== null;
  }

  /** What runs, for the CLI's "backend: …" line and the studio's badge: the adapter and the kernel variants
   *  this backend selected (subgroup matmul, native f16 operands). */
  runInfo(via: GpuRunInfo['via']): GpuRunInfo {
    return gpuRunInfo(this.info, via);
  }

  /** Destroys the device (all storage becomes invalid; `onLost` fires with reason 'destroyed'). */
  destroy(): void {
    this.device.destroy();
  }

  // ---------------------------------------------------------------- plumbing

  private live(): void {
    if (this.lostInfo) throw new DeviceLostError(this.lostInfo.reason, this.lostInfo.message);
  }

  private s(x: Storage, what: string, allowF16 = false): GpuStorage {
    if (!(x instanceof GpuStorage)) throw new Error(`${what}: storage does not belong to a WebGpuBackend`);
    if (x.freed) throw new Error(`${what}: storage used after free()`);
    if (x.dtype !== 'f32' && !allowF16) throw new Error(`${what}: ${x.dtype} storage is only accepted as a matmul operand`);
    return x;
  }

  private checkLen(what: string, x: GpuStorage, want: number): void {
    if (x.length !== want) throw new Error(`${what}: storage has ${x.length} elements, expected ${want}`);
  }

  /** `gpuWritten`: the buffer's first use is as the output of a command in the open encoder, so a buffer
   *  freed earlier in that encoder may be reused (see the file comment). */
  private acquire(usage: number, bytes: number, label: string, gpuWritten = false): { key: string; buf: GPUBuffer; cap: number } {
    const cap = bucketBytes(bytes);
    if (cap > this.device.limits.maxBufferSize && bytes <= this.device.limits.maxBufferSize) {
      return this.acquireExact(usage, bytes, label);
    }
    if (bytes > this.device.limits.maxBufferSize) {
      throw new GpuLimitError(
        `${label}: ${bytes} bytes (${bytes / 4} f32) exceeds this device's maxBufferSize of ` + `${this.device.limits.maxBufferSize} bytes`,
      );
    }
    const key = `${usage}:${cap}`;
    const hit = (gpuWritten ? this.pendingRelease.get(key)?.pop() : undefined) ?? this.pool.get(key)?.pop();
    if (hit) {
      this.stats.poolHits++;
      return { key, buf: hit, cap };
    }
    this.stats.buffersCreated++;
    this.stats.largestBufferBytes = Math.max(this.stats.largestBufferBytes, cap);
    return { key, buf: this.device.createBuffer({ size: cap, usage }), cap };
  }

  private acquireExact(usage: number, bytes: number, _label: string): { key: string; buf: GPUBuffer; cap: number } {
    const cap = Math.ceil(bytes / 4) * 4;
    this.stats.buffersCreated++;
    this.stats.largestBufferBytes = Math.max(this.stats.largestBufferBytes, cap);
    return { key: `${usage}:${cap}`, buf: this.device.createBuffer({ size: cap, usage }), cap };
  }

  /** Returns a buffer to the pool once the commands that may use it have been submitted. */
  private release(key: string, buf: GPUBuffer): void {
    if (!this.encoder) {
      this.toPool(key, buf);
      return;
    }
    let list = this.pendingRelease.get(key);
    if (!list) this.pendingRelease.set(key, (list = []));
    list.push(buf);
  }

  private toPool(key: string, buf: GPUBuffer): void {
    let list = this.pool.get(key);
    if (!list) this.pool.set(key, (list = []));
    list.push(buf);
  }

  /** Storage for n f32. `upload`: it will be filled by `queue.writeBuffer`, so it must not be a buffer
   *  that commands in the open encoder still use. */
  private alloc(n: number, label = 'tensor', upload = false, dtype: GpuDType = 'f32'): GpuStorage {
    this.live();
    const bytes = dtype === 'f32' ? n * 4 : Math.ceil(n / 2) * 4;
    const { buf, cap } = this.acquire(STORAGE_USAGE(), Math.max(4, bytes), label, !upload);
    const s = new GpuStorage(n, buf, cap, dtype);
    this.reclaim.register(s, { key: `${STORAGE_USAGE()}:${cap}`, buf }, s);
    if (this.liveSet) {
      const frames = (new Error().stack ?? '')
        .split('\n')
        .slice(2, 6)
        .map((f) => f.trim().replace(/\(.*\/(.*?)\?[^:]*(:\d+):\d+\)/, '($1$2)'));
      this.liveSet.set(s, frames.join(' < '));
    }
    return s;
  }

  /** The open encoder, for commands outside compute passes (copies, clears): ends an open pass first. */
  private enc(): GPUCommandEncoder {
    this.endPass();
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    return this.encoder;
  }

  private endPass(): void {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
  }

  /** Submits pending work; freed buffers become reusable afterwards. */
  flush(): void {
    if (!this.encoder) return;
    this.endPass();
    const prof = this.prof;
    let profRead: { buf: GPUBuffer; labels: string[] } | null = null;
    if (prof && prof.labels.length > 0) {
      const n = prof.labels.length * 2;
      const U = globalThis.GPUBufferUsage;
      const resolve = this.device.createBuffer({ size: n * 8, usage: U.QUERY_RESOLVE | U.COPY_SRC });
      const buf = this.device.createBuffer({ size: n * 8, usage: U.MAP_READ | U.COPY_DST });
      this.encoder.resolveQuerySet(prof.qs, 0, n, resolve, 0);
      this.encoder.copyBufferToBuffer(resolve, 0, buf, 0, n * 8);
      profRead = { buf, labels: prof.labels };
      prof.labels = [];
      void this.device.queue.onSubmittedWorkDone().then(() => resolve.destroy());
    }
    this.device.queue.submit([this.encoder.finish()]);
    if (prof && profRead) {
      const { buf, labels } = profRead;
      prof.pending.push(
        buf.mapAsync(GPUMapMode.READ).then(() => {
          const t = new BigUint64Array(buf.getMappedRange());
          labels.forEach((l, i) => {
            const e = prof.totals.get(l) ?? { ns: 0, count: 0 };
            e.ns += Number(t[2 * i + 1]! - t[2 * i]!);
            e.count++;
            prof.totals.set(l, e);
          });
          buf.destroy();
        }),
      );
    }
    this.encoder = null;
    this.dispatches = 0;
    this.stats.submits++;
    for (const [key, list] of this.pendingRelease) for (const buf of list) this.toPool(key, buf);
    this.pendingRelease.clear();
  }

  /** Resolves when everything submitted so far has finished on the GPU. */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
  }

  /** GPU time per kernel label since the last reset (profile mode only), largest first. */
  async profileReport(reset = true): Promise<{ label: string; ms: number; count: number }[]> {
    if (!this.prof) return [];
    this.flush();
    await Promise.all(this.prof.pending);
    this.prof.pending = [];
    const rows = [...this.prof.totals].map(([label, e]) => ({ label, ms: e.ns / 1e6, count: e.count }));
    if (reset) this.prof.totals.clear();
    return rows.sort((a, b) => b.ms - a.ms);
  }

  /** With `countDispatches`: dispatches per kernel name since the last call, most frequent first. */
  takeDispatchCounts(): { kernel: string; count: number }[] {
    const rows = [...(this.dispatchLabels ?? [])].map(([kernel, count]) => ({ kernel, count }));
    this.dispatchLabels?.clear();
    return rows.sort((a, b) => b.count - a.count);
  }

  /** With `trackLive`: live storages grouped by allocation site, most frequent first. */
  liveStorages(): { site: string; count: number }[] {
    const m = new Map<string, number>();
    for (const site of this.liveSet?.values() ?? []) m.set(site, (m.get(site) ?? 0) + 1);
    return [...m].map(([site, count]) => ({ site, count })).sort((a, b) => b.count - a.count);
  }

  /** Destroys pooled (unused) buffers, e.g. after a large one-off job. */
  trimPool(): void {
    for (const list of this.pool.values()) for (const b of list) b.destroy();
    this.pool.clear();
  }

  private pipeline(src: string): GPUComputePipeline {
    let p = this.pipelines.get(src);
    if (!p) {
      const module = this.device.createShaderModule({ code: src });
      p = this.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
      this.pipelines.set(src, p);
      this.stats.pipelinesCompiled++;
    }
    return p;
  }

  /** Packs a kernel's uniforms by name into a pooled uniform buffer (released with the batch). */
  private uniform<U extends string>(k: Kernel<string, U>, values: Record<U, number>): { key: string; buf: GPUBuffer } {
    const ab = k.pack(values);
    const { key, buf } = this.acquire(UNIFORM_USAGE(), ab.byteLength, 'uniform');
    this.device.queue.writeBuffer(buf, 0, ab);
    return { key, buf };
  }

  /** Host int32 data (ids, targets) uploaded into a scratch storage buffer released after this batch. */
  private uploadInts(a: Int32Array, label: string): { key: string; buf: GPUBuffer; bytes: number } {
    this.live();
    const bytes = Math.max(4, a.byteLength);
    this.checkBinding(bytes, label);
    const { key, buf } = this.acquire(STORAGE_USAGE(), bytes, label);
    if (a.length > 0) this.device.queue.writeBuffer(buf, 0, a.buffer, a.byteOffset, a.byteLength);
    return { key, buf, bytes };
  }

  private checkBinding(bytes: number, label: string): void {
    const lim = this.device.limits.maxStorageBufferBindingSize;
    if (bytes > lim) {
      throw new GpuLimitError(
        `${label}: ${bytes} bytes (${bytes / 4} elements) exceeds this device's maxStorageBufferBindingSize ` +
          `of ${lim} bytes; split the tensor`,
      );
    }
  }

  private entry(b: Binding, i: number, label: string): GPUBindGroupEntry {
    if (b instanceof GpuStorage) {
      const size = Math.max(4, b.bytes);
      this.checkBinding(size, label);
      return { binding: i, resource: { buffer: b.buffer, offset: 0, size } };
    }
    if ('offset' in b) return { binding: i, resource: b };
    return { binding: i, resource: { buffer: b } };
  }

  /** Encodes one dispatch; the uniform buffer (last binding) is released with the batch. */
  private run<B extends string, U extends string>(
    k: Kernel<B, U>,
    bind: Record<B, Binding>,
    uniforms: Record<U, number>,
    groups: [number, number, number],
    label: string = k.name,
  ): void {
    this.live();
    const uni = this.uniform(k, uniforms);
    const maxG = this.device.limits.maxComputeWorkgroupsPerDimension;
    if (groups[0] > maxG || groups[1] > maxG || groups[2] > maxG) {
      throw new GpuLimitError(`${label}: dispatch ${groups.join('x')} exceeds maxComputeWorkgroupsPerDimension ${maxG}`);
    }
    if (groups[0] === 0 || groups[1] === 0 || groups[2] === 0) {
      this.release(uni.key, uni.buf);
      return;
    }
    const pipe = this.pipeline(k.src);
    const entries = k.bindings.map((name, i) => this.entry(bind[name], i, `${label} ${name}`));
    entries.push({ binding: k.bindings.length, resource: { buffer: uni.buf } });
    const bg = this.device.createBindGroup({ layout: pipe.getBindGroupLayout(0), entries });
    const prof = this.prof;
    let pass = this.pass;
    if (prof) {
      // Timestamps are per pass: one pass per dispatch while profiling.
      pass = this.enc().beginComputePass({
        timestampWrites: {
          querySet: prof.qs,
          beginningOfPassWriteIndex: 2 * prof.labels.length,
          endOfPassWriteIndex: 2 * prof.labels.length + 1,
        },
      });
      prof.labels.push(label);
    } else if (!pass) {
      pass = this.pass = this.enc().beginComputePass();
    }
    pass.setPipeline(pipe);
    pass.setBindGroup(0, bg);
    pass.dispatchWorkgroups(groups[0], groups[1], groups[2]);
    if (prof) pass.end();
    this.release(uni.key, uni.buf);
    this.stats.dispatches++;
    this.dispatchLabels?.set(k.name, (this.dispatchLabels.get(k.name) ?? 0) + 1);
    if (++this.dispatches >= this.batchDispatches) this.flush();
  }

  /** 2-D grid covering `count` workgroups (x capped by the per-dimension limit). */
  private grid(count: number): [number, number, number] {
    const maxG = this.device.limits.maxComputeWorkgroupsPerDimension;
    if (count <= maxG) return [count, 1, 1];
    return [maxG, Math.ceil(count / maxG), 1];
  }

  private grid1(n: number): [number, number, number] {
    return this.grid(Math.ceil(n / K.WG1));
  }

  // ---------------------------------------------------------------- memory

  zeros(n: number): Storage {
    const s = this.alloc(n);
    this.enc().clearBuffer(s.buffer, 0, s.capacity);
    return s;
  }

  fromArray(a: ArrayLike<number>): Storage {
    const s = this.alloc(a.length, 'fromArray', true);
    const f = a instanceof Float32Array ? a : Float32Array.from(a);
    if (f.length > 0) this.device.queue.writeBuffer(s.buffer, 0, f.buffer, f.byteOffset, f.byteLength);
    return s;
  }

  async read(x: Storage): Promise<FloatArray> {
    const s = this.s(x, 'read', true);
    this.live();
    const bytes = s.bytes;
    if (bytes === 0) return new Float32Array(0);
    const { key, buf } = this.acquire(READ_USAGE(), bytes, 'read staging');
    this.enc().copyBufferToBuffer(s.buffer, 0, buf, 0, bytes);
    this.flush();
    try {
      await buf.mapAsync(GPUMapMode.READ, 0, bytes);
    } catch (e) {
      this.live();
      throw e;
    }
    const raw = buf.getMappedRange(0, bytes).slice(0);
    buf.unmap();
    this.toPool(key, buf);
    if (s.dtype === 'f32') return new Float32Array(raw);
    const h = new Uint16Array(raw);
    const out = new Float32Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = halfToFloat(h[i]!);
    return out;
  }

  free(x: Storage): void {
    const s = this.s(x, 'free', true);
    s.freed = true;
    this.reclaim.unregister(s);
    this.liveSet?.delete(s);
    if (this.lostInfo) return;
    this.release(`${STORAGE_USAGE()}:${s.capacity}`, s.buffer);
  }

  copy(src: Storage, srcOff: number, dst: Storage, dstOff: number, n: number): void {
    const a = this.s(src, 'copy src');
    const b = this.s(dst, 'copy dst');
    if (srcOff < 0 || dstOff < 0 || srcOff + n > a.length || dstOff + n > b.length) {
      throw new Error(`copy: range out of bounds (src ${a.length}@${srcOff}, dst ${b.length}@${dstOff}, n ${n})`);
    }
    if (n === 0) return;
    this.live();
    if (a.buffer === b.buffer) {
      // copyBufferToBuffer rejects same-buffer copies; go through a scratch buffer (handles overlap).
      const tmp = this.alloc(n);
      this.enc().copyBufferToBuffer(a.buffer, srcOff * 4, tmp.buffer, 0, n * 4);
      this.enc().copyBufferToBuffer(tmp.buffer, 0, b.buffer, dstOff * 4, n * 4);
      this.free(tmp);
      return;
    }
    this.enc().copyBufferToBuffer(a.buffer, srcOff * 4, b.buffer, dstOff * 4, n * 4);
  }

  sliceCols(x: Storage, rows: number, cols: number, colOff: number, width: number): Storage {
    const a = this.s(x, 'sliceCols');
    this.checkLen('sliceCols', a, rows * cols);
    if (colOff < 0 || colOff + width > cols) throw new Error(`sliceCols: columns [${colOff}, ${colOff + width}) outside ${cols}`);
    const out = this.alloc(rows * width);
    const n = rows * width;
    this.run(K.colsKernel(false), { S: a, D: out }, { n, cols, colOff, width }, this.grid1(n), 'sliceCols');
    return out;
  }

  addIntoCols(dst: Storage, src: Storage, rows: number, cols: number, colOff: number, width: number): void {
    const d = this.s(dst, 'addIntoCols dst');
    const a = this.s(src, 'addIntoCols src');
    this.checkLen('addIntoCols dst', d, rows * cols);
    this.checkLen('addIntoCols src', a, rows * width);
    const n = rows * width;
    this.run(K.colsKernel(true), { S: a, D: d }, { n, cols, colOff, width }, this.grid1(n), 'addIntoCols');
  }

  // ---------------------------------------------------------------- elementwise

  private binary(op: K.BinaryOp, a: Storage, b: Storage): Storage {
    const x = this.s(a, op);
    const y = this.s(b, op);
    if (x.length !== y.length) throw new Error(`${op}: lengths differ (${x.length} vs ${y.length})`);
    const out = this.alloc(x.length);
    this.run(K.binaryKernel(op), { A: x, B: y, O: out }, { n: x.length }, this.grid1(x.length), op);
    return out;
  }

  add(a: Storage, b: Storage): Storage {
    return this.binary('add', a, b);
  }

  sub(a: Storage, b: Storage): Storage {
    return this.binary('sub', a, b);
  }

  mul(a: Storage, b: Storage): Storage {
    return this.binary('mul', a, b);
  }

  scale(a: Storage, s: number): Storage {
    const x = this.s(a, 'scale');
    const out = this.alloc(x.length);
    this.run(K.scaleKernel, { A: x, O: out }, { n: x.length, s }, this.grid1(x.length), 'scale');
    return out;
  }

  axpy(dst: Storage, src: Storage, alpha: number): void {
    const d = this.s(dst, 'axpy dst');
    const x = this.s(src, 'axpy src');
    if (d.length !== x.length) throw new Error(`axpy: lengths differ (${d.length} vs ${x.length})`);
    if (d.buffer === x.buffer) {
      // dst += alpha * dst: a read-only and a writable binding of one buffer is not allowed.
      const tmp = this.scale(d, 1 + alpha);
      this.copy(tmp, 0, d, 0, d.length);
      this.free(tmp);
      return;
    }
    this.run(K.axpyKernel, { S: x, D: d }, { n: d.length, alpha }, this.grid1(d.length), 'axpy');
  }

  addBias(x: Storage, bias: Storage, rows: number, cols: number): Storage {
    const a = this.s(x, 'addBias x');
    const b = this.s(bias, 'addBias bias');
    this.checkLen('addBias x', a, rows * cols);
    this.checkLen('addBias bias', b, cols);
    const n = rows * cols;
    const out = this.alloc(n);
    this.run(K.addBiasKernel, { X: a, Bias: b, O: out }, { n, cols }, this.grid1(n), 'addBias');
    return out;
  }

  sumRows(x: Storage, rows: number, cols: number): Storage {
    const a = this.s(x, 'sumRows');
    this.checkLen('sumRows', a, rows * cols);
    const out = this.alloc(cols);
    this.run(K.sumRowsKernel, { X: a, O: out }, { rows, cols }, [Math.ceil(cols / 16), 1, 1], 'sumRows');
    return out;
  }

  sumSquares(x: Storage): Storage {
    const a = this.s(x, 'sumSquares');
    const out = this.alloc(1);
    this.run(K.sumSquaresKernel, { X: a, O: out }, { n: a.length }, [1, 1, 1], 'sumSquares');
    return out;
  }

  activation(x: Storage, kind: Activation): Storage {
    const a = this.s(x, 'activation');
    const out = this.alloc(a.length);
    this.run(K.activationKernel(kind), { X: a, O: out }, { n: a.length }, this.grid1(a.length), 'activation');
    return out;
  }

  activationBackward(dy: Storage, x: Storage, kind: Activation): Storage {
    const g = this.s(dy, 'activationBackward dy');
    const a = this.s(x, 'activationBackward x');
    if (g.length !== a.length) throw new Error(`activationBackward: lengths differ (${g.length} vs ${a.length})`);
    const out = this.alloc(a.length);
    this.run(K.activationBackwardKernel(kind), { DY: g, X: a, O: out }, { n: a.length }, this.grid1(a.length), 'activationBackward');
    return out;
  }

  gatedActivation(gate: Storage, up: Storage, kind: Activation): Storage {
    const g = this.s(gate, 'gatedActivation gate');
    const u = this.s(up, 'gatedActivation up');
    if (g.length !== u.length) throw new Error(`gatedActivation: lengths differ (${g.length} vs ${u.length})`);
    const out = this.alloc(g.length);
    this.run(K.gatedActivationKernel(kind), { G: g, Up: u, O: out }, { n: g.length }, this.grid1(g.length));
    return out;
  }

  gatedActivationBackward(dy: Storage, gate: Storage, up: Storage, kind: Activation): { dgate: Storage; dup: Storage } {
    const d = this.s(dy, 'gatedActivationBackward dy');
    const g = this.s(gate, 'gatedActivationBackward gate');
    const u = this.s(up, 'gatedActivationBackward up');
    if (d.length !== g.length || u.length !== g.length) {
      throw new Error(`gatedActivationBackward: lengths differ (dy ${d.length}, gate ${g.length}, up ${u.length})`);
    }
    const dgate = this.alloc(g.length);
    const dup = this.alloc(g.length);
    this.run(K.gatedActivationBackwardKernel(kind), { DY: d, G: g, Up: u, DG: dgate, DU: dup }, { n: g.length }, this.grid1(g.length));
    return { dgate, dup };
  }

  // ---------------------------------------------------------------- matmul

  matmul(a: Storage, b: Storage, p: MatmulParams): Storage {
    return this.matmulWith(a, b, p, { subgroups: this.info.uses.subgroupMatmul });
  }

  /**
   * matmul with an explicit kernel choice (tests and benchmarks compare the paths). A and B may be f16
   * storages (`toF16`, `fromArrayF16`); products accumulate in f32 and C is f32.
   */
  matmulWith(a: Storage, b: Storage, p: MatmulParams, v: { subgroups: boolean; math?: 'f32' | 'f16' | 'f16-emulated' }): Storage {
    const { batch, m, n, k } = p;
    const transA = p.transA ?? false;
    const transB = p.transB ?? false;
    const aBatched = p.aBatched ?? true;
    const bBatched = p.bBatched ?? true;
    const A = this.s(a, 'matmul A', true);
    const B = this.s(b, 'matmul B', true);
    if (v.subgroups && !this.info.subgroups) throw new Error('matmul: the subgroup kernel needs the device feature subgroups');
    if (v.math === 'f16' && !this.info.shaderF16) throw new Error('matmul: f16 math needs the device feature shader-f16');
    this.checkLen('matmul A', A, (aBatched ? batch : 1) * m * k);
    this.checkLen('matmul B', B, (bBatched ? batch : 1) * k * n);
    const C = this.alloc(batch * m * n, 'matmul C');
    if (k === 0) {
      this.enc().clearBuffer(C.buffer, 0, C.capacity);
      return C;
    }
    const f16 = this.info.uses.f16Operands === 'native' ? 'f16' : 'f16p';
    const opts = {
      a: A.dtype === 'f16' ? f16 : 'f32',
      b: B.dtype === 'f16' ? f16 : 'f32',
      subgroups: v.subgroups,
      math: v.math ?? 'f32',
    } as const;
    const tag =
      `${opts.a === 'f32' ? '' : ` A:${opts.a}`}${opts.b === 'f32' ? '' : ` B:${opts.b}`}${v.subgroups ? ' sg' : ''}` +
      `${opts.math === 'f32' ? '' : ` math:${opts.math}`}`;
    // A shared weight times untransposed activations is one tall product: fewer, fuller workgroups.
    if (!bBatched && aBatched && !transA && batch > 1) {
      const u = { M: batch * m, N: n, K: k, strideA: 0, strideB: 0, strideC: 0, z0: 0 };
      this.run(
        K.matmulKernel(false, transB, opts),
        { A, B, C },
        u,
        [Math.ceil(n / K.MM_TILE_N), Math.ceil((batch * m) / K.MM_TILE_M), 1],
        `matmul ${batch * m}x${n}x${k}${transB ? ' tB' : ''}${tag}`,
      );
      return C;
    }
    // More batch entries than one grid dimension allows go in several dispatches (z0 = first entry).
    const maxZ = Math.min(this.device.limits.maxComputeWorkgroupsPerDimension, this.splitDispatchZ ?? Infinity);
    for (let z0 = 0; z0 < batch; z0 += maxZ) {
      const u = { M: m, N: n, K: k, strideA: aBatched ? m * k : 0, strideB: bBatched ? k * n : 0, strideC: m * n, z0 };
      this.run(
        K.matmulKernel(transA, transB, opts),
        { A, B, C },
        u,
        [Math.ceil(n / K.MM_TILE_N), Math.ceil(m / K.MM_TILE_M), Math.min(maxZ, batch - z0)],
        `matmul ${batch > 1 ? `${batch}x` : ''}${m}x${n}x${k}${transA ? ' tA' : ''}${transB ? ' tB' : ''}${tag}`,
      );
    }
    return C;
  }

  // ---------------------------------------------------------------- f16 storage

  /** An f16 copy of an f32 storage (round to nearest even on the GPU; 2 bytes per element). */
  toF16(x: Storage): Storage {
    const X = this.s(x, 'toF16');
    const out = this.alloc(X.length, 'toF16', false, 'f16');
    const words = Math.ceil(X.length / 2);
    this.run(K.packF16Kernel, { X, O: out }, { n: words, len: X.length }, this.grid1(words), 'toF16');
    return out;
  }

  /** Uploads host data as f16 (rounded to nearest even on the host). */
  fromArrayF16(a: ArrayLike<number>): Storage {
    const s = this.alloc(a.length, 'fromArrayF16', true, 'f16');
    const h = new Uint16Array(Math.ceil(a.length / 2) * 2);
    for (let i = 0; i < a.length; i++) h[i] = floatToHalf(a[i]!);
    if (a.length > 0) this.device.queue.writeBuffer(s.buffer, 0, h.buffer, 0, h.byteLength);
    return s;
  }

  // ---------------------------------------------------------------- embeddings

  gather(table: Storage, ids: Int32Array, dim: number): Storage {
    const t = this.s(table, 'gather table');
    const vocab = t.length / dim;
    if (!Number.isInteger(vocab)) throw new Error(`gather: table of ${t.length} is not a multiple of dim ${dim}`);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (id < 0 || id >= vocab) throw new Error(`gather: id ${id} at ${i} outside vocabulary of ${vocab}`);
    }
    const out = this.alloc(ids.length * dim);
    const n = ids.length * dim;
    const idb = this.uploadInts(ids, 'gather ids');
    // A table larger than one binding (e.g. a big vocabulary on a device with small bindings) is bound in
    // row chunks whose offsets respect minStorageBufferOffsetAlignment.
    const lim = Math.min(this.device.limits.maxStorageBufferBindingSize, this.splitBindingBytes ?? Infinity);
    const align = this.device.limits.minStorageBufferOffsetAlignment;
    const rowBytes = dim * 4;
    if (t.length * 4 <= lim) {
      this.run(K.gatherKernel, { T: t, Ids: idb.buf, O: out }, { n, dim, rowBase: 0, rowsBound: vocab }, this.grid1(n), 'gather');
    } else {
      const rowAlign = align / gcd(rowBytes, align);
      let chunkRows = Math.floor(lim / rowBytes);
      chunkRows -= chunkRows % rowAlign;
      if (chunkRows <= 0) {
        throw new GpuLimitError(
          `gather: table of ${t.length} f32 needs chunks of ${rowAlign} rows (${rowAlign * rowBytes} bytes, for ` +
            `${align}-byte offset alignment), above the binding limit of ${lim} bytes`,
        );
      }
      for (let r0 = 0; r0 < vocab; r0 += chunkRows) {
        const rowsHere = Math.min(chunkRows, vocab - r0);
        const slice = { buffer: t.buffer, offset: r0 * rowBytes, size: rowsHere * rowBytes };
        this.run(
          K.gatherKernel,
          { T: slice, Ids: idb.buf, O: out },
          { n, dim, rowBase: r0, rowsBound: rowsHere },
          this.grid1(n),
          'gather chunk',
        );
      }
    }
    this.release(idb.key, idb.buf);
    return out;
  }

  scatterAdd(dy: Storage, ids: Int32Array, vocab: number, dim: number): Storage {
    const g = this.s(dy, 'scatterAdd dy');
    this.checkLen('scatterAdd dy', g, ids.length * dim);
    // Group positions by id on the host (ids are host data anyway): CSR over the distinct ids.
    const byId = new Map<number, number[]>();
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (id < 0 || id >= vocab) throw new Error(`scatterAdd: id ${id} at ${i} outside vocabulary of ${vocab}`);
      let l = byId.get(id);
      if (!l) byId.set(id, (l = []));
      l.push(i);
    }
    const rows = new Int32Array(byId.size);
    const starts = new Int32Array(byId.size + 1);
    const pos = new Int32Array(ids.length);
    let gi = 0;
    let p = 0;
    for (const [id, list] of byId) {
      rows[gi] = id;
      starts[gi] = p;
      for (const i of list) pos[p++] = i;
      gi++;
    }
    starts[gi] = p;
    const out = this.zeros(vocab * dim) as GpuStorage;
    const n = byId.size * dim;
    if (n > 0) {
      const rb = this.uploadInts(rows, 'scatterAdd rows');
      const sb = this.uploadInts(starts, 'scatterAdd starts');
      const pb = this.uploadInts(pos, 'scatterAdd positions');
      this.run(K.scatterAddKernel, { DY: g, Rows: rb.buf, Starts: sb.buf, Pos: pb.buf, O: out }, { n, dim }, this.grid1(n), 'scatterAdd');
      for (const x of [rb, sb, pb]) this.release(x.key, x.buf);
    }
    return out;
  }

  // ---------------------------------------------------------------- norms

  layerNorm(
    x: Storage,
    w: Storage,
    b: Storage | null,
    rows: number,
    dim: number,
    eps: number,
  ): { y: Storage; mean: Storage; rstd: Storage } {
    const X = this.s(x, 'layerNorm x');
    const W = this.s(w, 'layerNorm w');
    this.checkLen('layerNorm x', X, rows * dim);
    this.checkLen('layerNorm w', W, dim);
    const Bv = b ? this.s(b, 'layerNorm b') : null;
    if (Bv) this.checkLen('layerNorm b', Bv, dim);
    const y = this.alloc(rows * dim);
    const mean = this.alloc(rows);
    const rstd = this.alloc(rows);
    // Without a bias the weight is bound again in its place (read-only aliasing is allowed).
    this.run(
      K.layerNormKernel(Bv !== null),
      { X, W, Bb: Bv ?? W, Y: y, Mean: mean, Rstd: rstd },
      { rows, dim, eps },
      this.grid(rows),
      'layerNorm',
    );
    return { y, mean, rstd };
  }

  layerNormBackward(
    dy: Storage,
    x: Storage,
    w: Storage,
    mean: Storage,
    rstd: Storage,
    rows: number,
    dim: number,
  ): { dx: Storage; dw: Storage; db: Storage } {
    const G = this.s(dy, 'layerNormBackward dy');
    const X = this.s(x, 'layerNormBackward x');
    const W = this.s(w, 'layerNormBackward w');
    const M = this.s(mean, 'layerNormBackward mean');
    const R = this.s(rstd, 'layerNormBackward rstd');
    this.checkLen('layerNormBackward dy', G, rows * dim);
    this.checkLen('layerNormBackward x', X, rows * dim);
    const dx = this.alloc(rows * dim);
    const dw = this.alloc(dim);
    const db = this.alloc(dim);
    this.run(K.layerNormBackwardKernel, { DY: G, X, W, Mean: M, Rstd: R, DX: dx }, { rows, dim }, this.grid(rows), 'layerNormBackward');
    this.run(
      K.layerNormDwKernel,
      { DY: G, X, Mean: M, Rstd: R, O: dw, O2: db },
      { rows, cols: dim },
      [Math.ceil(dim / 16), 1, 1],
      'layerNormBackward dw',
    );
    return { dx, dw, db };
  }

  rmsNorm(x: Storage, w: Storage, rows: number, dim: number, eps: number): { y: Storage; rstd: Storage } {
    const X = this.s(x, 'rmsNorm x');
    const W = this.s(w, 'rmsNorm w');
    this.checkLen('rmsNorm x', X, rows * dim);
    this.checkLen('rmsNorm w', W, dim);
    const y = this.alloc(rows * dim);
    const rstd = this.alloc(rows);
    this.run(K.rmsNormKernel, { X, W, Y: y, Rstd: rstd }, { rows, dim, eps }, this.grid(rows), 'rmsNorm');
    return { y, rstd };
  }

  rmsNormBackward(dy: Storage, x: Storage, w: Storage, rstd: Storage, rows: number, dim: number): { dx: Storage; dw: Storage } {
    const G = this.s(dy, 'rmsNormBackward dy');
    const X = this.s(x, 'rmsNormBackward x');
    const W = this.s(w, 'rmsNormBackward w');
    const R = this.s(rstd, 'rmsNormBackward rstd');
    this.checkLen('rmsNormBackward dy', G, rows * dim);
    this.checkLen('rmsNormBackward x', X, rows * dim);
    const dx = this.alloc(rows * dim);
    const dw = this.alloc(dim);
    this.run(K.rmsNormBackwardKernel, { DY: G, X, W, Rstd: R, DX: dx }, { rows, dim }, this.grid(rows), 'rmsNormBackward');
    this.run(K.rmsNormDwKernel, { DY: G, X, Rstd: R, O: dw }, { rows, cols: dim }, [Math.ceil(dim / 16), 1, 1], 'rmsNormBackward dw');
    return { dx, dw };
  }

  // ---------------------------------------------------------------- attention

  private attnUniform(p: AttentionParams, rows: number) {
    if (p.Hkv <= 0 || p.H % p.Hkv !== 0) throw new Error(`attention: H=${p.H} is not a multiple of Hkv=${p.Hkv}`);
    if (p.D > K.ATTN_MAX_D) throw new Error(`attention: head dim ${p.D} exceeds the kernel's maximum ${K.ATTN_MAX_D}`);
    return { B: p.B, T: p.T, H: p.H, Hkv: p.Hkv, D: p.D, causal: p.causal ? 1 : 0, rows, scale: p.scale };
  }

  attention(q: Storage, k: Storage, v: Storage, p: AttentionParams): { out: Storage; lse: Storage } {
    const { B, T, H, Hkv, D } = p;
    const Q = this.s(q, 'attention q');
    const Kk = this.s(k, 'attention k');
    const V = this.s(v, 'attention v');
    this.checkLen('attention q', Q, B * T * H * D);
    this.checkLen('attention k', Kk, B * T * Hkv * D);
    this.checkLen('attention v', V, B * T * Hkv * D);
    const rows = B * H * T;
    const u = this.attnUniform(p, rows);
    const out = this.alloc(B * T * H * D);
    const lse = this.alloc(rows);
    if (D <= K.ATTN_TILED_MAX_D) {
      const blocks = B * H * Math.ceil(T / K.ATTN_QB);
      this.run(K.attentionFwdTiledKernel, { Q, K: Kk, V, O: out, Lse: lse }, u, this.grid(blocks), 'attention');
    } else {
      this.run(K.attentionFwdKernel, { Q, K: Kk, V, O: out, Lse: lse }, u, this.grid(rows), 'attention (row kernel, D > 128)');
    }
    return { out, lse };
  }

  attentionBackward(
    dout: Storage,
    q: Storage,
    k: Storage,
    v: Storage,
    out: Storage,
    lse: Storage,
    p: AttentionParams,
  ): { dq: Storage; dk: Storage; dv: Storage } {
    const { B, T, H, Hkv, D } = p;
    const dO = this.s(dout, 'attentionBackward dout');
    const Q = this.s(q, 'attentionBackward q');
    const Kk = this.s(k, 'attentionBackward k');
    const V = this.s(v, 'attentionBackward v');
    const O = this.s(out, 'attentionBackward out');
    const L = this.s(lse, 'attentionBackward lse');
    this.checkLen('attentionBackward dout', dO, B * T * H * D);
    this.checkLen('attentionBackward lse', L, B * H * T);
    const rows = B * H * T;
    const delta = this.alloc(rows);
    const u = this.attnUniform(p, rows);
    this.run(K.attentionDeltaKernel, { DO: dO, O, Delta: delta }, u, this.grid1(rows), 'attention delta');
    const io = { DO: dO, Q, K: Kk, V, Lse: L, Delta: delta };
    const dq = this.alloc(B * T * H * D);
    const tiled = D <= K.ATTN_TILED_BWD_MAX_D;
    const tiles = Math.ceil(T / 16);
    if (tiled) {
      this.run(K.attentionDqTiledKernel, { ...io, DQ: dq }, u, this.grid(B * H * tiles), 'attention dq');
    } else {
      this.run(K.attentionDqKernel, { ...io, DQ: dq }, u, this.grid(rows), 'attention dq (row kernel)');
    }
    const dk = this.alloc(B * T * Hkv * D);
    const dv = this.alloc(B * T * Hkv * D);
    if (tiled) {
      this.run(K.attentionDkvTiledKernel, { ...io, DK: dk, DV: dv }, u, this.grid(B * Hkv * tiles), 'attention dkv');
    } else {
      this.run(K.attentionDkvKernel, { ...io, DK: dk, DV: dv }, u, this.grid(B * Hkv * T), 'attention dkv (row kernel)');
    }
    this.free(delta);
    return { dq, dk, dv };
  }

  rope(x: Storage, p: RopeParams, inverse: boolean): Storage {
    const { B, T, H, D, theta } = p;
    const off = p.positionOffset ?? 0;
    if (D % 2 !== 0) throw new Error(`rope: head dim ${D} must be even`);
    const X = this.s(x, 'rope x');
    this.checkLen('rope x', X, B * T * H * D);
    const key = `${T}:${D}:${theta}:${off}`;
    let table = this.ropeTables.get(key);
    if (!table) {
      // cos/sin in f64 on the host, like the CPU reference, so long positions keep their accuracy.
      const half = D / 2;
      const cs = new Float32Array(T * half * 2);
      for (let t = 0; t < T; t++) {
        for (let i = 0; i < half; i++) {
          const ang = (t + off) * Math.pow(theta, (-2 * i) / D);
          cs[(t * half + i) * 2] = Math.cos(ang);
          cs[(t * half + i) * 2 + 1] = Math.sin(ang);
        }
      }
      if (this.ropeTables.size > 32) {
        for (const s of this.ropeTables.values()) this.free(s);
        this.ropeTables.clear();
      }
      table = this.fromArray(cs) as GpuStorage;
      this.ropeTables.set(key, table);
    }
    const n = (B * T * H * D) / 2;
    const out = this.alloc(B * T * H * D);
    this.run(K.ropeKernel, { X, CS: table, Y: out }, { n, T, H, D, sign: inverse ? -1 : 1 }, this.grid1(n), 'rope');
    return out;
  }

  // ---------------------------------------------------------------- loss

  private checkTargets(targets: Int32Array, rows: number, vocab: number, ignoreIndex: number, what: string): void {
    if (targets.length !== rows) throw new Error(`${what}: ${targets.length} targets for ${rows} rows`);
    for (let r = 0; r < rows; r++) {
      const t = targets[r]!;
      if (t !== ignoreIndex && (t < 0 || t >= vocab)) {
        throw new Error(`${what}: target ${t} at row ${r} outside vocabulary of ${vocab}`);
      }
    }
  }

  crossEntropy(logits: Storage, targets: Int32Array, rows: number, vocab: number, ignoreIndex: number): Storage {
    const L = this.s(logits, 'crossEntropy logits');
    this.checkLen('crossEntropy logits', L, rows * vocab);
    this.checkTargets(targets, rows, vocab, ignoreIndex, 'crossEntropy');
    const tb = this.uploadInts(targets, 'crossEntropy targets');
    const out = this.alloc(rows);
    this.run(K.crossEntropyKernel, { L, Tg: tb.buf, O: out }, { rows, vocab, ignore: ignoreIndex }, this.grid(rows), 'crossEntropy');
    this.release(tb.key, tb.buf);
    return out;
  }

  crossEntropyBackward(logits: Storage, targets: Int32Array, dloss: Storage, rows: number, vocab: number, ignoreIndex: number): Storage {
    const L = this.s(logits, 'crossEntropyBackward logits');
    const G = this.s(dloss, 'crossEntropyBackward dloss');
    this.checkLen('crossEntropyBackward logits', L, rows * vocab);
    this.checkLen('crossEntropyBackward dloss', G, rows);
    this.checkTargets(targets, rows, vocab, ignoreIndex, 'crossEntropyBackward');
    const tb = this.uploadInts(targets, 'crossEntropyBackward targets');
    const out = this.alloc(rows * vocab);
    this.run(
      K.crossEntropyBackwardKernel,
      { L, Tg: tb.buf, DL: G, O: out },
      { rows, vocab, ignore: ignoreIndex },
      this.grid(rows),
      'crossEntropyBackward',
    );
    this.release(tb.key, tb.buf);
    return out;
  }

  // ---------------------------------------------------------------- optimizer

  adamw(param: Storage, grad: Storage, m: Storage, v: Storage, p: AdamWParams): void {
    const P = this.s(param, 'adamw param');
    const G = this.s(grad, 'adamw grad');
    const M = this.s(m, 'adamw m');
    const V = this.s(v, 'adamw v');
    if (G.length !== P.length || M.length !== P.length || V.length !== P.length) {
      throw new Error(`adamw: lengths differ (param ${P.length}, grad ${G.length}, m ${M.length}, v ${V.length})`);
    }
    if (!(p.step >= 1)) throw new Error(`adamw: step must be >= 1 (got ${p.step})`);
    const bc1 = 1 - Math.pow(p.beta1, p.step);
    const bc2 = 1 - Math.pow(p.beta2, p.step);
    const u = {
      n: P.length,
      lr: p.lr,
      beta1: p.beta1,
      beta2: p.beta2,
      eps: p.eps,
      wd: p.weightDecay,
      bc1,
      bc2,
      gradScale: p.gradScale,
    };
    this.run(K.adamwKernel, { G, P, M, Vv: V }, u, this.grid1(P.length), 'adamw');
  }
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}
