/**
 * `gradot inspect MODEL_DIR | EMULATOR_DIR | EMULATOR.zip`: architecture and parameter counts from
 * config.json (or emulator.json) and the safetensors headers only (no tensor data is decoded, so it is
 * instant on large checkpoints), with every tensor's shape validated against the spec.
 */
import { checkCanonicalHeader, checkTokenizerVocab, planHFLoad, isCompressed } from '../../model/hf';
import { SafetensorsReader } from '../../model/safetensors';
import type { ModelSpec } from '../../model/spec';
import { openSource, readEmulatorMeta } from '../open';
import { paramCounts } from '../../model/params';
import { loadTokenizer, tokenizerFiles } from '../../model/tokenizer';
import { parseCommandArgs, formatBytes, formatCount, table } from '../args';
import type { Command, CommandResult } from '../command';

export interface InspectResult extends Record<string, unknown> {
  path: string;
  /** 'hf': a Hugging Face folder; 'emulator': a GradOT emulator package (folder or .zip). */
  kind: 'hf' | 'emulator';
  emulator?: {
    modelId: string;
    method: string;
    keep: number;
    split: { bottom: number; top: number };
    lambdaAttn: number;
    lambdaMlp: number;
    sourceLayers: number;
    sourceParams: number;
    keptBlocks: number[];
    middleParamsBefore: number;
    middleParamsAfter: number;
  };
  family: string;
  modelType: string;
  layers: number;
  hidden: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  intermediate: number;
  vocab: number;
  positions: { kind: 'learned' | 'rope'; max: number; offset: number; ropeTheta?: number };
  norm: string;
  normEps: number;
  activation: string;
  gatedMlp: boolean;
  bias: { qkv: boolean; o: boolean; mlp: boolean };
  tied: boolean;
  compressed: boolean;
  params: {
    total: number;
    embeddings: number;
    lmHead: number;
    finalNorm: number;
    blocks: {
      index: number;
      source: number;
      attention: number;
      mlp: number;
      norms: number;
      total: number;
      mlpWidth: number;
      ranks: Record<string, number>;
    }[];
  };
  dtypes: string[];
  files: { name: string; size: number }[];
  fileBytes: number;
  tensors: number;
  /** With --tensors: every model tensor as stored (file name, dtype, shape) and its canonical name(s). */
  tensorList?: { name: string; canonical: string[]; dtype: string; shape: number[]; file: string }[];
  tokenizer: { files: string; vocabSize: number; bosId: number | null; eosId: number | null } | null;
  warnings: string[];
}

