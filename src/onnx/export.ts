/**
 * ONNX export of any model state we hold (ModelSpec + canonical WeightMap): full models, GradOT emulators
 * (low-rank `weight_a`/`weight_b` linears, pruned MLP widths, dropped blocks) and plug-in models, as one
 * decoder graph with a KV cache in the layout Optimum writes and transformers.js runs for text generation:
 *
 *   inputs   input_ids [batch, seq] int64, attention_mask [batch, past+seq] int64,
 *            position_ids [batch, seq] int64, past_key_values.{i}.key|value [batch, kv_heads, past, head_dim]
 *   outputs  logits [batch, seq, vocab], present.{i}.key|value [batch, kv_heads, past+seq, head_dim]
 *
 * transformers.js feeds only the inputs a session declares; it builds position_ids as
 * cumsum(attention_mask) - 1 (pads at 1) for every decoder family, so GPT-2 and OPT (whose HF graphs derive
 * positions internally) take them too and OPT adds its offset of 2 inside the graph. The empty first cache
 * is built from the input metadata: symbolic dims become batch size or 0, so kv_heads and head_dim are
 * written as numbers.
 *
 * Standard ONNX ops only, opset 17 (LayerNormalization needs 17): MatMul, Add, Mul, Div, Sqrt, ReduceMean,
 * Softmax, Gather, Concat, Reshape, Transpose, Slice, Unsqueeze, Where, Range, Greater, Equal, Or, Shape,
 * Sigmoid, Tanh, Erf, Relu, Neg. RoPE uses cos/sin tables (initializers computed in float64, gathered by
 * position_ids), so no Sin/Cos kernels are needed and the angles match our engine's float64 ones.
 *
 * A linear y = x Wᵀ + b is MatMul(x, Wᵀ) (+ Add): the transposed weight is stored, so no Transpose runs.
 * A low-rank linear (W = A·B) is MatMul(MatMul(x, Bᵀ), Aᵀ): never materialised. Pruned MLPs are smaller
 * matrices. A tied LM head is a Transpose node of the embedding (ORT folds it once at load), so the
 * embedding is stored once.
 *
 * Grouped-query attention without Expand: q [B, H, S, D] is viewed as [B, Hkv, R, S, D] (head h = j·R + r
 * uses kv head j, HF's repeat_kv order) and multiplied with k [B, Hkv, 1, T, D] by MatMul broadcasting.
 */
import { canonicalShapes, hfConfigFromSpec, projsOf, type HFConfig } from '../model/hf';
import type { ActivationKind, ModelSpec } from '../model/spec';
import type { HostTensor, WeightMap } from '../model/weights';
import { sameShape } from '../model/weights';
import { cacheNames } from './names';
import { AT, DT, onnx, type OnnxNamespace } from './proto';

export { cacheNames };

export const ONNX_OPSET = 17;
/** IR version 8 goes with opset 17 (ONNX 1.12). */
export const ONNX_IR_VERSION = 8;
/** Protobuf messages cannot exceed 2 GiB; larger models would need external data (not implemented). */
export const MAX_PROTO_BYTES = 2 ** 31 - 1;

type INode = OnnxNamespace.INodeProto;
type ITensor = OnnxNamespace.ITensorProto;
type IAttr = OnnxNamespace.IAttributeProto;
type IValueInfo = OnnxNamespace.IValueInfoProto;

type AttrValue = number | number[] | { float: number } | ITensor | string;

function attr(name: string, v: AttrValue): IAttr {
  if (typeof v === 'string') return { name, type: AT.STRING, s: new TextEncoder().encode(v) };
  if (typeof v === 'number') return { name, type: AT.INT, i: v };
  if (Array.isArray(v)) return { name, type: AT.INTS, ints: v };
  if ('float' in v) return { name, type: AT.FLOAT, f: v.float };
  return { name, type: AT.TENSOR, t: v };
}

