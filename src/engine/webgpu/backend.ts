/// <reference types="@webgpu/types" />
/**
 * WebGpuBackend: the Backend contract on WebGPU compute shaders (f32).
 *
 * Execution model: every op encodes one or more dispatches into a shared command encoder and returns at
 * once; the encoder is submitted when `read()` needs data or after `BATCH_DISPATCHES` dispatches, so a
 * whole forward+backward is recorded without a GPU->CPU round trip.
 *
 * Memory: storage comes from a size-bucketed pool. A freed buffer may still be referenced by commands in
 * the not-yet-submitted encoder, while uploads (`queue.writeBuffer`) execute *before* that encoder, so
 * freed buffers go to a pending list and only return to the pool after the encoder is submitted; every
 * later upload or dispatch is then ordered after the work that used them.
 */
import type {
  Activation, AdamWParams, AttentionParams, Backend, DType, FloatArray, MatmulParams, RopeParams, Storage,
} from '../backend';
import * as K from './kernels';

export class DeviceLostError extends Error {
  constructor(public readonly reason: string, message: string) {
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
  /** Record GPU time per kernel label with timestamp queries (when the adapter offers 'timestamp-query'). */
  profile?: boolean;
}

export class GpuStorage implements Storage {
  freed = false;
  constructor(
    readonly length: number,
    readonly buffer: GPUBuffer,
    /** Bytes actually allocated (the pool bucket), >= 4 * length. */
    readonly capacity: number,
  ) {}
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
    isFallbackAdapter: Boolean((ai as { isFallbackAdapter?: boolean }).isFallbackAdapter ??
      (adapter as unknown as { isFallbackAdapter?: boolean }).isFallbackAdapter),
    features: [...adapter.features].map(String).sort(),
    shaderF16: device.features.has('shader-f16'),
    subgroups: device.features.has('subgroups'),
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
  return new WebGpuBackend(device, info, opts);
}

type Binding = GpuStorage | GPUBuffer | { buffer: GPUBuffer; offset: number; size: number };

export class WebGpuBackend implements Backend {
  readonly name = 'webgpu';
  readonly dtype: DType = 'f32';
  private lostInfo: { reason: string; message: string } | null = null;
  private readonly pool = new Map<string, GPUBuffer[]>();
  private pendingRelease: { key: string; buf: GPUBuffer }[] = [];
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
    qs: GPUQuerySet; labels: string[]; totals: Map<string, { ns: number; count: number }>; pending: Promise<void>[];
  } | null = null;
  /** Counters for tests and the UI badge. */
  readonly stats = {
    buffersCreated: 0, poolHits: 0, submits: 0, pipelinesCompiled: 0, dispatches: 0, reclaimedByGc: 0,
  };

