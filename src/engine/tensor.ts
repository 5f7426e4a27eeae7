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
 *
 * Memory (see "Lifetimes" below): GPU storage is only reclaimed by an explicit free, so the engine frees
 * what it provably owns and gives callers two tools for the rest.
 * - Saved-for-backward storages (norm statistics, attention log-sum-exp) belong to the graph node: freed at
 *   once when no node is recorded (noGrad, or no input requires grad), after the node's backward has run
 *   (unless retainGraph), or when the node's tensor is freed or dropped by a scope. Always safe: nothing
 *   outside the closure can reference them.
 * - `tidy(fn)` (and `beginScope`/`endScope` for code that awaits) frees every tensor storage created inside
 *   that is not reachable from the result; `backward(loss, { release: true })` frees the graph's
 *   intermediate activations as soon as the backward no longer needs them.
 * `Tensor.free()` is idempotent and any op (or read, or backward) on a freed tensor throws.
 */

import type { Backend, FloatArray, Storage } from './backend';
import type { Rng } from './random';

export type BackwardFn = (gradOut: Storage) => (Storage | null)[];

interface Node {
  inputs: Tensor[];
  backward: BackwardFn;
  op: string;
  /** Storages only the closure reads (saved statistics), freed with the node. */
  saved: Storage[] | null;
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

// ---------------------------------------------------------------- lifetimes
//
// Who frees what (the rule callers can rely on):
// 1. Saved-for-backward storages belong to their graph node (see record): freed when the node is not
//    recorded, after it has run in a backward (unless retainGraph), or with its tensor.
// 2. tidy(fn) / beginScope+endScope: every storage first wrapped by a Tensor inside the scope is freed at the
//    end, except storages of (a) tensors reachable from the result (Tensor, arrays, Maps, Sets, plain
//    objects), (b) tensors marked with keep(), (c) the recorded graph behind (a) and (b) (so `backward` can
//    still run on a returned loss), (d) parameter-like leaves (requiresGrad and never produced by an op).
//    Kept tensors of kinds (a) and (b) move to the enclosing scope. Views (reshape, detach) of a storage
//    born outside the scope never free it. Tensors that escape by side effect (assigned to an outer
//    variable, not returned) are freed: return them or keep() them.
// 3. backward(loss, { release: true }) frees each intermediate tensor of the graph (produced by an op and
//    reached from the loss) right after the last backward closure that can read it has run, except the
//    loss itself, graph leaves (parameters, inputs: tensors not made by an op, or that require grad),
//    tensors marked keep(), tensors with retainGrad(), and anything in opts.keep; protection is per
//    storage, so a view protects what it shares. Op outputs computed without grad that feed the graph (the
//    activations of frozen layers below the first trainable one) count as intermediates and are freed too:
//    pass such a tensor in opts.keep if you computed it yourself and still need it. Tensors the graph never
//    touches (activations inside frozen layers, consumed only by other frozen ops) are invisible to
//    backward: a scope frees those. Using a freed intermediate afterwards throws. Without release,
//    backward frees only gradients and saved storages.
// 4. Gradients (`.grad`) are never freed by scopes or release; zeroGrad / free do that.
// A storage is freed once: Tensor.free(), scopes and release are idempotent with each other and with a
// GPU backend's own freed flag.

/** Storages freed through the engine (a pooled backend may hand their memory out again at once). */
const freedStorages = new WeakSet<Storage>();
/** Storages some Tensor has wrapped: the first Tensor over a storage owns it, later ones are views. */
const seenStorages = new WeakSet<Storage>();
/** Seen and not yet freed: what liveTensorCount counts (weak, so GC-reclaimed CPU tensors cost nothing). */
const liveStorages = new WeakSet<Storage>();
let liveCount = 0;

function markedFreed(s: Storage): boolean {
  // GpuStorage carries its own flag, so storages freed directly with backend.free are recognised too.
  return freedStorages.has(s) || (s as { freed?: unknown }).freed === true;
}

function forget(s: Storage): void {
  if (liveStorages.delete(s)) liveCount--;
}

function born(s: Storage): boolean {
  if (seenStorages.has(s)) return false;
  seenStorages.add(s);
  liveStorages.add(s);
  liveCount++;
  return true;
}

/** Frees a storage once: repeated calls, and storages a backend already marks freed, are no-ops.
 *  `expectedLength` (a tensor's element count) also recognises a CPU storage emptied by a direct free. */
export function freeStorage(be: Backend, s: Storage, expectedLength?: number): void {
  forget(s);
  if (markedFreed(s) || (expectedLength !== undefined && s.length !== expectedLength)) return;
  freedStorages.add(s);
  be.free(s);
}

/**
 * Tensor storages created and not yet freed through the engine (views count once). A plain counter, not a
 * GC census: it only goes down on an explicit free, which is exactly what GPU memory needs, so a training
 * or evaluation loop whose count grows step over step leaks on WebGPU. Storages freed directly with
 * `backend.free` are noticed when the tensor is later freed, disposed by a scope, or given a new storage.
 */
export function liveTensorCount(): number {
  return liveCount;
}

interface ScopeEntry {
  t: Tensor;
  /** The tensor's storage was born in this scope (so the scope frees it). */
  owns: boolean;
}

/** A tracking frame opened by beginScope (or tidy). */
export interface Scope {
  /** @internal */ readonly entries: ScopeEntry[];
  /** @internal false for the frame backward pushes: tensors made while it runs are nobody's. */
  readonly track: boolean;
  /** @internal */ ended: boolean;
}

const scopes: Scope[] = [];

function trackingScope(): Scope | undefined {
  const top = scopes[scopes.length - 1];
  return top?.track ? top : undefined;
}

/** Opens a scope for code that awaits (prefer tidy for synchronous code); end it with endScope in a finally.
 *  Scopes nest strictly: end them in reverse order, and do not interleave scoped async tasks. */
export function beginScope(): Scope {
  const sc: Scope = { entries: [], track: true, ended: false };
  scopes.push(sc);
  return sc;
}

function collectTensors(v: unknown, out: Set<Tensor>, seen: Set<object>): void {
  if (v === null || typeof v !== 'object') return;
  if (v instanceof Tensor) {
    out.add(v);
    return;
  }
  if (seen.has(v)) return;
  seen.add(v);
  if (Array.isArray(v)) {
    for (const x of v) collectTensors(x, out, seen);
  } else if (v instanceof Map) {
    for (const [k, x] of v) {
      collectTensors(k, out, seen);
      collectTensors(x, out, seen);
    }
  } else if (v instanceof Set) {
    for (const x of v) collectTensors(x, out, seen);
  } else {
    const proto: unknown = Object.getPrototypeOf(v);
    if (proto === Object.prototype || proto === null) for (const x of Object.values(v)) collectTensors(x, out, seen);
  }
}

/** Parameter-like: a leaf that requires grad and was never an op's output (kept by every scope). */
function isParamLike(t: Tensor): boolean {
  return t.requiresGrad && !t.derived && t.node === null;
}

/**
 * Ends `sc`, freeing what it owns except what `result` reaches (rule 2 above). Returns nothing: the caller
 * already holds `result`.
 */
export function endScope(sc: Scope, result?: unknown): void {
  if (sc.ended) throw new Error('endScope: this scope has already ended');
  const i = scopes.lastIndexOf(sc);
  if (i < 0) throw new Error('endScope: not an open scope');
  if (i !== scopes.length - 1) {
    throw new Error('endScope: an inner scope is still open (end scopes in reverse order of beginScope)');
  }
  scopes.pop();
  sc.ended = true;

  const keep = new Set<Tensor>();
  collectTensors(result, keep, new Set());
  // The graph behind a returned (or keep()-marked) tensor stays intact so backward can run on it later.
  const stack = [...keep];
  for (const e of sc.entries) if (e.t.kept && e.t.node) stack.push(e.t);
  while (stack.length) {
    const t = stack.pop()!;
    if (t.node) {
      for (const c of t.node.inputs) {
        if (!keep.has(c)) {
          keep.add(c);
          stack.push(c);
        }
      }
    }
  }
  const keptStorages = new Set<Storage>();
  for (const t of keep) keptStorages.add(t.storage);
  const ownedHere = new Set<Storage>();
  for (const e of sc.entries) {
    if (e.owns) ownedHere.add(e.t.storage);
    if (e.t.kept || isParamLike(e.t)) keptStorages.add(e.t.storage);
  }

  const parent = trackingScope();
  for (const e of sc.entries) {
    const t = e.t;
    if (keep.has(t)) {
      // Ownership moves up with the kept tensor even when the owner was a dropped view of it.
      if (parent) parent.entries.push({ t, owns: e.owns || ownedHere.has(t.storage) });
      continue;
    }
    if (t.kept || isParamLike(t)) continue;
    releaseNode(t);
    if (t.grad && !keep.has(t.grad) && !keptStorages.has(t.grad.storage)) {
      freeOwn(t.grad);
      t.grad = null;
    }
    if (e.owns && !keptStorages.has(t.storage)) freeOwn(t);
  }
}

/**
 * Runs synchronous `fn` and frees every tensor storage created inside that its result does not reach
 * (rule 2 above; like tf.js `tidy`). Also frees on throw. An async `fn` is refused: its tensors would
 * outlive the scope (use beginScope/endScope around awaited code).
 */
export function tidy<T>(fn: () => T): T {
  const sc = beginScope();
  let result: T;
  try {
    result = fn();
  } catch (e) {
    // Inner scopes a throw skipped past are ended too, so the original error is the one reported.
    while (scopes.includes(sc) && scopes[scopes.length - 1] !== sc) {
      const top = scopes[scopes.length - 1]!;
      if (top.track) endScope(top);
      else scopes.pop();
    }
    if (!sc.ended) endScope(sc);
    throw e;
  }
  if (result !== null && typeof result === 'object' && typeof (result as { then?: unknown }).then === 'function') {
    endScope(sc);
    throw new Error('tidy: fn returned a Promise; tidy is synchronous (use beginScope/endScope around awaits)');
  }
  endScope(sc, result);
  return result;
}

/** Marks a tensor so no scope and no backward release ever frees it (free it yourself). */
export function keep<T extends Tensor>(t: T): T {
  t.kept = true;
  return t;
}

/** Throws a clear error when any tensor has been freed (ops call it before touching storage). */
export function assertLive(op: string, ...ts: readonly Tensor[]): void {
  for (const t of ts) {
    if (t.freed) throw freedError(op, t);
  }
}

function freedError(op: string, t: Tensor): Error {
  return new Error(`${op}: tensor ${t.name ? `${t.name} ` : ''}${shapeStr(t.shape)} was freed (used after free())`);
}

/** Frees a tensor's own storage (shared with its views) once. */
function freeOwn(t: Tensor): void {
  freeStorage(t.backend, t.storage, numel(t.shape));
}

function releaseNode(t: Tensor): void {
  const node = t.node;
  if (!node) return;
  if (node.saved) for (const s of node.saved) freeStorage(t.backend, s);
  node.saved = null;
  t.node = null;
}

export class Tensor {
  readonly backend: Backend;
  readonly shape: number[];
  requiresGrad: boolean;
  grad: Tensor | null = null;
  /** Optional label (parameter name) used in error messages. */
  name?: string;
  /** @internal creator node; null for leaves and for results computed without grad. */
  node: Node | null = null;
  /** When true, backward stores this non-leaf tensor's gradient in `.grad` (GradOT's support pass needs the
   *  gradients of linear outputs). */
  retainsGrad = false;
  /** Set by keep(): never freed by a scope or a backward release. */
  kept = false;
  /** @internal an op recorded a node for this tensor at some point (so it is not a parameter). */
  derived = false;
  /** @internal the storage was new when this tensor was made (it is not a view of another tensor's). */
  readonly fresh: boolean;
  /** @internal fresh output of an op, with or without a recorded node (an activation, not an input). */
  opOutput = false;
  private _storage: Storage;

