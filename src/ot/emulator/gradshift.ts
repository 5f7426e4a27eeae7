/**
 * The utility side of GradOT's objective, measured: how far the adapters' gradients on the emulator are
 * from their gradients on the full model, on held-out support batches (issue 4's acceptance figure), plus
 * the two models' losses (the privacy side: a good emulator has a higher loss than the full model).
 *
 * Adapter parameters are paired by role: bottom block i of the emulator with bottom block i of the full
 * model, top block j (counted from the top) with top block j, same tensor suffix. Per batch we take the
 * cosine distance 1 − cos(g_full, g_emu) of the concatenated adapter gradients, and report the mean over
 * batches.
 */
import { backward, tidy } from '../../engine/tensor';
import { countTargets } from '../../engine/ops';
import type { Decoder } from '../../model/decoder';
import type { Split } from './budget';
import type { SupportBatch } from './support';

export interface GradShiftResult {
  /** Mean over batches of 1 − cos(g_full, g_emulator) over all adapter parameters. */
  cosineDistance: number;
  perBatch: number[];
  /** Token-weighted mean loss of each model on the same batches. */
  fullLoss: number;
  emulatorLoss: number;
  tokens: number;
  adapterParams: number;
}

/** Adapter tensor names of a decoder, in a model-independent pairing order. */
export function adapterParamPairs(full: Decoder, emu: Decoder, split: Split): [string, string][] {
  const Lf = full.spec.layers.length;
  const Le = emu.spec.layers.length;
  if (split.bottom + split.top > Math.min(Lf, Le)) throw new Error('gradshift: split does not fit both models');
  const blocks: [number, number][] = [];
  for (let i = 0; i < split.bottom; i++) blocks.push([i, i]);
  for (let j = split.top; j >= 1; j--) blocks.push([Lf - j, Le - j]);
  const pairs: [string, string][] = [];
  for (const [bf, be] of blocks) {
    const pf = `layers.${bf}.`;
    for (const name of full.params.keys()) {
      if (!name.startsWith(pf)) continue;
      const other = `layers.${be}.` + name.slice(pf.length);
      const a = full.params.get(name)!;
      const b = emu.params.get(other);
      if (!b || b.size !== a.size) throw new Error(`gradshift: adapter tensor ${name} has no match ${other} in the emulator`);
      pairs.push([name, other]);
    }
  }
  return pairs;
}

/**
 * Loss and the adapters' gradients of one batch: concatenated into `g` (in the backend's own precision, so
 * the copy is exact and half the size of an f64 one on f32), or, with `fold`, handed over tensor by tensor
 * at their offsets in that concatenation and not kept.
 */
async function gradsAndLoss(
  dec: Decoder,
  names: string[],
  b: SupportBatch,
  fold?: (offset: number, g: ArrayLike<number>) => void,
): Promise<{ g: Float32Array | Float64Array; loss: number }> {
  const set = new Set(names);
  dec.setTrainable((n) => set.has(n));
  dec.zeroGrad();
  // Only the adapters' .grad outlives the step: activations go with release and the scope.
  const loss = tidy(() => {
    const l = dec.loss(b.ids, b.targets, b.B, b.T);
    backward(l, { release: true });
    return l;
  });
  const lv = await loss.item();
  loss.free();
  let n = 0;
  for (const name of names) n += dec.params.get(name)!.size;
  const g = fold ? new Float32Array(0) : dec.backend.dtype === 'f64' ? new Float64Array(n) : new Float32Array(n);
  let o = 0;
  for (const name of names) {
    const t = dec.params.get(name)!;
    const v = t.grad ? await t.grad.read() : new Float32Array(t.size);
    if (fold) fold(o, v);
    else g.set(v, o);
    o += t.size;
  }
  dec.zeroGrad();
  return { g, loss: lv };
}

export async function adapterGradientShift(
  full: Decoder,
  emu: Decoder,
  batches: Iterable<SupportBatch>,
  split: Split,
  onBatch?: (done: number, total: number) => void,
): Promise<GradShiftResult> {
  const list = [...batches];
  const pairs = adapterParamPairs(full, emu, split);
  const savedF = new Map([...full.params].map(([n, t]) => [n, t.requiresGrad]));
  const savedE = new Map([...emu.params].map(([n, t]) => [n, t.requiresGrad]));
  const perBatch: number[] = [];
  let lf = 0,
    le = 0,
    tokens = 0;
  try {
    for (let bi = 0; bi < list.length; bi++) {
      const b = list[bi]!;
      const N = countTargets(b.targets);
      if (N === 0) {
        onBatch?.(bi + 1, list.length);
        continue;
      }
      const f = await gradsAndLoss(
        full,
        pairs.map((p) => p[0]),
        b,
      );
      // The emulator's gradients are folded into the sums tensor by tensor (same order, same sums as one
      // concatenated vector) instead of being copied out: at real sizes each copy is the adapters' size.
      let dot = 0,
        nf = 0,
        ne = 0;
      const e = await gradsAndLoss(
        emu,
        pairs.map((p) => p[1]),
        b,
        (o, ge) => {
          for (let i = 0; i < ge.length; i++) {
            const x = f.g[o + i]!,
              y = ge[i]!;
            dot += x * y;
            nf += x ** 2;
            ne += y ** 2;
          }
        },
      );
      perBatch.push(nf === 0 || ne === 0 ? 1 : 1 - dot / Math.sqrt(nf * ne));
      lf += f.loss * N;
      le += e.loss * N;
      tokens += N;
      onBatch?.(bi + 1, list.length);
    }
  } finally {
    full.setTrainable((n) => savedF.get(n) ?? false);
    emu.setTrainable((n) => savedE.get(n) ?? false);
  }
  if (tokens === 0) throw new Error('gradshift: no loss tokens in the batches');
  let adapterParams = 0;
  for (const [n] of pairs) adapterParams += full.params.get(n)!.size;
  return {
    cosineDistance: perBatch.reduce((s, x) => s + x, 0) / perBatch.length,
    perBatch,
    fullLoss: lf / tokens,
    emulatorLoss: le / tokens,
    tokens,
    adapterParams,
  };
}
