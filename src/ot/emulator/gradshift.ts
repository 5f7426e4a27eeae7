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
import { backward, noGrad, Tensor, tidy } from '../../engine/tensor';
import { CpuStorage } from '../../engine/cpu/backend';
import { countTargets } from '../../engine/ops';
import { reclaimHostMemory } from '../../engine/reclaim';
import type { Decoder } from '../../model/decoder';
import { HELD_OUT_TAPE_BYTES, tapeFloatsPerToken } from '../../model/tape-size';

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

/** Bytes the tape of a whole-model forward keeps for one batch (f32). */
export function wholeTapeBytes(dec: Decoder, B: number, T: number): number {
  const s = dec.spec;
  return s.layers.length * B * T * tapeFloatsPerToken({ ...s, gated: s.gatedMlp }, T) * 4;
}

/**
 * Mean loss of one batch, its backward into the trainable parameters' .grad, one block's tape at a time: a
 * forward without a tape keeps each block's input, then the head and each block, top-down, are re-run
 * from their saved input with a tape and back-propagate the gradient handed down from above (the support
 * pass's scheme, one block per group). Every op sees the inputs the whole-graph backward gives it, so the
 * gradients are the same; the cost is one more forward of the blocks. Only blocks' parameters get
 * gradients here (the embeddings' never do).
 */
export async function backwardByBlocks(
  dec: Decoder,
  b: SupportBatch,
  ignoreIndex = -100,
  onLeafGrad?: (leaf: Tensor) => void,
): Promise<number> {
  const { B, T } = b;
  const L = dec.spec.layers.length;
  const be = dec.backend;
  const inputs = tidy(() =>
    noGrad(() => {
      const xs: Tensor[] = [];
      let x = dec.embed(b.ids, B, T);
      for (let i = 0; i < L; i++) {
        xs.push(x);
        // One block's activations at a time (freed at once; the CPU backend reuses their arrays).
        const prev = x;
        x = tidy(() => dec.block(i, prev, B, T));
      }
      xs.push(x);
      return xs;
    }),
  );
  // Leaves over the saved streams (freed with `inputs`, not by the backward).
  const leaf = (t: Tensor, grad: boolean): Tensor => new Tensor(be, t.shape, t.storage, grad);
  let seed: Tensor | null = null;
  let lossValue = 0;
  try {
    // The head: loss and its gradient w.r.t. the last block's output.
    const top = leaf(inputs[L]!, true);
    const loss = tidy(() => {
      const l = dec.headLoss(top, b.targets, ignoreIndex);
      backward(l, { release: true, onLeafGrad });
      return l;
    });
    lossValue = await loss.item();
    loss.free();
    seed = top.grad!;
    for (let i = L - 1; i >= 0; i--) {
      const x = leaf(inputs[i]!, i > 0);
      const g = seed!;
      tidy(() => backward(dec.block(i, x, B, T), { release: true, grad: g.storage, onLeafGrad }));
      g.free();
      reclaimHostMemory();
      seed = i > 0 ? x.grad! : null;
    }
  } finally {
    seed?.free();
    for (const t of inputs) t.free();
  }
  return lossValue;
}

/**
 * Loss and the adapters' gradients of one batch, one array per name. On the CPU backend these are the
 * gradients' own arrays, taken from the tensors (no copy; valid until `release` frees them): at TinyLlama
 * size a concatenated copy was another 0.7 GB beside two models' gradients. Other backends read them back. With `fold`, each is handed over at once and not kept.
 */
async function gradsAndLoss(
  dec: Decoder,
  names: string[],
  b: SupportBatch,
  fold?: (index: number, g: ArrayLike<number>) => void,
): Promise<{ g: ArrayLike<number>[]; loss: number; release: () => void }> {
  const set = new Set(names);
  dec.setTrainable((n) => set.has(n));
  dec.zeroGrad();
  // With `fold` on the CPU backend, each gradient is folded and freed the moment the backward has finished
  // it (top blocks first), so the adapters' gradients are never all alive beside the other model's: at
  // TinyLlama size that is 0.35 GB of 0.7 GB. Other backends' gradients are read back after the backward.
  const index = new Map<Tensor, number>(names.map((n, i) => [dec.params.get(n)!, i]));
  const folded = new Set<number>();
  const onLeafGrad = fold
    ? (leaf: Tensor): void => {
        const k = index.get(leaf);
        const gt = leaf.grad;
        if (k === undefined || !gt || !(gt.storage instanceof CpuStorage)) return;
        fold(k, gt.storage.data);
        folded.add(k);
        leaf.grad = null;
        gt.free();
      }
    : undefined;
  // Only the adapters' .grad outlives the step: activations go with release and the scope.
  let lv: number;
  if (wholeTapeBytes(dec, b.B, b.T) > HELD_OUT_TAPE_BYTES) {
    lv = await backwardByBlocks(dec, b, -100, onLeafGrad);
  } else {
    const loss = tidy(() => {
      const l = dec.loss(b.ids, b.targets, b.B, b.T);
      backward(l, { release: true, onLeafGrad });
      return l;
    });
    lv = await loss.item();
    loss.free();
  }
  const g: ArrayLike<number>[] = [];
  const taken: Tensor[] = [];
  for (let i = 0; i < names.length; i++) {
    if (folded.has(i)) continue;
    const t = dec.params.get(names[i]!)!;
    const gt = t.grad;
    let v: ArrayLike<number>;
    if (!gt) v = new Float32Array(t.size);
    else if (gt.storage instanceof CpuStorage) {
      v = gt.storage.data; // the gradient's own array: valid until `release` frees it
      if (!fold) {
        t.grad = null;
        taken.push(gt);
      }
    } else v = await gt.read();
    if (fold) fold(i, v);
    else g.push(v);
  }
  dec.zeroGrad();
  return { g, loss: lv, release: () => taken.forEach((t) => t.free()) };
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
      // The emulator's gradients are folded into the sums tensor by tensor, as the backward finishes each,
      // instead of being kept: at real sizes each copy is the adapters' size. The sums are those of the
      // concatenated vector up to the order of summation (double precision).
      let dot = 0,
        nf = 0,
        ne = 0;
      let e: { loss: number };
      try {
        e = await gradsAndLoss(
          emu,
          pairs.map((p) => p[1]),
          b,
          (k, ge) => {
            const gf = f.g[k]!;
            for (let i = 0; i < ge.length; i++) {
              const x = gf[i]!,
                y = ge[i]!;
              dot += x * y;
              nf += x ** 2;
              ne += y ** 2;
            }
          },
        );
      } finally {
        f.release();
      }
      perBatch.push(nf === 0 || ne === 0 ? 1 : 1 - dot / Math.sqrt(nf * ne));
      lf += f.loss * N;
      le += e.loss * N;
      tokens += N;
      reclaimHostMemory(); // two models' activations and gradients per batch
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
