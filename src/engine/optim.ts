/**
 * AdamW (torch.optim.AdamW semantics), global-norm gradient clipping and learning-rate schedules.
 *
 * The update itself runs in the backend (`Backend.adamw`, in place), so on WebGPU a step never syncs; the only
 * host read per step is the global gradient norm when clipping is on.
 */

import type { Backend, Storage } from './backend';
import type { Tensor } from './tensor';

export interface NamedParam {
  name: string;
  tensor: Tensor;
  /** Whether weight decay applies (callers usually exclude biases and norm weights). */
  decay: boolean;
}

export interface AdamWOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

export interface AdamWStepOptions {
  /** Overrides the learning rate for this step (schedules). */
  lr?: number;
  /** Multiplies every gradient first (clipping scale, accumulation average). */
  gradScale?: number;
}

interface ParamState {
  p: NamedParam;
  m: Storage;
  v: Storage;
  /** Per-parameter step count, as torch keeps it: a parameter without a gradient is not stepped. */
  step: number;
  freed: boolean;
}

export interface AdamWState {
  lr: number;
  params: { name: string; step: number; m: Float32Array | Float64Array; v: Float32Array | Float64Array }[];
}

export class AdamW {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  private readonly states: ParamState[];

  constructor(params: NamedParam[], o: AdamWOptions) {
    this.lr = o.lr;
    this.beta1 = o.beta1 ?? 0.9;
    this.beta2 = o.beta2 ?? 0.999;
    this.eps = o.eps ?? 1e-8;
    this.weightDecay = o.weightDecay ?? 0.01;
    const names = new Set<string>();
    this.states = params.map((p) => {
      if (names.has(p.name)) throw new Error(`AdamW: parameter ${p.name} listed twice`);
      names.add(p.name);
      const be = p.tensor.backend;
      return { p, m: be.zeros(p.tensor.size), v: be.zeros(p.tensor.size), step: 0, freed: false };
    });
  }

  get params(): NamedParam[] {
    return this.states.map((s) => s.p);
  }

  /** Steps taken by the parameter stepped most (0 before the first step). */
  get stepCount(): number {
    return this.states.reduce((a, s) => Math.max(a, s.step), 0);
  }

  step(o: AdamWStepOptions = {}): void {
    const lr = o.lr ?? this.lr;
    const gradScale = o.gradScale ?? 1;
    for (const s of this.states) {
      const t = s.p.tensor;
      if (s.freed) throw new Error(`AdamW.step: optimizer state of ${s.p.name} was freed`);
      if (!t.grad) continue;
      s.step++;
      t.backend.adamw(t.storage, t.grad.storage, s.m, s.v, {
        lr,
        beta1: this.beta1,
        beta2: this.beta2,
        eps: this.eps,
        weightDecay: s.p.decay ? this.weightDecay : 0,
        step: s.step,
        gradScale,
      });
    }
  }

  zeroGrad(): void {
    for (const s of this.states) s.p.tensor.zeroGrad();
  }

  /** Releases the moment buffers (GPU memory is only reclaimed by explicit frees). Idempotent; the
   *  optimizer must not step afterwards. */
  free(): void {
    for (const s of this.states) {
      if (s.freed) continue;
      const be = s.p.tensor.backend;
      be.free(s.m);
      be.free(s.v);
      s.freed = true;
    }
  }

  /** Moments and step counts, for checkpoints (one read per tensor). */
  async exportState(): Promise<AdamWState> {
    const params = [];
    for (const s of this.states) {
      const be = s.p.tensor.backend;
      params.push({ name: s.p.name, step: s.step, m: await be.read(s.m), v: await be.read(s.v) });
    }
    return { lr: this.lr, params };
  }

  importState(st: AdamWState): void {
    const byName = new Map(st.params.map((p) => [p.name, p]));
    for (const s of this.states) {
      const e = byName.get(s.p.name);
      if (!e) throw new Error(`AdamW.importState: no state for parameter ${s.p.name}`);
      if (e.m.length !== s.p.tensor.size || e.v.length !== s.p.tensor.size) {
        throw new Error(`AdamW.importState: ${s.p.name} has ${s.p.tensor.size} elements, state ${e.m.length}`);
      }
      const be = s.p.tensor.backend;
      be.free(s.m);
      be.free(s.v);
      s.m = be.fromArray(e.m);
      s.v = be.fromArray(e.v);
      s.step = e.step;
    }
  }
}

function tensorsOf(params: readonly (Tensor | NamedParam)[]): Tensor[] {
  return params.map((p) => ('tensor' in p ? p.tensor : p));
}

/** sqrt(sum of squared gradient entries) over all parameters that have a gradient: one host read. */
export async function globalGradNorm(params: readonly (Tensor | NamedParam)[]): Promise<number> {
  const ts = tensorsOf(params).filter((t) => t.grad);
  if (ts.length === 0) return 0;
  const be: Backend = ts[0]!.backend;
  let acc: Storage | null = null;
  for (const t of ts) {
    const sq = be.sumSquares(t.grad!.storage);
    if (acc) {
      be.axpy(acc, sq, 1);
      be.free(sq);
    } else {
      acc = sq;
    }
  }
  const v = (await be.read(acc!))[0]!;
  be.free(acc!);
  return Math.sqrt(v);
}

/** torch's clip coefficient: min(1, maxNorm / (norm + 1e-6)). */
export function clipScale(norm: number, maxNorm: number): number {
  const c = maxNorm / (norm + 1e-6);
  return c < 1 ? c : 1;
}

/**
 * Like torch.nn.utils.clip_grad_norm_: scales the gradients in place when their global norm exceeds
 * maxNorm and returns the pre-clip norm. (To save a pass, a trainer can instead call globalGradNorm and
 * hand clipScale(...) to AdamW.step as gradScale.)
 */
export async function clipGradNorm(params: readonly (Tensor | NamedParam)[], maxNorm: number): Promise<number> {
  const norm = await globalGradNorm(params);
  const c = clipScale(norm, maxNorm);
  if (c < 1) {
    for (const t of tensorsOf(params)) {
      if (!t.grad) continue;
      const be = t.backend;
      const scaled = be.scale(t.grad.storage, c);
      be.free(t.grad.storage);
      t.grad.storage = scaled;
    }
  }
  return norm;
}

export type ScheduleKind = 'constant' | 'linear' | 'cosine';

export interface Schedule {
  kind: ScheduleKind;
  /** Peak learning rate. */
  lr: number;
  warmupSteps?: number;
  /** Needed by linear and cosine. */
  totalSteps?: number;
  /** Floor for linear/cosine decay (default 0). */
  minLr?: number;
}

/**
 * Learning rate at 0-based optimizer step `step`, matching Hugging Face's get_{constant,linear,cosine}_
 * schedule_with_warmup: warm-up is lr*step/warmup (so step 0 has lr 0 when warming up); then constant, or
 * decay to minLr at totalSteps (linear), or half a cosine period (cosine).
 */
export function lrAt(step: number, s: Schedule): number {
  const warm = s.warmupSteps ?? 0;
  const minLr = s.minLr ?? 0;
  if (step < warm) return (s.lr * step) / Math.max(1, warm);
  if (s.kind === 'constant') return s.lr;
  if (s.totalSteps === undefined) throw new Error(`lrAt: schedule '${s.kind}' needs totalSteps`);
  const span = Math.max(1, s.totalSteps - warm);
  const progress = Math.min(1, Math.max(0, (step - warm) / span));
  const f = s.kind === 'linear' ? 1 - progress : 0.5 * (1 + Math.cos(Math.PI * progress));
  return minLr + (s.lr - minLr) * f;
}