  constructor(readonly device: GPUDevice, readonly info: WebGpuInfo, opts: WebGpuBackendOptions = {}) {
    this.batchDispatches = opts.batchDispatches ?? 128;
    this.splitBindingBytes = opts.splitBindingBytes;
    this.splitDispatchZ = opts.splitDispatchZ;
    this.liveSet = opts.trackLive ? new Map() : null;
    if (opts.profile && device.features.has('timestamp-query')) {
      this.prof = {
        qs: device.createQuerySet({ type: 'timestamp', count: 2 * this.batchDispatches }),
        labels: [], totals: new Map(), pending: [],
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

  /** Destroys the device (all storage becomes invalid; `onLost` fires with reason 'destroyed'). */
  destroy(): void {
    this.device.destroy();
  }

  // ---------------------------------------------------------------- plumbing

  private live(): void {
    if (this.lostInfo) throw new DeviceLostError(this.lostInfo.reason, this.lostInfo.message);
  }

  private s(x: Storage, what: string): GpuStorage {
    if (!(x instanceof GpuStorage)) throw new Error(`${what}: storage does not belong to a WebGpuBackend`);
    if (x.freed) throw new Error(`${what}: storage used after free()`);
    return x;
  }

  private checkLen(what: string, x: GpuStorage, want: number): void {
    if (x.length !== want) throw new Error(`${what}: storage has ${x.length} elements, expected ${want}`);
  }

  private acquire(usage: number, bytes: number, label: string): { key: string; buf: GPUBuffer; cap: number } {
    const cap = bucketBytes(bytes);
    if (cap > this.device.limits.maxBufferSize && bytes <= this.device.limits.maxBufferSize) {
      return this.acquireExact(usage, bytes, label);
    }
    if (bytes > this.device.limits.maxBufferSize) {
      throw new GpuLimitError(
        `${label}: ${bytes} bytes (${bytes / 4} f32) exceeds this device's maxBufferSize of ` +
          `${this.device.limits.maxBufferSize} bytes`,
      );
    }
    const key = `${usage}:${cap}`;
    const list = this.pool.get(key);
    const hit = list?.pop();
    if (hit) {
      this.stats.poolHits++;
      return { key, buf: hit, cap };
    }
    this.stats.buffersCreated++;
    return { key, buf: this.device.createBuffer({ size: cap, usage }), cap };
  }

  private acquireExact(usage: number, bytes: number, _label: string): { key: string; buf: GPUBuffer; cap: number } {
    const cap = Math.ceil(bytes / 4) * 4;
    this.stats.buffersCreated++;
    return { key: `${usage}:${cap}`, buf: this.device.createBuffer({ size: cap, usage }), cap };
  }

  /** Returns a buffer to the pool once the commands that may use it have been submitted. */
  private release(key: string, buf: GPUBuffer): void {
    if (this.encoder) this.pendingRelease.push({ key, buf });
    else this.toPool(key, buf);
  }

  private toPool(key: string, buf: GPUBuffer): void {
    let list = this.pool.get(key);
    if (!list) this.pool.set(key, (list = []));
    list.push(buf);
  }

  private alloc(n: number, label = 'tensor'): GpuStorage {
    this.live();
    const { buf, cap } = this.acquire(STORAGE_USAGE(), Math.max(4, n * 4), label);
    const s = new GpuStorage(n, buf, cap);
    this.reclaim.register(s, { key: `${STORAGE_USAGE()}:${cap}`, buf }, s);
    if (this.liveSet) {
      const frames = (new Error().stack ?? '').split('\n').slice(2, 6).map((f) => f.trim().replace(/\(.*\/(.*?)\?[^:]*(:\d+):\d+\)/, '($1$2)'));
      this.liveSet.set(s, frames.join(' < '));
    }
    return s;
  }

  private enc(): GPUCommandEncoder {
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    return this.encoder;
  }

  /** Submits pending work; freed buffers become reusable afterwards. */
  flush(): void {
    if (!this.encoder) return;
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
            e.ns += Number(t[2 * i + 1] - t[2 * i]);
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
    for (const { key, buf } of this.pendingRelease) this.toPool(key, buf);
    this.pendingRelease = [];
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

  /** Uniform block from 32-bit words; `f` marks the indices holding floats (i32 for `i`). */
  private uniform(words: number[], floats: number[] = [], ints: number[] = []): { key: string; buf: GPUBuffer } {
    const n = Math.ceil(words.length / 4) * 4;
    const ab = new ArrayBuffer(n * 4);
    const u32 = new Uint32Array(ab);
    const f32 = new Float32Array(ab);
    const i32 = new Int32Array(ab);
    words.forEach((w, i) => {
      if (floats.includes(i)) f32[i] = w;
      else if (ints.includes(i)) i32[i] = w;
      else u32[i] = w;
    });
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
      const size = Math.max(4, b.length * 4);
      this.checkBinding(size, label);
      return { binding: i, resource: { buffer: b.buffer, offset: 0, size } };
    }
    if ('offset' in b) return { binding: i, resource: b };
    return { binding: i, resource: { buffer: b } };
  }

  /** Encodes one dispatch; the uniform buffer (last binding) is released with the batch. */
  private run(
    src: string, bindings: Binding[], uni: { key: string; buf: GPUBuffer }, groups: [number, number, number],
    label: string,
  ): void {
    this.live();
    const maxG = this.device.limits.maxComputeWorkgroupsPerDimension;
    if (groups[0] > maxG || groups[1] > maxG || groups[2] > maxG) {
      throw new GpuLimitError(`${label}: dispatch ${groups.join('x')} exceeds maxComputeWorkgroupsPerDimension ${maxG}`);
    }
    if (groups[0] === 0 || groups[1] === 0 || groups[2] === 0) {
      this.release(uni.key, uni.buf);
      return;
    }
    const pipe = this.pipeline(src);
    const entries = bindings.map((b, i) => this.entry(b, i, label));
    entries.push({ binding: bindings.length, resource: { buffer: uni.buf } });
    const bg = this.device.createBindGroup({ layout: pipe.getBindGroupLayout(0), entries });
    const prof = this.prof;
    const pass = this.enc().beginComputePass(
      prof
        ? {
            timestampWrites: {
              querySet: prof.qs, beginningOfPassWriteIndex: 2 * prof.labels.length,
              endOfPassWriteIndex: 2 * prof.labels.length + 1,
            },
          }
        : undefined,
    );
    prof?.labels.push(label);
    pass.setPipeline(pipe);
    pass.setBindGroup(0, bg);
    pass.dispatchWorkgroups(groups[0], groups[1], groups[2]);
    pass.end();
    this.release(uni.key, uni.buf);
    this.stats.dispatches++;
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
    const s = this.alloc(a.length);
    const f = a instanceof Float32Array ? a : Float32Array.from(a);
    if (f.length > 0) this.device.queue.writeBuffer(s.buffer, 0, f.buffer, f.byteOffset, f.byteLength);
    return s;
  }

  async read(x: Storage): Promise<FloatArray> {
    const s = this.s(x, 'read');
    this.live();
    const bytes = s.length * 4;
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
    const out = new Float32Array(buf.getMappedRange(0, bytes).slice(0));
    buf.unmap();
    this.toPool(key, buf);
    return out;
  }

  free(x: Storage): void {
    const s = this.s(x, 'free');
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
    this.run(K.colsSrc(false), [a, out], this.uniform([n, cols, colOff, width]), this.grid1(n), 'sliceCols');
    return out;
  }

  addIntoCols(dst: Storage, src: Storage, rows: number, cols: number, colOff: number, width: number): void {
    const d = this.s(dst, 'addIntoCols dst');
    const a = this.s(src, 'addIntoCols src');
    this.checkLen('addIntoCols dst', d, rows * cols);
    this.checkLen('addIntoCols src', a, rows * width);
    const n = rows * width;
    this.run(K.colsSrc(true), [a, d], this.uniform([n, cols, colOff, width]), this.grid1(n), 'addIntoCols');
  }

  // ---------------------------------------------------------------- elementwise

  private binary(op: K.BinaryOp, a: Storage, b: Storage): Storage {
    const x = this.s(a, op);
    const y = this.s(b, op);
    if (x.length !== y.length) throw new Error(`${op}: lengths differ (${x.length} vs ${y.length})`);
    const out = this.alloc(x.length);
    this.run(K.binarySrc(op), [x, y, out], this.uniform([x.length]), this.grid1(x.length), op);
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
    this.run(K.scaleSrc, [x, out], this.uniform([x.length, 0, 0, s], [3]), this.grid1(x.length), 'scale');
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
    this.run(K.axpySrc, [x, d], this.uniform([d.length, 0, 0, alpha], [3]), this.grid1(d.length), 'axpy');
  }

  addBias(x: Storage, bias: Storage, rows: number, cols: number): Storage {
    const a = this.s(x, 'addBias x');
    const b = this.s(bias, 'addBias bias');
    this.checkLen('addBias x', a, rows * cols);
    this.checkLen('addBias bias', b, cols);
    const n = rows * cols;
    const out = this.alloc(n);
    this.run(K.addBiasSrc(null), [a, b, out], this.uniform([n, cols]), this.grid1(n), 'addBias');
    return out;
  }

  sumRows(x: Storage, rows: number, cols: number): Storage {
    const a = this.s(x, 'sumRows');
    this.checkLen('sumRows', a, rows * cols);
    const out = this.alloc(cols);
    this.run(K.colReduceSrc(0), [a, out], this.uniform([rows, cols]), [Math.ceil(cols / 16), 1, 1], 'sumRows');
    return out;
  }

  sumSquares(x: Storage): Storage {
    const a = this.s(x, 'sumSquares');
    const out = this.alloc(1);
    this.run(K.sumSquaresSrc, [a, out], this.uniform([a.length]), [1, 1, 1], 'sumSquares');
    return out;
  }

  activation(x: Storage, kind: Activation): Storage {
    const a = this.s(x, 'activation');
    const out = this.alloc(a.length);
    this.run(K.activationSrc(kind), [a, out], this.uniform([a.length]), this.grid1(a.length), 'activation');
    return out;
  }

  activationBackward(dy: Storage, x: Storage, kind: Activation): Storage {
    const g = this.s(dy, 'activationBackward dy');
    const a = this.s(x, 'activationBackward x');
    if (g.length !== a.length) throw new Error(`activationBackward: lengths differ (${g.length} vs ${a.length})`);
    const out = this.alloc(a.length);
    this.run(K.activationBackwardSrc(kind), [g, a, out], this.uniform([a.length]), this.grid1(a.length), 'activationBackward');
    return out;
  }

  // ---------------------------------------------------------------- matmul

  matmul(a: Storage, b: Storage, p: MatmulParams): Storage {
    const { batch, m, n, k } = p;
    const transA = p.transA ?? false;
    const transB = p.transB ?? false;
    const aBatched = p.aBatched ?? true;
    const bBatched = p.bBatched ?? true;
    const A = this.s(a, 'matmul A');
    const B = this.s(b, 'matmul B');
    this.checkLen('matmul A', A, (aBatched ? batch : 1) * m * k);
    this.checkLen('matmul B', B, (bBatched ? batch : 1) * k * n);
    const C = this.alloc(batch * m * n, 'matmul C');
    if (k === 0) {
      this.enc().clearBuffer(C.buffer, 0, C.capacity);
      return C;
    }
    // A shared weight times untransposed activations is one tall product: fewer, fuller workgroups.
    if (!bBatched && aBatched && !transA && batch > 1) {
      const u = this.uniform([batch * m, n, k, 0, 0, 0]);
      this.run(K.matmulSrc(false, transB), [A, B, C], u,
        [Math.ceil(n / K.MM_TILE_N), Math.ceil((batch * m) / K.MM_TILE_M), 1],
        `matmul ${batch * m}x${n}x${k}${transB ? ' tB' : ''}`);
      return C;
    }
    // More batch entries than one grid dimension allows go in several dispatches (z0 = first entry).
    const maxZ = Math.min(this.device.limits.maxComputeWorkgroupsPerDimension, this.splitDispatchZ ?? Infinity);
    for (let z0 = 0; z0 < batch; z0 += maxZ) {
      const u = this.uniform([m, n, k, aBatched ? m * k : 0, bBatched ? k * n : 0, m * n, z0]);
      this.run(K.matmulSrc(transA, transB), [A, B, C], u,
        [Math.ceil(n / K.MM_TILE_N), Math.ceil(m / K.MM_TILE_M), Math.min(maxZ, batch - z0)],
        `matmul ${batch > 1 ? `${batch}x` : ''}${m}x${n}x${k}${transA ? ' tA' : ''}${transB ? ' tB' : ''}`);
    }
    return C;
  }

  // ---------------------------------------------------------------- embeddings

  gather(table: Storage, ids: Int32Array, dim: number): Storage {
    const t = this.s(table, 'gather table');
    const vocab = t.length / dim;
    if (!Number.isInteger(vocab)) throw new Error(`gather: table of ${t.length} is not a multiple of dim ${dim}`);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
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
      this.run(K.gatherSrc, [t, idb.buf, out], this.uniform([n, dim, 0, vocab]), this.grid1(n), 'gather');
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
        this.run(K.gatherSrc, [slice, idb.buf, out], this.uniform([n, dim, r0, rowsHere]), this.grid1(n), 'gather chunk');
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
      const id = ids[i];
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
      this.run(K.scatterAddSrc, [g, rb.buf, sb.buf, pb.buf, out], this.uniform([n, dim]), this.grid1(n), 'scatterAdd');
      for (const x of [rb, sb, pb]) this.release(x.key, x.buf);
    }
    return out;
  }

  // ---------------------------------------------------------------- norms

  layerNorm(
    x: Storage, w: Storage, b: Storage | null, rows: number, dim: number, eps: number,
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
    this.run(K.normFwdSrc(false, Bv !== null), [X, W, Bv ?? W, y, mean, rstd],
      this.uniform([rows, dim, 0, eps], [3]), this.grid(rows), 'layerNorm');
    return { y, mean, rstd };
  }

  layerNormBackward(
    dy: Storage, x: Storage, w: Storage, mean: Storage, rstd: Storage, rows: number, dim: number,
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
    this.run(K.normBwdSrc(false), [G, X, W, M, R, dx], this.uniform([rows, dim]), this.grid(rows), 'layerNormBackward');
    this.run(K.colReduceSrc(1), [G, X, M, R, dw, db], this.uniform([rows, dim]), [Math.ceil(dim / 16), 1, 1],
      'layerNormBackward dw');
    return { dx, dw, db };
  }

  rmsNorm(x: Storage, w: Storage, rows: number, dim: number, eps: number): { y: Storage; rstd: Storage } {
    const X = this.s(x, 'rmsNorm x');
    const W = this.s(w, 'rmsNorm w');
    this.checkLen('rmsNorm x', X, rows * dim);
    this.checkLen('rmsNorm w', W, dim);
    const y = this.alloc(rows * dim);
    const rstd = this.alloc(rows);
    this.run(K.normFwdSrc(true, false), [X, W, y, rstd], this.uniform([rows, dim, 0, eps], [3]), this.grid(rows), 'rmsNorm');
    return { y, rstd };
  }

  rmsNormBackward(
    dy: Storage, x: Storage, w: Storage, rstd: Storage, rows: number, dim: number,
  ): { dx: Storage; dw: Storage } {
    const G = this.s(dy, 'rmsNormBackward dy');
    const X = this.s(x, 'rmsNormBackward x');
    const W = this.s(w, 'rmsNormBackward w');
    const R = this.s(rstd, 'rmsNormBackward rstd');
    this.checkLen('rmsNormBackward dy', G, rows * dim);
    this.checkLen('rmsNormBackward x', X, rows * dim);
    const dx = this.alloc(rows * dim);
    const dw = this.alloc(dim);
    this.run(K.normBwdSrc(true), [G, X, W, R, dx], this.uniform([rows, dim]), this.grid(rows), 'rmsNormBackward');
    this.run(K.colReduceSrc(2), [G, X, R, dw], this.uniform([rows, dim]), [Math.ceil(dim / 16), 1, 1], 'rmsNormBackward dw');
    return { dx, dw };
  }

  // ---------------------------------------------------------------- attention

  private attnUniform(p: AttentionParams, rows: number) {
    if (p.Hkv <= 0 || p.H % p.Hkv !== 0) throw new Error(`attention: H=${p.H} is not a multiple of Hkv=${p.Hkv}`);
    if (p.D > K.ATTN_MAX_D) throw new Error(`attention: head dim ${p.D} exceeds the kernel's maximum ${K.ATTN_MAX_D}`);
    return this.uniform([p.B, p.T, p.H, p.Hkv, p.D, p.causal ? 1 : 0, rows, p.scale], [7]);
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
      this.run(K.attentionFwdTiledSrc, [Q, Kk, V, out, lse], u, this.grid(blocks), 'attention');
    } else {
      this.run(K.attentionFwdSrc, [Q, Kk, V, out, lse], u, this.grid(rows), 'attention (row kernel, D > 128)');
    }
    return { out, lse };
  }

  attentionBackward(
    dout: Storage, q: Storage, k: Storage, v: Storage, out: Storage, lse: Storage, p: AttentionParams,
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
    this.run(K.attentionDeltaSrc, [dO, O, delta], this.attnUniform(p, rows), this.grid1(rows), 'attention delta');
    const dq = this.alloc(B * T * H * D);
    const tiled = D <= K.ATTN_TILED_BWD_MAX_D;
    const tiles = Math.ceil(T / 16);
    if (tiled) {
      this.run(K.attentionDqTiledSrc, [dO, Q, Kk, V, L, delta, dq], this.attnUniform(p, rows), this.grid(B * H * tiles), 'attention dq');
    } else {
      this.run(K.attentionDqSrc, [dO, Q, Kk, V, L, delta, dq], this.attnUniform(p, rows), this.grid(rows), 'attention dq (row kernel)');
    }
    const dk = this.alloc(B * T * Hkv * D);
    const dv = this.alloc(B * T * Hkv * D);
    if (tiled) {
      this.run(K.attentionDkvTiledSrc, [dO, Q, Kk, V, L, delta, dk, dv], this.attnUniform(p, rows),
        this.grid(B * Hkv * tiles), 'attention dkv');
    } else {
      this.run(K.attentionDkvSrc, [dO, Q, Kk, V, L, delta, dk, dv], this.attnUniform(p, rows),
        this.grid(B * Hkv * T), 'attention dkv (row kernel)');
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
    this.run(K.ropeSrc, [X, table, out], this.uniform([n, T, H, D, inverse ? -1 : 1], [4]), this.grid1(n), 'rope');
    return out;
  }

  // ---------------------------------------------------------------- loss

  private checkTargets(targets: Int32Array, rows: number, vocab: number, ignoreIndex: number, what: string): void {
    if (targets.length !== rows) throw new Error(`${what}: ${targets.length} targets for ${rows} rows`);
    for (let r = 0; r < rows; r++) {
      const t = targets[r];
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
    this.run(K.crossEntropySrc(false), [L, tb.buf, out], this.uniform([rows, vocab, ignoreIndex], [], [2]),
      this.grid(rows), 'crossEntropy');
    this.release(tb.key, tb.buf);
    return out;
  }

  crossEntropyBackward(
    logits: Storage, targets: Int32Array, dloss: Storage, rows: number, vocab: number, ignoreIndex: number,
  ): Storage {
    const L = this.s(logits, 'crossEntropyBackward logits');
    const G = this.s(dloss, 'crossEntropyBackward dloss');
    this.checkLen('crossEntropyBackward logits', L, rows * vocab);
    this.checkLen('crossEntropyBackward dloss', G, rows);
    this.checkTargets(targets, rows, vocab, ignoreIndex, 'crossEntropyBackward');
    const tb = this.uploadInts(targets, 'crossEntropyBackward targets');
    const out = this.alloc(rows * vocab);
    this.run(K.crossEntropySrc(true), [L, tb.buf, G, out], this.uniform([rows, vocab, ignoreIndex], [], [2]),
      this.grid(rows), 'crossEntropyBackward');
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
    const u = this.uniform(
      [P.length, 0, 0, 0, p.lr, p.beta1, p.beta2, p.eps, p.weightDecay, bc1, bc2, p.gradScale],
      [4, 5, 6, 7, 8, 9, 10, 11],
    );
    this.run(K.adamwSrc, [G, P, M, V], u, this.grid1(P.length), 'adamw');
  }
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}
