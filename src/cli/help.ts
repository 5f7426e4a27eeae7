/**
 * `gradot <command> --help`: one line per option with its default, and examples. Kept apart from the
 * commands so their code stays about doing the work; a test checks every option a command parses is
 * documented here (and nothing else is).
 */
import { TUNE_DEFAULTS } from '../jobs/tune-defaults';

export interface OptionHelp {
  /** As typed: "--keep F". */
  flag: string;
  text: string;
  /** Shown as "(default: …)"; absent for required options and plain switches. */
  default?: string;
}

export interface CommandHelp {
  options: OptionHelp[];
  examples: string[];
}

const DATA = 'a file (JSONL, CSV or TXT) or a bundled task NAME under public/data';

const TOKENIZER: OptionHelp[] = [
  {
    flag: '--tokenizer DIR',
    text: 'folder with tokenizer.json (emulator packages built by the studio carry theirs)',
    default: "the model's",
  },
  { flag: '--bos', text: 'start every sequence with the beginning-of-text token', default: 'on for LLaMA-family models' },
  { flag: '--no-bos', text: 'never add the beginning-of-text token' },
];

/** Every compute command (compress, tune, eval, plug, ot, bench's train section); see src/cli/backend.ts. */
const BACKEND: OptionHelp = {
  flag: '--backend B',
  text:
    'cpu; webgpu (WebGPU through Dawn, the optional `webgpu` package: a GPU server; a software adapter runs with a warning); ' +
    'auto (WebGPU on a hardware adapter, else the CPU, saying why). The job prints "backend: …" saying what runs',
  default: 'GRADOT_BACKEND, else cpu',
};

const TUNE: OptionHelp[] = [
  {
    flag: '--lr X',
    text: 'peak learning rate',
    default: `${TUNE_DEFAULTS.full.lr} (full adapter blocks), ${TUNE_DEFAULTS.lora.lr} with --lora (chosen on the bundled tasks' validation splits)`,
  },
  { flag: '--epochs N', text: 'passes over the training data', default: String(TUNE_DEFAULTS.full.epochs) },
  { flag: '--steps N', text: 'optimizer steps instead of --epochs' },
  { flag: '--batch B', text: 'sequences per step', default: String(TUNE_DEFAULTS.full.batch) },
  { flag: '--accum K', text: 'gradient accumulation steps', default: '1' },
  { flag: '--schedule S', text: 'learning-rate schedule: linear, cosine or constant', default: 'linear' },
  { flag: '--warmup N', text: 'warm-up steps' },
  { flag: '--warmup-ratio F', text: 'warm-up as a fraction of all steps' },
  { flag: '--weight-decay W', text: 'AdamW weight decay', default: '0' },
  { flag: '--clip C', text: 'gradient-norm clip (0 = off)', default: '1' },
  { flag: '--seed S', text: 'seed for shuffling, the validation split and LoRA init', default: '0' },
  { flag: '--eval-every N', text: 'validate every N steps (best-validation weights are kept)', default: 'once per epoch' },
  { flag: '--checkpoint-every N', text: 'resumable checkpoint every N steps', default: 'at each validation' },
  { flag: '--eval-batch B', text: 'sequences per evaluation batch', default: 'the training batch' },
  { flag: '--lora R', text: 'train LoRA of rank R on the adapter blocks instead of the blocks themselves' },
  { flag: '--lora-alpha A', text: 'LoRA scaling numerator', default: '2 × rank' },
  { flag: '--lora-targets L', text: 'comma-separated linears for LoRA (q,k,v,o,gate,up,down)', default: 'q,v' },
  { flag: '--context C', text: 'training context length in tokens', default: "the model's maximum" },
  { flag: '--valid-fraction F', text: 'share of the training file held out for validation when no --valid', default: '0.05' },
  ...TOKENIZER,
];