export async function inspectModel(dir: string, opts: { tensors?: boolean } = {}): Promise<InspectResult> {
  const src = await openSource(dir);
  let spec: ModelSpec;
  let files: { name: string; size: number }[];
  let dtypes: string[];
  let tensors: number;
  let warnings: string[];
  let emulator: InspectResult['emulator'];
  let tensorList: InspectResult['tensorList'];
  if (await src.has('emulator.json')) {
    const meta = await readEmulatorMeta(src);
    spec = meta.spec;
    const r = await SafetensorsReader.open(src, 'emulator.safetensors');
    const chk = checkCanonicalHeader(spec, r.header.entries, 'emulator.safetensors');
    files = [
      { name: 'emulator.json', size: await src.size('emulator.json') },
      { name: 'emulator.safetensors', size: r.header.fileSize },
    ];
    dtypes = chk.dtypes;
    tensors = r.header.entries.size;
    if (opts.tensors) {
      tensorList = [...r.header.entries].map(([name, e]) => ({
        name,
        canonical: [name],
        dtype: e.dtype,
        shape: e.shape,
        file: 'emulator.safetensors',
      }));
    }
    warnings = chk.warnings;
    emulator = {
      modelId: meta.source.modelId,
      method: meta.method,
      keep: meta.keep,
      split: meta.split,
      lambdaAttn: meta.lambdaAttn,
      lambdaMlp: meta.lambdaMlp,
      sourceLayers: meta.source.numLayers,
      sourceParams: meta.source.params,
      keptBlocks: meta.budget.keptBlocks,
      middleParamsBefore: meta.budget.paramsBefore,
      middleParamsAfter: meta.budget.paramsAfter,
    };
  } else {
    const plan = await planHFLoad(src);
    spec = plan.spec;
    files = plan.files;
    dtypes = plan.dtypes;
    tensors = plan.mappings.length;
    if (opts.tensors) {
      tensorList = plan.mappings.map((m) => {
        const t = plan.tensors.get(m.hf)!;
        return { name: m.hf, canonical: m.canonical, dtype: t.dtype, shape: t.shape, file: t.file };
      });
    }
    warnings = [...plan.warnings];
  }
  const s = spec;
  const p = paramCounts(s);
  const fileBytes = files.reduce((a, f) => a + f.size, 0);
  let tokenizer: InspectResult['tokenizer'] = null;
  const tf = await tokenizerFiles(src);
  if (tf) {
    try {
      const t = await loadTokenizer(src);
      tokenizer = { files: tf, vocabSize: t.vocabSize, bosId: t.bosId, eosId: t.eosId };
      if (t.vocabSize > s.vocabSize) warnings.push(`tokenizer has ${t.vocabSize} ids but the model's vocab_size is ${s.vocabSize}`);
    } catch (e) {
      warnings.push(`tokenizer could not be loaded: ${(e as Error).message}`);
    }
    // inspect reports rather than refuses; far fewer ids than rows is flagged too (another model's tokenizer).
    const w = tokenizer && tokenizer.vocabSize <= s.vocabSize ? checkTokenizerVocab(tokenizer.vocabSize, s) : null;
    if (w) warnings.push(w);
  }
  return {
    path: dir,
    kind: emulator ? 'emulator' : 'hf',
    ...(emulator ? { emulator } : {}),
    family: s.family,
    modelType: s.modelType,
    layers: s.layers.length,
    hidden: s.hiddenSize,
    heads: s.numHeads,
    kvHeads: s.numKvHeads,
    headDim: s.headDim,
    intermediate: s.intermediateSize,
    vocab: s.vocabSize,
    positions:
      s.positions === 'rope'
        ? { kind: 'rope', max: s.maxPositions, offset: s.positionOffset, ropeTheta: s.ropeTheta }
        : { kind: 'learned', max: s.maxPositions, offset: s.positionOffset },
    norm: s.norm,
    normEps: s.normEps,
    activation: s.activation,
    gatedMlp: s.gatedMlp,
    bias: { qkv: s.qkvBias, o: s.oBias, mlp: s.mlpBias },
    tied: s.tieWordEmbeddings,
    compressed: isCompressed(s),
    params: {
      total: p.total,
      embeddings: p.embeddings,
      lmHead: p.lmHead,
      finalNorm: p.finalNorm,
      blocks: p.blocks.map((b) => ({
        index: b.index,
        source: b.source,
        attention: b.attention,
        mlp: b.mlp,
        norms: b.norms,
        total: b.total,
        mlpWidth: b.mlpWidth,
        ranks: { ...b.ranks } as Record<string, number>,
      })),
    },
    dtypes,
    files,
    fileBytes,
    tensors,
    ...(tensorList ? { tensorList } : {}),
    tokenizer,
    warnings,
  };
}