  constructor(backend: Backend, shape: readonly number[], storage: Storage, requiresGrad = false) {
    const n = numel(shape);
    if (storage.length !== n) {
      if (markedFreed(storage)) throw new Error(`Tensor: storage for shape ${shapeStr(shape)} was freed (used after free())`);
      throw new Error(`Tensor: storage has ${storage.length} elements but shape ${shapeStr(shape)} needs ${n}`);
    }
    this.backend = backend;
    this.shape = [...shape];
    this._storage = storage;
    this.requiresGrad = requiresGrad;
    const owns = born(storage);
    this.fresh = owns;
    trackingScope()?.entries.push({ t: this, owns });
  }

  get storage(): Storage {
    return this._storage;
  }

  /** Swaps the storage (checkpoint loads, in-place clipping). A previous storage freed directly with
   *  backend.free is noticed here; one still live is left alone (the caller owns it). */
  set storage(s: Storage) {
    const old = this._storage;
    if (s === old) return;
    if (markedFreed(old) || old.length !== numel(this.shape)) forget(old);
    this._storage = s;
    born(s);
  }

  get size(): number {
    return this._storage.length;
  }

  get ndim(): number {
    return this.shape.length;
  }

  /** Whether this tensor was produced by a recorded op (has a creator). */
  get isLeaf(): boolean {
    return this.node === null;
  }

