/**
 * Tensor and reverse-mode autograd.
 *
 * A Tensor is a shape over a backend Storage. Ops (ops.ts) call `record` with a backward closure when grad
 * mode is on and some input requires grad; the closure maps the output gradient to one gradient per input
 * (or null). `backward(loss)` orders the recorded graph topologically from the loss and runs the closures
 * in reverse, accumulating with `axpy`. Reaching nodes from the loss (rather than replaying a global list)
 * means unrelated graphs built in the same step never interfere, and a graph that is dropped is simply
 * garbage.
 *
 * Gradient ownership: every gradient storage handed to `backward` is owned by exactly one place (the
 * pending-gradient map, or a leaf's `.grad`), so intermediate gradients can be freed as soon as their node
 * has run. Closures may return their input gradient unchanged (pass-through); the engine copies a storage
 * that would otherwise be owned twice.
 */

import type { Backend, FloatArray, Storage } from './backend';
import type { Rng } from './random';

export type BackwardFn = (gradOut: Storage) => (Storage | null)[];

interface Node {
  inputs: Tensor[];
  backward: BackwardFn;
  op: string;
}

let gradEnabled = true;

/** Runs `fn` without recording any graph (evaluation, optimizer updates). Synchronous `fn` only: grad mode
 *  is restored when `fn` returns, so an async function would only be covered until its first await. */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Sets grad mode and returns the previous value (for callers that must span awaits). */
export function setGradEnabled(on: boolean): boolean {
  const prev = gradEnabled;
  gradEnabled = on;
  return prev;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}