export function renderInspect(r: InspectResult): string {
  const e = r.emulator;
  const kv: [string, string][] = [
    ['model', `${r.modelType} (family ${r.family})${r.compressed ? ', compressed' : ''}${e ? ', GradOT emulator package' : ''}`],
    ...(e
      ? ([
          ['source model', `${e.modelId} (${e.sourceLayers} blocks, ${formatCount(e.sourceParams)} params)`],
          ['method', `${e.method}, keep ${e.keep}, adapters ${e.split.bottom}:${e.split.top}, λ attn ${e.lambdaAttn} / mlp ${e.lambdaMlp}`],
          [
            'middle',
            `${formatCount(e.middleParamsAfter)} of ${formatCount(e.middleParamsBefore)} params kept; source blocks ${e.keptBlocks.join(', ') || '-'}`,
          ],
        ] as [string, string][])
      : []),
    ['layers', String(r.layers)],
    ['hidden', String(r.hidden)],
    ['heads', r.kvHeads === r.heads ? `${r.heads} (head dim ${r.headDim})` : `${r.heads} q / ${r.kvHeads} kv (head dim ${r.headDim})`],
    ['intermediate', `${r.intermediate}${r.gatedMlp ? ' (gated)' : ''}, ${r.activation}`],
    ['vocab', String(r.vocab)],
    [
      'positions',
      r.positions.kind === 'rope'
        ? `rope, theta ${r.positions.ropeTheta}, max ${r.positions.max}`
        : `learned, max ${r.positions.max}${r.positions.offset ? `, offset ${r.positions.offset}` : ''}`,
    ],
    ['norm', `${r.norm}, eps ${r.normEps}`],
    ['bias', `qkv ${r.bias.qkv ? 'yes' : 'no'}, o ${r.bias.o ? 'yes' : 'no'}, mlp ${r.bias.mlp ? 'yes' : 'no'}`],
    ['tied lm_head', r.tied ? 'yes' : 'no'],
    ['dtypes', r.dtypes.join(', ')],
    ['files', `${r.files.map((f) => f.name).join(', ')} (${formatBytes(r.fileBytes)})`],
    [
      'tokenizer',
      r.tokenizer
        ? `${r.tokenizer.files}, ${r.tokenizer.vocabSize} ids, bos ${r.tokenizer.bosId ?? '-'}, eos ${r.tokenizer.eosId ?? '-'}`
        : 'none',
    ],
    ['parameters', `${formatCount(r.params.total)} (${r.params.total.toLocaleString('en-US')})`],
    ['  embeddings', formatCount(r.params.embeddings)],
    ['  lm_head', r.params.lmHead ? formatCount(r.params.lmHead) : 'tied'],
  ];
  const w = Math.max(...kv.map(([k]) => k.length));
  const head = kv.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n');
  const showStruct = r.compressed;
  const rows = r.params.blocks.map((b) => {
    const row: (string | number)[] = [b.index, formatCount(b.attention), formatCount(b.mlp), formatCount(b.total)];
    if (showStruct) {
      const ranks = Object.entries(b.ranks)
        .map(([k, v]) => `${k}:${v}`)
        .join(' ');
      row.push(b.source, b.mlpWidth, ranks || '-');
    }
    return row;
  });
  const hdr = ['block', 'attention', 'mlp', 'total', ...(showStruct ? ['source', 'mlp width', 'ranks'] : [])];
  const tl = r.tensorList
    ? '\n\n' +
      table(
        ['tensor', 'canonical', 'dtype', 'shape', 'file'],
        r.tensorList.map((t) => [t.name, t.canonical.join(' | '), t.dtype, `[${t.shape.join(', ')}]`, t.file]),
      )
    : '';
  const warn = r.warnings.length ? '\n\nwarnings:\n' + r.warnings.map((x) => `  ${x}`).join('\n') : '';
  return `${head}\n\n${table(hdr, rows)}${tl}${warn}`;
}

export const command: Command = {
  name: 'inspect',
  summary:
    'Architecture, layers, widths and parameter counts of a Hugging Face model folder (config.json + safetensors) or a GradOT emulator package.',
  usage: 'gradot inspect MODEL_DIR|EMULATOR_DIR|EMULATOR.zip [--tensors] [--json]',
  async run(argv, ctx): Promise<CommandResult> {
    const { positionals, options } = parseCommandArgs(argv, { tensors: { type: 'boolean' } }, { min: 1, max: 1 });
    const path = await import('node:path');
    const r = await inspectModel(path.resolve(ctx.cwd, positionals[0]!), { tensors: options.tensors === true });
    if (ctx.json) for (const w of r.warnings) ctx.err(`warning: ${w}`);
    return { json: r, text: renderInspect(r) };
  },
};