function f32Bytes(a: Float32Array): Uint8Array {
  // Copy: the typed array may be a view into a larger buffer, and ONNX raw_data is little-endian (as every
  // platform we run on).
  return new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));
}

function i64Bytes(vals: readonly number[]): Uint8Array {
  const b = new BigInt64Array(vals.map((v) => BigInt(v)));
  return new Uint8Array(b.buffer);
}

/** Builds a graph node by node with fresh value names. */
class GraphBuilder {
  readonly nodes: INode[] = [];
  readonly initializers: ITensor[] = [];
  private count = 0;
  private consts = new Map<string, string>();

  fresh(prefix: string): string {
    return `${prefix}_${this.count++}`;
  }

  /** One node; returns its output names (fresh unless given). */
  nodeN(op: string, inputs: string[], outputs: string[] | number, attrs: Record<string, AttrValue> = {}): string[] {
    const outs = typeof outputs === 'number' ? Array.from({ length: outputs }, () => this.fresh(`/${op}`)) : outputs;
    this.nodes.push({
      opType: op,
      name: this.fresh(op),
      input: inputs,
      output: outs,
      attribute: Object.entries(attrs).map(([k, v]) => attr(k, v)),
    });
    return outs;
  }

  op(op: string, inputs: string[], attrs: Record<string, AttrValue> = {}, out?: string): string {
    return this.nodeN(op, inputs, out === undefined ? 1 : [out], attrs)[0]!;
  }

  initF32(name: string, dims: number[], data: Float32Array): string {
    this.initializers.push({ name, dims, dataType: DT.FLOAT, rawData: f32Bytes(data) });
    return name;
  }

  /** A shared int64 constant (1-D, or a scalar when `scalar`). */
  i64(vals: number[], scalar = false): string {
    const key = `i64:${scalar ? 's' : 'v'}:${vals.join(',')}`;
    const hit = this.consts.get(key);
    if (hit) return hit;
    const name = this.fresh(scalar ? 'const_i64_s' : 'const_i64');
    this.initializers.push({ name, dims: scalar ? [] : [vals.length], dataType: DT.INT64, rawData: i64Bytes(vals) });
    this.consts.set(key, name);
    return name;
  }

  /** A shared float32 scalar constant. */
  f32(v: number): string {
    const key = `f32:${v}`;
    const hit = this.consts.get(key);
    if (hit) return hit;
    const name = this.fresh('const_f32');
    this.initializers.push({ name, dims: [], dataType: DT.FLOAT, rawData: f32Bytes(Float32Array.of(v)) });
    this.consts.set(key, name);
    return name;
  }
}