  /** Whether the storage has been freed (through any tensor sharing it, or directly on the backend). */
  get freed(): boolean {
    const s = this._storage;
    // A CPU storage freed directly on the backend is emptied.
    return markedFreed(s) || s.length !== numel(this.shape);
  }

  read(): Promise<FloatArray> {
    if (this.freed) return Promise.reject(freedError('read', this));
    return this.backend.read(this._storage);
  }

  /** Reads a single-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new Error(`item: tensor has shape ${shapeStr(this.shape)}, not one element`);
    return (await this.read())[0]!;
  }

  retainGrad(): this {
    this.retainsGrad = true;
    return this;
  }

  /** Marks this tensor kept (see keep()). */
  keep(): this {
    this.kept = true;
    return this;
  }

  /** A leaf sharing this tensor's storage, cut from the graph. */
  detach(): Tensor {
    return new Tensor(this.backend, this.shape, this._storage, false);
  }

  zeroGrad(): void {
    if (this.grad) {
      freeOwn(this.grad);
      this.grad = null;
    }
  }

  /** Releases the storage (shared with any view of it), the gradient and the node's saved storages.
   *  Idempotent; any later use of this tensor or a view of it throws. */
  free(): void {
    this.zeroGrad();
    releaseNode(this);
    freeOwn(this);
  }
}

/**
 * Attaches a creator node to `out` when grad mode is on and any input requires grad. Returns `out`.
 * `saved` lists storages only `backward` reads (statistics kept for it): they are freed right away when no
 * node is recorded, else with the node (after it runs, or when its tensor is freed or dropped by a scope).
 */
export function record(out: Tensor, inputs: Tensor[], backward: BackwardFn, op: string, saved?: Storage[]): Tensor {
  assertLive(op, ...inputs);
  if (out.fresh) out.opOutput = true;
  if (gradEnabled && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    out.derived = true;
    out.node = { inputs, backward, op, saved: saved ?? null };
  } else if (saved) {
    for (const s of saved) freeStorage(out.backend, s);
  }
  return out;
}

export interface BackwardOptions {
  /** Gradient of the (scalar or not) output; default is ones for a single-element loss. */
  grad?: Storage;
  /** Keep the graph so backward can run again (otherwise creator links are dropped). */
  retainGraph?: boolean;
  /**
   * Free the graph's intermediate tensors as soon as no remaining backward closure can read them (rule 3
   * above): the loss, parameters and inputs, keep()/retainGrad() tensors and `keep` survive; every other
   * tensor an op produced on the way to the loss (frozen-layer activations included) is freed. Not with
   * retainGraph.
   */
  release?: boolean;
  /** With release: tensors the caller still reads afterwards (e.g. logits). Views protect what they share. */
  keep?: readonly Tensor[];
  /**
   * Called for each leaf that requires grad as soon as its `.grad` is final for this backward (the backward
   * of its last consumer has run), top of the graph first. The callee may read the gradient and take it
   * (free it and set `.grad = null`), so that a caller who only reduces gradients never holds them all:
   * the held-out gradient shift folds each adapter tensor's gradient this way.
   */
  onLeafGrad?: (leaf: Tensor) => void;
}

/** Runs reverse-mode differentiation from `loss`, accumulating into `.grad` of leaves that require grad. */
export function backward(loss: Tensor, opts: BackwardOptions = {}): void {
  const be = loss.backend;
  if (!loss.requiresGrad) throw new Error('backward: loss does not require grad (no parameter reached it, or noGrad)');
  if (opts.release && opts.retainGraph) throw new Error('backward: release and retainGraph exclude each other');
  assertLive('backward', loss);
  // Tensors made while the closures run (gradients, the views hooks receive) belong to no scope.
  const frame: Scope = { entries: [], track: false, ended: false };
  scopes.push(frame);
  try {
    run(loss, be, opts);
  } finally {
    const i = scopes.lastIndexOf(frame);
    if (i >= 0) scopes.splice(i, 1);
  }
}

/**
 * Leaves that require grad, by the post-order index of their last consumer in the reverse walk (the
 * smallest index among the nodes that read them): after that node's step their gradient is complete.
 */
function lastUses(order: readonly Tensor[]): Map<number, Tensor[]> {
  const seen = new Set<Tensor>();
  const at = new Map<number, Tensor[]>();
  for (let i = 0; i < order.length; i++) {
    const node = order[i]!.node;
    if (!node) continue;
    for (const c of node.inputs) {
      if (c.node !== null || !c.requiresGrad || seen.has(c)) continue;
      seen.add(c);
      const list = at.get(i);
      if (list) list.push(c);
      else at.set(i, [c]);
    }
  }
  return at;
}

function run(loss: Tensor, be: Backend, opts: BackwardOptions): void {
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
    const top = stack[stack.length - 1]!;
    const [t, idx] = top;
    const ins = t.node ? t.node.inputs : [];
    if (idx < ins.length) {
      top[1]++;
      const c = ins[idx]!;
      if (c.requiresGrad && !visited.has(c)) {
        visited.add(c);
        stack.push([c, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }

  const freeAt = opts.release ? releasePlan(loss, order, opts.keep ?? []) : null;
  const leavesDoneAt = opts.onLeafGrad ? lastUses(order) : null;

  const pending = new Map<Tensor, Storage>();
  pending.set(loss, seed);
  const accumulate = (t: Tensor, g: Storage): void => {
    if (g.length !== t.size) {
      throw new Error(`backward: gradient of ${g.length} elements for a tensor of shape ${shapeStr(t.shape)}`);
    }
    if (t.node === null) {
      // Leaf: accumulate into .grad (gradient accumulation across micro-batches works by not zeroing).
      if (t.grad && !t.grad.freed) {
        be.axpy(t.grad.storage, g, 1);
        freeStorage(be, g);
      } else {
        t.grad = new Tensor(be, t.shape, g, false);
      }
      return;
    }
    const prev = pending.get(t);
    if (prev) {
      be.axpy(prev, g, 1);
      freeStorage(be, g);
    } else {
      pending.set(t, g);
    }
  };

  if (loss.node === null) {
    // The loss is itself a leaf: its gradient is the seed.
    pending.delete(loss);
    accumulate(loss, seed);
    opts.onLeafGrad?.(loss);
    return;
  }
  for (let i = order.length - 1; i >= 0; i--) {
    const t = order[i]!;
    const node = t.node;
    if (!node) continue;
    const g = pending.get(t);
    pending.delete(t);
    if (g) {
      step(t, node, g, be);
      if (!opts.retainGraph) releaseNode(t);
    }
    if (freeAt) {
      releaseNode(t);
      const fs = freeAt.get(i);
      if (fs) for (const s of fs) freeStorage(be, s);
    }
    const done = leavesDoneAt?.get(i);
    if (done) for (const leaf of done) if (leaf.grad && !leaf.grad.freed) opts.onLeafGrad!(leaf);
  }
  for (const g of pending.values()) freeStorage(be, g);

  function step(t: Tensor, node: Node, g: Storage, be: Backend): void {
    if (t.freed || node.inputs.some((c) => c.freed)) {
      const bad = t.freed ? t : node.inputs.find((c) => c.freed)!;
      throw new Error(
        `backward: ${node.op} needs tensor ${bad.name ? `${bad.name} ` : ''}${shapeStr(bad.shape)}, which was freed before backward`,
      );
    }
    if (t.retainsGrad) {
      const keepG = be.zeros(g.length);
      be.copy(g, 0, keepG, 0, g.length);
      if (t.grad && !t.grad.freed) {
        be.axpy(t.grad.storage, keepG, 1);
        freeStorage(be, keepG);
      } else {
        t.grad = new Tensor(be, t.shape, keepG, false);
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
      const inp = node.inputs[j]!;
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
    for (const u of unused) if (!handed.has(u)) freeStorage(be, u);
    for (const [inp, gj] of plan) accumulate(inp, gj);
  }
}

/**
 * For backward's release: which activation storages to free after which position of the reverse walk.
 * A storage is read by the closure of every node whose output or input shares it; the walk runs positions
 * from the loss (last) down to 0, so the last reader is the smallest position.
 */
function releasePlan(loss: Tensor, order: readonly Tensor[], keepList: readonly Tensor[]): Map<number, Storage[]> {
  const prot = new Set<Storage>([loss.storage]);
  for (const t of keepList) prot.add(t.storage);
  // Leaves are protected unless an op made them without grad (activations of frozen layers below the first
  // trainable one): those are intermediates like any other.
  const guard = (t: Tensor): void => {
    if ((t.node === null && (t.requiresGrad || !t.opOutput)) || t.kept || t.retainsGrad) prot.add(t.storage);
  };
  for (const t of order) {
    guard(t);
    if (t.node) for (const c of t.node.inputs) guard(c);
  }
  const last = new Map<Storage, number>();
  for (let i = 0; i < order.length; i++) {
    const t = order[i]!;
    if (!t.node) continue;
    const refs = [t, ...t.node.inputs];
    for (const r of refs) {
      const s = r!.storage;
      if (prot.has(s)) continue;
      const prev = last.get(s);
      if (prev === undefined || i < prev) last.set(s, i);
    }
  }
  const at = new Map<number, Storage[]>();
  for (const [s, i] of last) {
    const l = at.get(i);
    if (l) l.push(s);
    else at.set(i, [s]);
  }
  return at;
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
