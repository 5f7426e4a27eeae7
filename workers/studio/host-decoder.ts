/**
 * A decoder over host weights for the jobs that only read them (evaluation, plug-in): on the f32 CPU backend
 * its parameters are the WeightMap's own Float32Arrays, not copies (a gpt2-sized model is 0.5 GB a copy); on
 * other backends (WebGPU uploads) and for other arrays it is decoderFromWeights. Safe because a forward
 * pass never writes into a parameter's storage, and freeing a CPU storage drops the storage's reference
 * without touching the array (CpuBackend.free); a parameter that is replaced (an adapter plugged in) gets a
 * storage of its own.
 */
import { CpuBackend, CpuStorage } from '../../src/engine/cpu/backend';
import type { Backend } from '../../src/engine/backend';
import { Tensor } from '../../src/engine/tensor';
import { canonicalShapes, validateWeights } from '../../src/model/hf';
import { Decoder, decoderFromWeights } from '../../src/model/decoder';
import type { ModelSpec } from '../../src/model/spec';
import type { WeightMap } from '../../src/model/weights';

export function sharesHostArrays(be: Backend): boolean {
  return be instanceof CpuBackend && be.dtype === 'f32';
}

export function decoderOverHost(be: Backend, spec: ModelSpec, weights: WeightMap): Decoder {
  if (!sharesHostArrays(be)) return decoderFromWeights(be, spec, weights);
  validateWeights(spec, weights, 'weights');
  const params = new Map<string, Tensor>();
  for (const [name, shape] of canonicalShapes(spec)) {
    const w = weights.get(name)!;
    const storage = w.data instanceof Float32Array ? new CpuStorage(w.data) : be.fromArray(w.data);
    const t = new Tensor(be, shape, storage);
    t.name = name;
    params.set(name, t);
  }
  return new Decoder(spec, params);
}