function valueInfo(name: string, elemType: number, dims: (number | string)[]): IValueInfo {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

export interface OnnxExportOptions {
  /** Text for the model's doc_string (e.g. what state this is: full, emulator, plug-in). */
  docString?: string;
  /** Extra metadata_props entries. */
  metadata?: Record<string, string>;
  /**
   * Weights in external data files beside the graph (ONNX external data, transformers.js's
   * `use_external_data_format`): true, false, or 'auto' (default: only past protobuf's 2 GiB limit).
   */
  externalData?: boolean | 'auto';
  /** Largest external data file (default 1.5 GiB; transformers.js names them model.onnx_data, _1, _2, ...). */
  externalChunkBytes?: number;
}

function transposeHost(t: HostTensor): Float32Array {
  const [r, c] = t.shape as [number, number];
  const out = new Float32Array(r * c);
  const src = t.data;
  for (let i = 0; i < r; i++) {
    const row = i * c;
    for (let j = 0; j < c; j++) out[j * r + i] = src[row + j]!;
  }
  return out;
}

function checkWeights(spec: ModelSpec, weights: WeightMap): void {
  for (const [name, shape] of canonicalShapes(spec)) {
    const t = weights.get(name);
    if (!t) throw new Error(`exportOnnx: missing tensor '${name}' [${shape.join(', ')}]`);
    if (!sameShape(shape, t.shape))
      throw new Error(`exportOnnx: '${name}' has shape [${t.shape.join(', ')}], spec wants [${shape.join(', ')}]`);
  }
}

/**
 * The decoder graph as an ONNX ModelProto (in-memory object). `encodeOnnxModel` turns it into bytes;
 * `exportOnnx` does both.
 */
export function buildOnnxModel(spec: ModelSpec, weights: WeightMap, opts: OnnxExportOptions = {}): OnnxNamespace.IModelProto {
  checkWeights(spec, weights);
  const g = new GraphBuilder();
  const w = (name: string): HostTensor => weights.get(name)!;
  const H = spec.numHeads;
  const Hkv = spec.numKvHeads;
  const D = spec.headDim;
  const R = H / Hkv;
  if (!Number.isInteger(R)) throw new Error(`exportOnnx: numHeads ${H} is not a multiple of numKvHeads ${Hkv}`);
  const nl = spec.layers.length;

  // ---- dynamic sizes and the attention mask [B, 1, 1, S, T] (true = blocked)
  const S = g.op('Gather', [g.op('Shape', ['input_ids']), g.i64([1], true)], { axis: 0 });
  const T = g.op('Gather', [g.op('Shape', ['attention_mask']), g.i64([1], true)], { axis: 0 });
  const P = g.op('Sub', [T, S]);
  const rows = g.op('Unsqueeze', [g.op('Range', [P, T, g.i64([1], true)]), g.i64([1])]); // [S, 1] absolute query positions
  const cols = g.op('Range', [g.i64([0], true), T, g.i64([1], true)]); // [T]
  const future = g.op('Greater', [cols, rows]); // [S, T]
  const pad = g.op('Unsqueeze', [g.op('Equal', ['attention_mask', g.i64([0], true)]), g.i64([1, 2, 3])]); // [B,1,1,1,T]
  const blocked = g.op('Or', [future, pad]); // [B,1,1,S,T]
  const minF = g.f32(-3.4028234663852886e38);

  // ---- embeddings
  const embedName = g.initF32('embed.weight', w('embed.weight').shape, w('embed.weight').data);
  let x = g.op('Gather', [embedName, 'input_ids'], { axis: 0 }); // [B,S,d]
  if (spec.positions === 'learned') {
    const posT = w('pos.weight');
    const pos = g.initF32('pos.weight', posT.shape, posT.data);
    const idx = spec.positionOffset ? g.op('Add', ['position_ids', g.i64([spec.positionOffset], true)]) : 'position_ids';
    x = g.op('Add', [x, g.op('Gather', [pos, idx], { axis: 0 })]);
  }

  // RoPE tables, float64 angles as in the CPU backend (pos * theta^(-2i/D)), HF's rotate_half layout.
  let cos = '';
  let sin = '';
  if (spec.positions === 'rope') {
    const half = D / 2;
    const n = spec.maxPositions;
    const c = new Float32Array(n * D);
    const s = new Float32Array(n * D);
    for (let p = 0; p < n; p++) {
      for (let i = 0; i < half; i++) {
        const ang = p * Math.pow(spec.ropeTheta, (-2 * i) / D);
        c[p * D + i] = c[p * D + i + half] = Math.cos(ang);
        s[p * D + i] = s[p * D + i + half] = Math.sin(ang);
      }
    }
    const ct = g.initF32('rope.cos', [n, D], c);
    const st = g.initF32('rope.sin', [n, D], s);
    cos = g.op('Unsqueeze', [g.op('Gather', [ct, 'position_ids'], { axis: 0 }), g.i64([1])]); // [B,1,S,D]
    sin = g.op('Unsqueeze', [g.op('Gather', [st, 'position_ids'], { axis: 0 }), g.i64([1])]);
  }
  const rope = (t: string): string => {
    const half = D / 2;
    const x1 = g.op('Slice', [t, g.i64([0]), g.i64([half]), g.i64([3])]);
    const x2 = g.op('Slice', [t, g.i64([half]), g.i64([D]), g.i64([3])]);
    const rot = g.op('Concat', [g.op('Neg', [x2]), x1], { axis: 3 });
    return g.op('Add', [g.op('Mul', [t, cos]), g.op('Mul', [rot, sin])]);
  };

  const norm = (t: string, prefix: string): string => {
    const wt = g.initF32(`${prefix}.weight`, w(`${prefix}.weight`).shape, w(`${prefix}.weight`).data);
    if (spec.norm === 'layernorm') {
      const bt = weights.get(`${prefix}.bias`);
      const bn = bt
        ? g.initF32(`${prefix}.bias`, bt.shape, bt.data)
        : g.initF32(`${prefix}.bias`, w(`${prefix}.weight`).shape, new Float32Array(w(`${prefix}.weight`).data.length));
      return g.op('LayerNormalization', [t, wt, bn], { axis: -1, epsilon: { float: spec.normEps } });
    }
    const ms = g.op('ReduceMean', [g.op('Mul', [t, t])], { axes: [-1], keepdims: 1 });
    const rs = g.op('Sqrt', [g.op('Add', [ms, g.f32(spec.normEps)])]);
    return g.op('Mul', [g.op('Div', [t, rs]), wt]);
  };

  const linear = (t: string, name: string): string => {
    const dense = weights.get(`${name}.weight`);
    let y: string;
    if (dense) {
      const [o, i] = dense.shape as [number, number];
      y = g.op('MatMul', [t, g.initF32(`${name}.weight_T`, [i, o], transposeHost(dense))]);
    } else {
      const A = w(`${name}.weight_a`); // [out, r]
      const B = w(`${name}.weight_b`); // [r, in]
      const [o, r] = A.shape as [number, number];
      const i = B.shape[1]!;
      const xb = g.op('MatMul', [t, g.initF32(`${name}.weight_b_T`, [i, r], transposeHost(B))]);
      y = g.op('MatMul', [xb, g.initF32(`${name}.weight_a_T`, [r, o], transposeHost(A))]);
    }
    const b = weights.get(`${name}.bias`);
    if (b) y = g.op('Add', [y, g.initF32(`${name}.bias`, b.shape, b.data)]);
    return y;
  };

  const act = (t: string, kind: ActivationKind): string => {
    switch (kind) {
      case 'relu':
        return g.op('Relu', [t]);
      case 'silu':
        return g.op('Mul', [t, g.op('Sigmoid', [t])]);
      case 'gelu_erf': {
        const e = g.op('Erf', [g.op('Mul', [t, g.f32(Math.SQRT1_2)])]);
        return g.op('Mul', [g.op('Mul', [t, g.f32(0.5)]), g.op('Add', [e, g.f32(1)])]);
      }
      case 'gelu_tanh': {
        const t3 = g.op('Mul', [g.op('Mul', [t, t]), t]);
        const inner = g.op('Mul', [g.op('Add', [t, g.op('Mul', [t3, g.f32(0.044715)])]), g.f32(Math.sqrt(2 / Math.PI))]);
        return g.op('Mul', [g.op('Mul', [t, g.f32(0.5)]), g.op('Add', [g.op('Tanh', [inner]), g.f32(1)])]);
      }
    }
  };

  const { mlp } = projsOf(spec);
  const scale = g.f32(1 / Math.sqrt(D));
  for (let i = 0; i < nl; i++) {
    const L = `layers.${i}`;
    const h = norm(x, `${L}.ln1`);
    const heads = (t: string, n: number): string => g.op('Transpose', [g.op('Reshape', [t, g.i64([0, 0, n, D])])], { perm: [0, 2, 1, 3] }); // [B,n,S,D]
    let q = heads(linear(h, `${L}.attn.q`), H);
    let k = heads(linear(h, `${L}.attn.k`), Hkv);
    const v = heads(linear(h, `${L}.attn.v`), Hkv);
    if (spec.positions === 'rope') {
      q = rope(q);
      k = rope(k);
    }
    const kAll = g.op('Concat', [`past_key_values.${i}.key`, k], { axis: 2 }, `present.${i}.key`); // [B,Hkv,T,D]
    const vAll = g.op('Concat', [`past_key_values.${i}.value`, v], { axis: 2 }, `present.${i}.value`);
    const q5 = g.op('Reshape', [q, g.i64([0, Hkv, R, -1, D])]); // [B,Hkv,R,S,D]
    const k5 = g.op('Transpose', [g.op('Unsqueeze', [kAll, g.i64([2])])], { perm: [0, 1, 2, 4, 3] }); // [B,Hkv,1,D,T]
    let sc = g.op('Mul', [g.op('MatMul', [q5, k5]), scale]); // [B,Hkv,R,S,T]
    sc = g.op('Where', [blocked, minF, sc]);
    const p = g.op('Softmax', [sc], { axis: -1 });
    const o5 = g.op('MatMul', [p, g.op('Unsqueeze', [vAll, g.i64([2])])]); // [B,Hkv,R,S,D]
    const o4 = g.op('Transpose', [g.op('Reshape', [o5, g.i64([0, H, -1, D])])], { perm: [0, 2, 1, 3] }); // [B,S,H,D]
    const a = g.op('Reshape', [o4, g.i64([0, 0, H * D])]);
    x = g.op('Add', [x, linear(a, `${L}.attn.o`)]);

    const h2 = norm(x, `${L}.ln2`);
    let m: string;
    if (mlp.includes('gate')) {
      const u = linear(h2, `${L}.mlp.up`);
      m = g.op('Mul', [act(linear(h2, `${L}.mlp.gate`), spec.activation), u]);
    } else {
      m = act(linear(h2, `${L}.mlp.up`), spec.activation);
    }
    x = g.op('Add', [x, linear(m, `${L}.mlp.down`)]);
  }
  const xf = norm(x, 'norm');
  let headT: string;
  if (spec.tieWordEmbeddings) {
    headT = g.op('Transpose', [embedName], { perm: [1, 0] });
  } else {
    const lm = w('lm_head.weight');
    headT = g.initF32('lm_head.weight_T', [lm.shape[1]!, lm.shape[0]!], transposeHost(lm));
  }
  g.op('MatMul', [xf, headT], {}, 'logits');

  const { past, present } = cacheNames(nl);
  const inputs: IValueInfo[] = [
    valueInfo('input_ids', DT.INT64, ['batch_size', 'sequence_length']),
    valueInfo('attention_mask', DT.INT64, ['batch_size', 'total_sequence_length']),
    valueInfo('position_ids', DT.INT64, ['batch_size', 'sequence_length']),
    ...past.map((n) => valueInfo(n, DT.FLOAT, ['batch_size', Hkv, 'past_sequence_length', D])),
  ];
  const outputs: IValueInfo[] = [
    valueInfo('logits', DT.FLOAT, ['batch_size', 'sequence_length', spec.vocabSize]),
    ...present.map((n) => valueInfo(n, DT.FLOAT, ['batch_size', Hkv, 'total_sequence_length', D])),
  ];
  const meta: Record<string, string> = {
    'gradot.model_type': spec.modelType,
    'gradot.layers': JSON.stringify(spec.layers),
    ...opts.metadata,
  };
  return {
    irVersion: ONNX_IR_VERSION,
    opsetImport: [{ domain: '', version: ONNX_OPSET }],
    producerName: 'gradot-studio',
    producerVersion: '0.1.0',
    docString: opts.docString ?? '',
    metadataProps: Object.entries(meta).map(([key, value]) => ({ key, value })),
    graph: {
      name: `gradot_${spec.modelType}_decoder`,
      node: g.nodes,
      initializer: g.initializers,
      input: inputs,
      output: outputs,
    },
  };
}

/** Serialises a ModelProto; throws for models past protobuf's 2 GiB message limit. */
export function encodeOnnxModel(model: OnnxNamespace.IModelProto): Uint8Array {
  let bytes = 0;
  for (const t of model.graph?.initializer ?? []) bytes += t.rawData?.length ?? 0;
  if (bytes > MAX_PROTO_BYTES) {
    throw new Error(`exportOnnx: ${(bytes / 2 ** 30).toFixed(2)} GiB of weights exceeds protobuf's 2 GiB limit: export with externalData`);
  }
  return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
}

/** External data file names as transformers.js expects them for `model.onnx`. */
export function externalDataNames(modelFile: string, chunks: number): string[] {
  return Array.from({ length: chunks }, (_, i) => `${modelFile}_data${i === 0 ? '' : `_${i}`}`);
}

const EXTERNAL_ALIGN = 4096; // onnx.save's alignment for external tensors (page-aligned for mmap)
const EXTERNAL_MIN_BYTES = 1024; // small tensors (norms, constants) stay in the graph, as onnx.save does

/**
 * Moves float initializers into external data chunks (in place): each gets data_location EXTERNAL and
 * location/offset/length entries. Returns the chunk contents, named for `modelFile`.
 */
export function moveToExternalData(
  model: OnnxNamespace.IModelProto,
  modelFile: string,
  chunkBytes = 1.5 * 2 ** 30,
): { name: string; bytes: Uint8Array }[] {
  const inits = (model.graph?.initializer ?? []).filter((t) => t.dataType === DT.FLOAT && (t.rawData?.length ?? 0) >= EXTERNAL_MIN_BYTES);
  const chunks: { tensors: ITensor[]; size: number }[] = [];
  for (const t of inits) {
    const n = t.rawData!.length;
    let cur = chunks[chunks.length - 1];
    const at = cur ? Math.ceil(cur.size / EXTERNAL_ALIGN) * EXTERNAL_ALIGN : 0;
    if (!cur || (cur.size > 0 && at + n > chunkBytes)) {
      cur = { tensors: [], size: 0 };
      chunks.push(cur);
    }
    const offset = Math.ceil(cur.size / EXTERNAL_ALIGN) * EXTERNAL_ALIGN;
    cur.tensors.push(t);
    (t as { _offset?: number })._offset = offset;
    cur.size = offset + n;
  }
  const names = externalDataNames(modelFile, chunks.length);
  return chunks.map((c, i) => {
    const bytes = new Uint8Array(c.size);
    for (const t of c.tensors) {
      const off = (t as { _offset?: number })._offset!;
      delete (t as { _offset?: number })._offset;
      bytes.set(t.rawData!, off);
      t.externalData = [
        { key: 'location', value: names[i]! },
        { key: 'offset', value: String(off) },
        { key: 'length', value: String(t.rawData!.length) },
      ];
      t.dataLocation = 1; // TensorProto.DataLocation.EXTERNAL
      t.rawData = null;
    }
    return { name: names[i]!, bytes };
  });
}

export interface OnnxFiles {
  /** The graph (model.onnx). */
  model: Uint8Array;
  /** External data files, in order (empty when the weights are inside the graph). */
  data: { name: string; bytes: Uint8Array }[];
}

/** The model as ONNX files: the graph and, when `externalData` asks for it, its external data chunks. */
export function exportOnnxFiles(spec: ModelSpec, weights: WeightMap, opts: OnnxExportOptions = {}, modelFile = 'model.onnx'): OnnxFiles {
  const model = buildOnnxModel(spec, weights, opts);
  let total = 0;
  for (const t of model.graph?.initializer ?? []) total += t.rawData?.length ?? 0;
  const mode = opts.externalData ?? 'auto';
  const external = mode === true || (mode === 'auto' && total > MAX_PROTO_BYTES - 64 * 2 ** 20);
  const data = external ? moveToExternalData(model, modelFile, opts.externalChunkBytes) : [];
  return { model: encodeOnnxModel(model), data };
}

/** The model as ONNX bytes (model.onnx), weights inside the graph. */
export function exportOnnx(spec: ModelSpec, weights: WeightMap, opts: OnnxExportOptions = {}): Uint8Array {
  const f = exportOnnxFiles(spec, weights, opts);
  if (f.data.length) throw new Error('exportOnnx: this model has external data (past 2 GiB, or asked for); use exportOnnxFiles');
  return f.model;
}

/** Parses ONNX bytes back into a ModelProto (for inspection and tests). */
export function decodeOnnxModel(bytes: Uint8Array): OnnxNamespace.ModelProto {
  return onnx.ModelProto.decode(bytes);
}

// ---------------------------------------------------------------------------------------------------------
// transformers.js folder

export interface TransformersJsExportOptions extends OnnxExportOptions {
  /** The original config.json, for bos/eos/pad ids and other keys to keep. */
  baseConfig?: HFConfig;
  /** tokenizer.json, tokenizer_config.json (and any other files) to copy into the folder as-is. */
  extraFiles?: Map<string, Uint8Array> | Record<string, Uint8Array | string>;
  /** generation_config.json overrides. */
  generationConfig?: Record<string, unknown>;
}

/**
 * What transformers.js needs to run the exported model with AutoModelForCausalLM / pipeline:
 * config.json (HF keys; transformers.js reads model_type for the class, and num layers / heads / kv heads
 * / head_dim only to name and size the empty KV cache), generation_config.json, onnx/model.onnx, and the
 * tokenizer files passed in `extraFiles`.
 *
 * Compressed emulators: the per-layer structure (ranks, pruned widths, dropped-block sources) lives in the
 * ONNX graph and in config.json's `gradot` block, which transformers.js ignores; the HF keys describe the
 * kept number of layers with uncompressed widths, which is all the cache needs (heads and head_dim are
 * never compressed). So full, emulator and plug-in models all load. What does NOT load an emulator from
 * this folder is Python transformers from config.json alone (it would build dense layers): use our
 * safetensors export for that.
 */
export function exportTransformersJsFolder(
  spec: ModelSpec,
  weights: WeightMap,
  opts: TransformersJsExportOptions = {},
): Map<string, Uint8Array> {
  const enc = new TextEncoder();
  const base = opts.baseConfig ?? {};
  const config = hfConfigFromSpec(spec, base);
  config.torch_dtype = 'float32';
  config.use_cache = true;
  const onnxFiles = exportOnnxFiles(spec, weights, opts);
  config['transformers.js_config'] = {
    dtype: 'fp32',
    use_external_data_format: onnxFiles.data.length === 0 ? false : onnxFiles.data.length,
  };
  const files = new Map<string, Uint8Array>();
  files.set('config.json', enc.encode(JSON.stringify(config, null, 2) + '\n'));
  const gen: Record<string, unknown> = {};
  for (const k of ['bos_token_id', 'eos_token_id', 'pad_token_id'] as const)
    if (base[k] !== undefined && base[k] !== null) gen[k] = base[k];
  Object.assign(gen, opts.generationConfig ?? {});
  files.set('generation_config.json', enc.encode(JSON.stringify(gen, null, 2) + '\n'));
  const extra = opts.extraFiles instanceof Map ? [...opts.extraFiles] : Object.entries(opts.extraFiles ?? {});
  for (const [k, v] of extra) files.set(k, typeof v === 'string' ? enc.encode(v) : v);
  files.set('onnx/model.onnx', onnxFiles.model);
  for (const d of onnxFiles.data) files.set(`onnx/${d.name}`, d.bytes);
  return files;
}