export const HELP: Record<string, CommandHelp> = {
  inspect: {
    options: [{ flag: '--tensors', text: 'also list every tensor (name, dtype, shape)' }],
    examples: ['gradot inspect public/models/demo', 'gradot inspect out/demo-gradot.zip --tensors'],
  },
  compress: {
    options: [
      { flag: '--method M', text: 'gradot, drop (layer drop, OT†), svd, prune or none' },
      { flag: '--keep F', text: 'fraction of the middle blocks’ parameters kept, in (0, 1]' },
      { flag: '--support DATA', text: `support text for the gradient pass: ${DATA} (its train.jsonl)` },
      { flag: '--out DIR', text: 'where the emulator package is written (never over the model)' },
      { flag: '--adapters L:R', text: 'bottom:top blocks kept whole for the data owner to tune', default: '2:2' },
      { flag: '--lambda-attn X', text: 'weight of the first-order loss term in the attention score (GradOT)', default: '1' },
      { flag: '--lambda-mlp Y', text: 'weight of the first-order loss term in the MLP score (GradOT)', default: '1' },
      {
        flag: '--lambda-mode M',
        text: 'balanced (λ scaled per matrix so λ = 1 weighs both terms equally), or raw (the formula as written; λ ≈ 0 in effect)',
        default: 'balanced',
      },
      { flag: '--attn-keep F', text: 'GradOT: fraction kept in attention (the MLP gets the rest of the budget)' },
      { flag: '--mlp M', text: 'GradOT MLP compression: scp (channel slicing) or drd (low rank)', default: "GradOT's" },
      { flag: '--rank-allocation A', text: 'GradOT ranks: uniform per matrix or global across matrices', default: "GradOT's" },
      { flag: '--support-batches N', text: 'support batches in the gradient pass', default: '8' },
      { flag: '--batch B', text: 'sequences per support batch', default: '4' },
      { flag: '--seq T', text: 'support sequence length in tokens', default: 'min(128, model maximum)' },
      {
        flag: '--heldout DATA|none',
        text: `held-out text for the gradient-shift figure: ${DATA} (its valid.jsonl)`,
        default: 'the last examples of --support',
      },
      { flag: '--heldout-batches N', text: 'held-out batches', default: '4' },
      { flag: '--seed S', text: 'seed (random choices of the baselines)', default: '0' },
      { flag: '--zip', text: 'write one .zip instead of a folder' },
      {
        flag: '--memory-budget SIZE',
        text: 'memory for support statistics and SVD factors beyond the model (e.g. 2GB); blocks are processed in groups under it',
        default: '1GB',
      },
      { flag: '--f32', text: "write the package in F32 instead of the model's own dtype (F16/BF16 stay F16/BF16)" },
      { flag: '--force', text: 'write into an output folder that holds unrelated files (never one that is an input)' },
      BACKEND,
      ...TOKENIZER,
    ],
    examples: [
      'gradot compress public/models/demo --method gradot --keep 0.3 --support genre-short-mc --out out/demo-gradot',
      'gradot compress public/models/demo --method svd --keep 0.5 --support my-text.jsonl --out out/demo-svd.zip --zip',
      'gradot compress model-dir --method gradot --keep 0.5 --support my-text.jsonl --out out/emu --backend webgpu',
    ],
  },
  tune: {
    options: [
      { flag: '--train DATA', text: `training data: ${DATA} (its train.jsonl)` },
      { flag: '--valid DATA', text: `validation data: ${DATA} (its valid.jsonl)`, default: 'a --valid-fraction split of --train' },
      { flag: '--out DIR', text: 'where the adapters (and checkpoints) are written' },
      { flag: '--adapters L:R', text: 'adapter split for a plain model (packages record theirs)', default: '2:2' },
      { flag: '--force', text: 'write into an output folder that holds unrelated files (never one that is an input)' },
      BACKEND,
      ...TUNE,
    ],
    examples: [
      'gradot tune out/demo-gradot --train genre-short-mc --out out/adapters',
      'gradot tune out/demo-gradot --train data.jsonl --lora 8 --lr 5e-3 --out out/lora',
    ],
  },
  eval: {
    options: [
      { flag: '--task DATA', text: `evaluation data: ${DATA} (its test.jsonl)` },
      { flag: '--adapter DIR', text: 'apply tuned adapters first' },
      { flag: '--runtime R', text: 'engine, or ort (through the ONNX export in onnxruntime)', default: 'engine' },
      { flag: '--batch B', text: 'sequences per batch', default: '8' },
      { flag: '--context C', text: 'context length in tokens', default: "the model's maximum" },
      { flag: '--limit N', text: 'first N questions or records only', default: 'all' },
      BACKEND,
      ...TOKENIZER,
    ],
    examples: [
      'gradot eval public/models/demo --task genre-short-mc --limit 200',
      'gradot eval out/demo-gradot --adapter out/adapters --task test.jsonl',
    ],
  },
  plug: {
    options: [
      { flag: '--adapter DIR', text: 'adapters tuned on the emulator' },
      { flag: '--out DIR', text: 'where the full model with the adapters plugged in is written' },
      { flag: '--dtype T', text: 'weights dtype of the output: F32, F16 or BF16', default: 'F32' },
      { flag: '--force', text: 'plug in adapters made for other weights, or write into a folder holding unrelated files' },
      { ...BACKEND, text: `${BACKEND.text} (merges LoRA factors; block adapters are copied on the host)` },
    ],
    examples: ['gradot plug public/models/demo --adapter out/adapters --out out/demo-plugged'],
  },
  ot: {
    options: [
      {
        flag: '--method M[,M…]',
        text: 'one or more of gradot, drop, svd, prune, none, gradot-paper (gradot with the paper’s layout: SCP MLP channels, uniform ranks), compared side by side',
      },
      { flag: '--keep F', text: 'fraction of the middle blocks’ parameters kept, in (0, 1]' },
      { flag: '--task NAME|DIR', text: 'a bundled task under public/data or a folder with train/test(/valid).jsonl' },
      { flag: '--adapters L:R', text: 'bottom:top adapter blocks', default: '2:2' },
      { flag: '--full-ft', text: 'also fine-tune the full model’s adapter blocks (the fifth number)' },
      { flag: '--out DIR', text: 'write the report (JSON) and artifacts there' },
      { flag: '--support DATA', text: `support text for GradOT: ${DATA}`, default: "the task's train.jsonl" },
      { flag: '--support-examples N', text: 'support examples in the gradient pass', default: '64' },
      { flag: '--support-len T', text: 'support sequence length', default: '128' },
      { flag: '--lambda-attn X', text: 'GradOT attention λ', default: '1' },
      { flag: '--lambda-mlp Y', text: 'GradOT MLP λ', default: '1' },
      {
        flag: '--lambda-mode M',
        text: 'balanced (λ scaled per matrix so λ = 1 weighs both terms equally), or raw (the formula as written; λ ≈ 0 in effect)',
        default: 'balanced',
      },
      {
        flag: '--limit-train N',
        text: 'first N training examples; 0 = all',
        default: `${TUNE_DEFAULTS.full.examples} (the default budget)`,
      },
      { flag: '--limit-test N', text: 'first N test questions (quick runs)', default: 'all' },
      { flag: '--seeds S1,S2,…', text: 'run each method once per seed (mean ± spread in the report)', default: '--seed' },
      { flag: '--force', text: 'write into an output folder that holds unrelated files (never one that is an input)' },
      BACKEND,
      ...TUNE,
    ],
    examples: [
      'gradot ot public/models/demo --method gradot,svd,drop --keep 0.3 --task genre-short-mc --limit-train 256 --limit-test 200',
      'gradot ot public/models/demo --method gradot --keep 0.3 --task genre-short-mc --seeds 0,1,2 --full-ft --out out/ot',
    ],
  },
  bench: {
    options: [
      {
        flag: '--only LIST',
        text: 'comma-separated parts: matmul, train, compress, ort, cpu (thread scaling and TF.js peer), svd, scale (hub-shaped models, minutes each)',
        default: 'matmul,train,compress,ort',
      },
      { flag: '--sizes LIST', text: 'matmul sizes', default: '128,256,512' },
      { flag: '--threads N', text: 'CPU backend threads (every command takes it)', default: 'the machine’s cores, at most 8' },
      { flag: '--repeat R', text: 'cpu: keep the best of R interleaved rounds (for a shared machine)', default: '1' },
      { flag: '--models LIST', text: 'scale: hub-shaped models to build and compress', default: 'gpt2,opt-125m' },
      { flag: '--keep F', text: 'scale: fraction kept by the GradOT compress', default: '0.5' },
      { ...BACKEND, text: `train: our training step on this backend (${BACKEND.text})` },
    ],
    examples: [
      'gradot bench',
      'gradot bench --only matmul --sizes 256,512',
      'gradot bench --only cpu --repeat 3',
      'gradot bench --only scale --models gpt2',
      'gradot bench --only train --backend webgpu',
    ],
  },
  'export-onnx': {
    options: [
      { flag: '--out DIR', text: 'where the ONNX folder (transformers.js layout) is written' },
      { flag: '--adapter DIR', text: 'plug these adapters in before exporting' },
      { flag: '--verify', text: 'run the export in onnxruntime and compare logits with the engine', default: 'off' },
      { flag: '--external-data', text: 'weights in a separate .onnx_data file', default: 'off' },
      { flag: '--force', text: 'write into an output folder that holds unrelated files (never one that is an input)' },
    ],
    examples: ['gradot export-onnx public/models/demo --out out/demo-onnx --verify'],
  },
  'make-model': {
    options: [
      { flag: '--seed S', text: 'seed of the random weights', default: '0' },
      { flag: '--force', text: 'write into an output folder that holds unrelated files (never one that is an input)' },
    ],
    examples: ['gradot make-model gpt2 out/gpt2-random', 'gradot make-model qwen2.5-0.5b out/qwen-random --seed 1'],
  },
  'ort-eval': {
    options: [
      { flag: '--task DATA', text: `evaluation data: ${DATA}` },
      { flag: '--adapter DIR', text: 'apply tuned adapters first' },
      { flag: '--batch-size B', text: 'sequences per batch', default: '8' },
      { flag: '--context C', text: 'context length in tokens', default: "the model's maximum" },
      { flag: '--ort-threads N', text: 'onnxruntime intra-op threads', default: "onnxruntime's" },
      { flag: '--compare', text: 'also evaluate on the engine and print both', default: 'off' },
    ],
    examples: ['gradot ort-eval public/models/demo --task public/data/genre-short-mc/test.jsonl --compare'],
  },
};

/** The text `gradot <name> --help` prints. */
export function commandHelpText(name: string, usage: string, summary: string): string {
  const h = HELP[name];
  const lines = [`usage: ${usage}`, '', summary];
  if (!h) return lines.join('\n');
  const w = Math.max(...h.options.map((o) => o.flag.length), 6);
  lines.push('', 'options:');
  for (const o of h.options) lines.push(`  ${o.flag.padEnd(w)}  ${o.text}${o.default ? ` (default: ${o.default})` : ''}`);
  lines.push(`  ${'--json'.padEnd(w)}  print one line of JSON on stdout (progress stays on stderr)`);
  lines.push('', h.examples.length > 1 ? 'examples:' : 'example:', ...h.examples.map((e) => `  ${e}`));
  return lines.join('\n');
}

/** Option names a help entry documents (without "--"), for the completeness test. */
export function documentedOptions(name: string): string[] {
  return (HELP[name]?.options ?? []).map((o) => o.flag.split(/[ [|]/)[0]!.replace(/^--/, ''));
}