export function shapeStr(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

export class Tensor {
  readonly backend: Backend;
  readonly shape: number[];
  storage: Storage;
  requiresGrad: boolean;
  grad: Tensor | null = null;
  /** Optional label (parameter name) used in error messages. */
  name?: string;
  /** @internal creator node; null for leaves and for results computed without grad. */
  node: Node | null = null;
  /** When true, backward stores this non-leaf tensor's gradient in `.grad` (GradOT's support pass needs the
   *  gradients of linear outputs). */
  retainsGrad = false;

  constructor(backend: Backend, shape: readonly number[], storage: Storage, requiresGrad = false) {
    const n = numel(shape);
    if (storage.length !== n) {
      throw new Error(`Tensor: storage has ${storage.length} elements but shape ${shapeStr(shape)} needs ${n}`);
    }
    this.backend = backend;
    this.shape = [...shape];
    this.storage = storage;
    this.requiresGrad = requiresGrad;
  }

  get size(): number {
    return this.storage.length;
  }

  get ndim(): number {
    return this.shape.length;
  }

  /** Whether this tensor was produced by a recorded op (has a creator). */
  get isLeaf(): boolean {
    return this.node === null;
  }

  read(): Promise<FloatArray> {
    return this.backend.read(this.storage);
  }

  /** Reads a single-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new Error(`item: tensor has shape ${shapeStr(this.shape)}, not one element`);
    return (await this.read())[0];
  }

  retainGrad(): this {
    this.retainsGrad = true;
    return this;
  }

  /** A leaf sharing this tensor's storage, cut from the graph. */
  detach(): Tensor {
    return new Tensor(this.backend, this.shape, this.storage, false);
  }

  zeroGrad(): void {
    if (this.grad) {
      this.backend.free(this.grad.storage);
      this.grad = null;
    }
  }

  /** Releases the storage (and the gradient). Using the tensor afterwards is a bug. */
  free(): void {
    this.zeroGrad();
    this.backend.free(this.storage);
    this.node = null;
  }
}

/** Attaches a creator node to `out` when grad mode is on and any input requires grad. Returns `out`. */
export function record(out: Tensor, inputs: Tensor[], backward: BackwardFn, op: string): Tensor {
  if (gradEnabled && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    out.node = { inputs, backward, op };
  }
  return out;
}

export interface BackwardOptions {
  /** Gradient of the (scalar or not) output; default is ones for a single-element loss. */
  grad?: Storage;
  /** Keep the graph so backward can run again (otherwise creator links are dropped). */
  retainGraph?: boolean;
}

/** Runs reverse-mode differentiation from `loss`, accumulating into `.grad` of leaves that require grad. */
export function backward(loss: Tensor, opts: BackwardOptions = {}): void {
  const be = loss.backend;
  if (!loss.requiresGrad) throw new Error('backward: loss does not require grad (no parameter reached it, or noGrad)');
  let seed = opts.grad;
  if (!seed) {
    if (loss.size !== 1) {
      throw new Error(`backward: loss has shape ${shapeStr(loss.shape)}; pass opts.grad for a non-scalar output`);
    }
    seed = be.fromArray([1]);
  } else {
    if (seed.length !== loss.size) throw new Error(`backward: seed has ${seed.length} elements, loss ${loss.size}`);
    // The caller keeps its seed; the engine owns what it frees.
    const own = be.zeros(seed.length);
    be.copy(seed, 0, own, 0, seed.length);
    seed = own;
  }

  // Iterative DFS post-order: deep graphs (many layers) must not overflow the call stack.
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  const stack: [Tensor, number][] = [[loss, 0]];
  visited.add(loss);
  while (stack.length) {
    const top = stack[stack.length - 1];
    const [t, idx] = top;
    const ins = t.node ? t.node.inputs : [];
    if (idx < ins.length) {
      top[1]++;
      const c = ins[idx];
      if (c.requiresGrad && !visited.has(c)) {
        visited.add(c);
        stack.push([c, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }

  const pending = new Map<Tensor, Storage>();
  pending.set(loss, seed);
  const accumulate = (t: Tensor, g: Storage): void => {
    if (g.length !== t.size) {
      throw new Error(`backward: gradient of ${g.length} elements for a tensor of shape ${shapeStr(t.shape)}`);
    }
    if (t.node === null) {
      // Leaf: accumulate into .grad (gradient accumulation across micro-batches works by not zeroing).
      if (t.grad) {
        be.axpy(t.grad.storage, g, 1);
        be.free(g);
      } else {
        t.grad = new Tensor(be, t.shape, g, false);
      }
      return;
    }
    const prev = pending.get(t);
    if (prev) {
      be.axpy(prev, g, 1);
      be.free(g);
    } else {
      pending.set(t, g);
    }
  };

  if (loss.node === null) {
    // The loss is itself a leaf: its gradient is the seed.
    pending.delete(loss);
    accumulate(loss, seed);
    return;
  }
  for (let i = order.length - 1; i >= 0; i--) {
    const t = order[i];
    const node = t.node;
    if (!node) continue;
    const g = pending.get(t);
    pending.delete(t);
    if (!g) continue; // no path from the loss carried a gradient here
    if (t.retainsGrad) {
      const keep = be.zeros(g.length);
      be.copy(g, 0, keep, 0, g.length);
      if (t.grad) {
        be.axpy(t.grad.storage, keep, 1);
        be.free(keep);
      } else {
        t.grad = new Tensor(be, t.shape, keep, false);
      }
    }
    const grads = node.backward(g);
    if (grads.length !== node.inputs.length) {
      throw new Error(`backward: ${node.op} returned ${grads.length} gradients for ${node.inputs.length} inputs`);
    }
    // Decide ownership before accumulating anything: accumulation may free a storage (axpy into an existing
    // gradient), so a storage returned for several inputs is copied up front, one copy per extra owner.
    const handed = new Set<Storage>();
    const unused = new Set<Storage>();
    const plan: [Tensor, Storage][] = [];
    for (let j = 0; j < grads.length; j++) {
      const gj = grads[j];
      const inp = node.inputs[j];
      if (!gj) continue;
      if (!inp.requiresGrad) {
        unused.add(gj);
        continue;
      }
      if (handed.has(gj)) {
        const c = be.zeros(gj.length);
        be.copy(gj, 0, c, 0, gj.length);
        plan.push([inp, c]);
      } else {
        handed.add(gj);
        plan.push([inp, gj]);
      }
    }
    unused.add(g);
    for (const u of unused) if (!handed.has(u)) be.free(u);
    for (const [inp, gj] of plan) accumulate(inp, gj);
    if (!opts.retainGraph) t.node = null;
  }
  for (const g of pending.values()) be.free(g);
}

// ---------------------------------------------------------------- creation helpers

export interface CreateOptions {
  requiresGrad?: boolean;
  name?: string;
}

function make(be: Backend, shape: readonly number[], s: Storage, o: CreateOptions): Tensor {
  const t = new Tensor(be, shape, s, o.requiresGrad ?? false);
  if (o.name) t.name = o.name;
  return t;
}

export function fromArray(be: Backend, data: ArrayLike<number>, shape?: readonly number[], o: CreateOptions = {}): Tensor {
  const sh = shape ?? [data.length];
  if (numel(sh) !== data.length) throw new Error(`fromArray: ${data.length} values for shape ${shapeStr(sh)}`);
  return make(be, sh, be.fromArray(data), o);
}

export function zeros(be: Backend, shape: readonly number[], o: CreateOptions = {}): Tensor {
  return make(be, shape, be.zeros(numel(shape)), o);
}

export function full(be: Backend, shape: readonly number[], value: number, o: CreateOptions = {}): Tensor {
  const a = new Float64Array(numel(shape)).fill(value);
  return make(be, shape, be.fromArray(a), o);
}

export function ones(be: Backend, shape: readonly number[], o: CreateOptions = {}): Tensor {
  return full(be, shape, 1, o);
}

/** Normal(mean, std) entries from a seeded generator. */
export function randn(be: Backend, shape: readonly number[], rng: Rng, std = 1, mean = 0, o: CreateOptions = {}): Tensor {
  const a = new Float64Array(numel(shape));
  for (let i = 0; i < a.length; i++) a[i] = mean + std * rng.normal();
  return make(be, shape, be.fromArray(a), o);
}

/** Uniform [lo, hi) entries from a seeded generator. */
export function rand(be: Backend, shape: readonly number[], rng: Rng, lo = 0, hi = 1, o: CreateOptions = {}): Tensor {
  const a = new Float64Array(numel(shape));
  for (let i = 0; i < a.length; i++) a[i] = lo + (hi - lo) * rng.next();
  return make(be, shape, be.fromArray(a), o);
}
