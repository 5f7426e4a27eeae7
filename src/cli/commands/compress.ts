/**
 * `gradot compress MODEL --method M --keep F --support FILE --out DIR`: builds an emulator package
 * (src/jobs/build-emulator.ts, the job the studio runs too) and prints its report.
 *
 * Data: the support file is read by src/data (text, prompt/answer or multiple choice) and used as
 * language-modelling text (prompt+answer, context+correct choice), packed into --seq-token chunks.
 * Held-out batches for the utility figure (adapter-gradient shift, emulator vs full model, and both losses)
 * come from --heldout FILE; without it, the LAST examples of the support file's encoding are set aside as a
 * held-out slice (--heldout-batches × --batch examples, at most half of them) and are never part of the
 * support pass, so the figure is not measured on the data that chose the compression. `--heldout none`
 * skips it.
 *
 * The package folder gets the model's tokenizer.json / tokenizer_config.json too, so the data owner's
 * side (studio, `gradot tune`) can encode its data without the base model; --zip writes one .zip instead.
 */
import { checkCompressOutput } from '../../faults/output-folder';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { COMPRESSION_METHODS, type CompressionMethod } from '../../ot/emulator/budget';
import type { LambdaMode } from '../../ot/emulator/gcs';
import { parseAdapters } from '../../ot/emulator/split';
import { buildEmulatorJob, type BuildEmulatorProgress } from '../../jobs/build-emulator';
import { FolderFactorSpill } from '../../storage/factor-spill';
import { TOKENIZER_FILES } from '../../jobs/data';
import { parseCommandArgs, formatCount, table } from '../args';
import { UsageError, type Command } from '../command';
import { openModel } from '../open';
import { BACKEND_OPTIONS, BACKEND_USAGE, openCliBackend } from '../backend';
import { bosFromOptions, cliTokenizer, readTaskFile, resolveDataPath } from './ot-shared';
import { reclaimHostMemory } from '../../engine/reclaim';
import { entryByteLength, writePackageFolder, writePackageZip } from '../../storage/package-file';

/** "2GB", "1.5 GiB", "512MB", "800000000" -> bytes (GB/MB are binary here, like the budgets they set). */
export function parseBytes(s: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*$/i.exec(s);
  if (!m) throw new Error(`expected a size like 2GB or 512MB, got '${s}'`);
  const unit = (m[2] ?? 'b').toLowerCase()[0]!;
  const mult = { b: 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30 }[unit as 'b' | 'k' | 'm' | 'g'];
  const v = Number(m[1]) * mult;
  if (!(v >= 64 * 2 ** 20)) throw new Error(`at least 64MB, got '${s}'`);
  return v;
}

/** Peak RSS (MB) reached by the end of each phase: recorded when the next phase starts. */
function notePhase(rss: { phase: string; byPhase: Record<string, number> }, next: string): void {
  if (rss.phase === next) return;
  rss.byPhase[rss.phase] = Math.round(process.resourceUsage().maxRSS / 1024);
  // GRADOT_MEMTRACE=1: where the memory is at each phase change (RSS vs typed arrays vs the JS heap).
  if (process.env.GRADOT_MEMTRACE) {
    const m = process.memoryUsage();
    const mb = (x: number) => Math.round(x / 2 ** 20);
    process.stderr.write(
      `memtrace ${rss.phase}->${next}: rss ${mb(m.rss)} heap ${mb(m.heapUsed)} arrayBuffers ${mb(m.arrayBuffers)} external ${mb(m.external)} maxRss ${rss.byPhase[rss.phase]}\n`,
    );
  }
  rss.phase = next;
}

/**
 * Progress lines on stderr: one per phase, then at most one every 5 s with an ETA from the phase's own
 * rate (support: batch × block-group units, with the matrices scored so far; held-out: batches).
 */
function progressLines(ctx: { err: (l: string) => void }, rss: { phase: string; byPhase: Record<string, number> }) {
  let phase = '';
  let phaseStart = 0;
  let last = 0;
  return (p: BuildEmulatorProgress): void => {
    if (p.phase !== phase) {
      phase = p.phase;
      phaseStart = last = p.seconds;
      notePhase(rss, p.phase);
      ctx.err(
        p.phase === 'heldout'
          ? `compress: held-out gradient shift over ${p.total} batch(es)…`
          : `compress: ${p.phase}… (${p.seconds.toFixed(1)}s)`,
      );
      return;
    }
    if (p.done === undefined || !p.total || p.seconds - last < 5) return;
    last = p.seconds;
    const el = p.seconds - phaseStart;
    const eta = p.done > 0 ? (el * (p.total - p.done)) / p.done : NaN;
    const scored = p.toScore ? `, scored ${p.scored}/${p.toScore} matrices` : '';
    ctx.err(
      `compress: ${p.phase} ${p.done}/${p.total}${scored} (${p.seconds.toFixed(1)}s, ETA ${Number.isFinite(eta) ? eta.toFixed(0) + 's' : '?'})`,
    );
  };
}

function intOpt(o: Record<string, unknown>, k: string, d: number, min = 1): number {
  const v = o[k] === undefined ? d : (o[k] as number);
  if (!(Number.isInteger(v) && v >= min)) throw new UsageError(`--${k} expects an integer >= ${min}, got ${v}`);
  return v;
}

export const command: Command = {
  name: 'compress',
  summary: 'build an emulator package (gradot | drop | svd | prune | none) and its report',
  usage:
    'gradot compress MODEL --method gradot|drop|svd|prune|none --keep F --support FILE|NAME --out DIR [--adapters 2:2] ' +
    '[--lambda-attn X] [--lambda-mlp Y] [--lambda-mode raw|balanced] [--attn-keep F] [--mlp scp|drd] [--rank-allocation uniform|global] [--support-batches N] [--batch B] [--seq T] ' +
    '[--heldout FILE|NAME|none] [--heldout-batches N] [--seed S] [--memory-budget 1GB] [--f32] [--zip] [--force] [--tokenizer DIR] [--bos | --no-bos] ' +
    BACKEND_USAGE +
    ' [--json]',
  async run(argv, ctx) {
    const { positionals, options: o } = parseCommandArgs(
      argv,
      {
        method: { type: 'string' },
        keep: { type: 'number' },
        adapters: { type: 'string' },
        support: { type: 'string' },
        out: { type: 'string' },
        'lambda-attn': { type: 'number' },
        'lambda-mlp': { type: 'number' },
        'lambda-mode': { type: 'string' },
        'attn-keep': { type: 'number' },
        mlp: { type: 'string' },
        'rank-allocation': { type: 'string' },
        'support-batches': { type: 'number' },
        batch: { type: 'number' },
        seq: { type: 'number' },
        heldout: { type: 'string' },
        'heldout-batches': { type: 'number' },
        seed: { type: 'number' },
        zip: { type: 'boolean' },
        force: { type: 'boolean' },
        tokenizer: { type: 'string' },
        bos: { type: 'boolean' },
        'no-bos': { type: 'boolean' },
        'memory-budget': { type: 'string' },
        f32: { type: 'boolean' },
        ...BACKEND_OPTIONS,
      },
      { min: 1, max: 1 },
    );
    // Every argument checked before anything is loaded.
    const method = o.method as CompressionMethod | undefined;
    if (!method) throw new UsageError(`--method is required (${COMPRESSION_METHODS.join(', ')})`);
    if (!COMPRESSION_METHODS.includes(method)) throw new UsageError(`unknown method '${method}' (${COMPRESSION_METHODS.join(', ')})`);
    const keep = o.keep as number | undefined;
    if (keep === undefined) throw new UsageError('--keep F is required (fraction of middle-block parameters kept, in (0, 1])');
    if (!(keep > 0 && keep <= 1)) throw new UsageError(`--keep must be in (0, 1], got ${keep}`);
    let split;
    try {
      split = parseAdapters((o.adapters as string | undefined) ?? '2:2');
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    if (!o.support) throw new UsageError('--support FILE is required (support text for the gradient pass and the support loss)');
    if (!o.out) throw new UsageError('--out DIR (or --out FILE.zip with --zip) is required');
    const lambdaMode = o['lambda-mode'] as LambdaMode | undefined;
    if (lambdaMode !== undefined && lambdaMode !== 'raw' && lambdaMode !== 'balanced')
      throw new UsageError(`--lambda-mode must be raw or balanced`);
    const attnKeep = o['attn-keep'] as number | undefined;
    if (attnKeep !== undefined && (method !== 'gradot' || !(attnKeep > 0 && attnKeep <= 1))) {
      throw new UsageError('--attn-keep applies to --method gradot and must be in (0, 1]');
    }
    const mlp = o.mlp as 'scp' | 'drd' | undefined;
    if (mlp !== undefined && (method !== 'gradot' || (mlp !== 'scp' && mlp !== 'drd')))
      throw new UsageError('--mlp scp|drd applies to --method gradot');
    const rankAllocation = o['rank-allocation'] as 'uniform' | 'global' | undefined;
    if (rankAllocation !== undefined && (method !== 'gradot' || (rankAllocation !== 'uniform' && rankAllocation !== 'global'))) {
      throw new UsageError('--rank-allocation uniform|global applies to --method gradot');
    }
    if (mlp === 'drd' && attnKeep !== undefined) throw new UsageError('--attn-keep needs --mlp scp (with drd every linear shares one κ)');
    let memoryBudget: number | undefined;
    if (o['memory-budget'] !== undefined) {
      try {
        memoryBudget = parseBytes(o['memory-budget'] as string);
      } catch (e) {
        throw new UsageError(`--memory-budget: ${(e as Error).message}`);
      }
    }
    const supportBatches = intOpt(o, 'support-batches', 8);
    const batch = intOpt(o, 'batch', 4);
    const heldoutBatches = intOpt(o, 'heldout-batches', 4);
    const seed = o.seed === undefined ? 0 : intOpt(o, 'seed', 0, 0);
    // A bundled task NAME works too (its train.jsonl; --heldout NAME: its valid.jsonl), as for eval/ot --task.
    const supportPath = resolveDataPath(o.support as string, 'train', ctx.cwd);
    if (!supportPath) throw new UsageError(`--support ${o.support}: no such file, and no bundled task of that name`);
    const heldoutArg = o.heldout as string | undefined;
    const heldoutPath = heldoutArg && heldoutArg !== 'none' ? resolveDataPath(heldoutArg, 'valid', ctx.cwd) : null;
    if (heldoutArg && heldoutArg !== 'none' && !heldoutPath)
      throw new UsageError(`--heldout ${heldoutArg}: no such file, and no bundled task of that name`);
    let out = resolve(ctx.cwd, o.out as string);
    if (o.zip && !out.toLowerCase().endsWith('.zip')) out += '.zip';

    const modelPath = resolve(ctx.cwd, positionals[0]!);
    await checkCompressOutput(out, !!o.zip, [modelPath, supportPath, ...(heldoutPath ? [heldoutPath] : [])], o.force === true);
    const cpu0 = process.cpuUsage();
    const rss = { phase: 'loading', byPhase: {} as Record<string, number> };
    const tl = performance.now();
    let lastLoad = tl;
    const model = await openModel(modelPath, {
      onProgress: (done, total) => {
        const now = performance.now();
        if (now - lastLoad < 5000) return;
        lastLoad = now;
        const s = (now - tl) / 1000;
        ctx.err(
          `compress: loading ${(done / 2 ** 20).toFixed(0)}/${(total / 2 ** 20).toFixed(0)} MiB (${s.toFixed(1)}s, ETA ${((s * (total - done)) / Math.max(done, 1)).toFixed(0)}s)`,
        );
      },
    });
    if (model.kind !== 'hf') throw new UsageError('compress needs the full model (a Hugging Face folder), not an emulator package');
    for (const w of model.warnings) ctx.err(`warning: ${w}`);
    const tok = await cliTokenizer(model, o.tokenizer as string | undefined, ctx.cwd);
    const addBos = bosFromOptions(o, model.spec, tok);
    const seq = Math.min(model.spec.maxPositions, intOpt(o, 'seq', Math.min(128, model.spec.maxPositions), 2));
    const extraFiles = new Map<string, Uint8Array>();
    for (const f of TOKENIZER_FILES)
      if (existsSync(join(modelPath, f))) extraFiles.set(f, new Uint8Array(await readFile(join(modelPath, f))));

    const modelId = basename(modelPath.replace(/\/+$/, ''));
    const lambdaAttn = o['lambda-attn'] as number | undefined;
    const lambdaMlp = o['lambda-mlp'] as number | undefined;
    const progress = progressLines(ctx, rss);
    const be = await openCliBackend(o, ctx);
    // gradot's SVD factors beyond half the memory budget wait on disk instead of being recomputed.
    const factorSpill = method === 'gradot' ? new FolderFactorSpill() : undefined;
    // On a lost GPU device the job starts again on the CPU backend.
    const built = await be
      .job(async (backend) =>
        buildEmulatorJob(
          {
            spec: model.spec,
            weights: model.weights,
            modelId,
            tokenizer: tok,
            extraFiles,
            support: await readTaskFile(o.support as string, ctx.cwd),
            heldout: heldoutPath ? await readTaskFile(heldoutArg!, ctx.cwd, 'valid') : heldoutArg === 'none' ? 'none' : 'auto',
          },
          {
            method,
            keep,
            split,
            seed,
            seqLen: seq,
            supportExamples: supportBatches * batch,
            batch,
            heldoutBatches,
            addBos,
            backend,
            ...(lambdaAttn !== undefined ? { lambdaAttn } : {}),
            ...(lambdaMlp !== undefined ? { lambdaMlp } : {}),
            ...(lambdaMode ? { lambdaMode } : {}),
            ...(attnKeep !== undefined ? { attnKeep } : {}),
            ...(mlp ? { mlp } : {}),
            ...(rankAllocation ? { rankAllocation } : {}),
            ...(memoryBudget !== undefined ? { memoryBudget } : {}),
            ...(o.f32 ? { dtype: 'F32' as const } : {}),
            ...(factorSpill ? { factorSpill } : {}),
            streamWeights: true,
          },
          { onProgress: progress },
        ),
      )
      .finally(() => {
        factorSpill?.close();
        return be.close();
      });
    for (const w of built.warnings) ctx.err(`compress: ${w}`);
    const report = built.report;
    const heldoutResult = built.heldout;
    const heldoutFrom = report.heldout.from;

    notePhase(rss, 'write');
    // The package is written as it streams from the emulator's weights (src/storage/package-file.ts; the
    // same bytes as the in-memory package): the source model is no longer needed, and each emulator tensor
    // is dropped once written, so this phase holds less than the build did, not a third copy of the model.
    const tw = performance.now();
    model.weights.clear();
    reclaimHostMemory(undefined, { force: true });
    const entries = built.entries.map(([name, e]): (typeof built.entries)[number] =>
      e instanceof Uint8Array ? [name, e] : [name, { ...e, onWritten: (t: string) => e.weights.delete(t) }],
    );
    const packageBytes = entries.reduce((a, [, e]) => a + entryByteLength(e), 0);
    let written: string[];
    if (o.zip) {
      await writePackageZip(out, entries);
      written = entries.map(([name]) => name).sort();
    } else {
      written = await writePackageFolder(out, entries);
    }
    const writeSeconds = (performance.now() - tw) / 1000;
    // Writing is part of packaging, as it was when the package's bytes were made in the job.
    const secs = report.seconds as Record<string, number>;
    secs.package = Math.round((secs.package! + writeSeconds) * 1e4) / 1e4;
    secs.total = Math.round((secs.total! + writeSeconds) * 1e4) / 1e4;

    const p = report.params;
    const middleEnd = model.spec.layers.length - split.top;
    notePhase(rss, 'done');
    const cpu = process.cpuUsage(cpu0);
    const json: Record<string, unknown> = {
      ...report,
      model: modelId,
      method,
      keep,
      split,
      out,
      files: written,
      backend: be.run,
      support: { ...report.support, file: o.support },
      packageBytes,
      // CPU time of this process (a shared machine's wall clock says little), and peak RSS by the end of each phase.
      cpuSeconds: Math.round((cpu.user + cpu.system) / 1e4) / 100,
      maxRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
      phaseMaxRssMB: rss.byPhase,
    };
    const support = { length: report.support.batches };
    const s = report.seconds as Record<string, number>;
    const heldoutSeconds = s.heldout ?? 0;
    const lines: string[] = [];
    lines.push(`emulator of ${modelId}: ${method} keep=${keep} adapters ${split.bottom}:${split.top} -> ${out}`);
    lines.push(
      `parameters: ${formatCount(p.before)} -> ${formatCount(p.after)} (${((100 * p.after) / p.before).toFixed(1)}%); ` +
        `middle (blocks ${split.bottom}..${middleEnd - 1}) ${formatCount(p.middleBefore)} -> ${formatCount(p.middleAfter)} ` +
        `(${(100 * (p.middleKept ?? NaN)).toFixed(2)}%, target ${formatCount(p.middleTarget)})`,
    );
    lines.push('');
    const projs = [...new Set(report.layers.flatMap((l) => Object.keys(l.ranks)))];
    lines.push(
      table(
        ['block', 'source', 'role', ...projs.map((x) => `rank ${x}`), 'mlp width'],
        report.layers.map((l) => [
          l.index,
          l.source,
          l.role,
          ...projs.map((x) => String((l.ranks as Record<string, number>)[x] ?? 'dense')),
          l.mlpWidth,
        ]),
      ),
    );
    lines.push('');
    lines.push(
      `support loss (${support.length} batches): full ${(report.supportLoss.full ?? NaN).toFixed(4)}, emulator ${(report.supportLoss.emulator ?? NaN).toFixed(4)}`,
    );
    if (heldoutResult) {
      lines.push(
        `held-out (${heldoutFrom}): adapter-gradient shift ${heldoutResult.cosineDistance.toFixed(5)} (cosine distance, lower = better utility); ` +
          `loss full ${heldoutResult.fullLoss.toFixed(4)}, emulator ${heldoutResult.emulatorLoss.toFixed(4)} (higher = more privacy)`,
      );
    } else lines.push(`held-out: ${heldoutFrom}`);
    lines.push(
      `seconds: support ${s.support!.toFixed(2)}, svd ${s.svd!.toFixed(2)}, scoring ${s.scoring!.toFixed(2)}, compress ${s.compress!.toFixed(2)}, ` +
        `evaluate ${s.evaluate!.toFixed(2)}, package ${s.package!.toFixed(2)}, held-out ${heldoutSeconds.toFixed(2)}, total ${s.total!.toFixed(2)}`,
    );
    lines.push('readings:');
    for (const [k, v] of Object.entries(report.readings)) lines.push(`  ${k}: ${v}`);
    for (const n of built.result.plan.notes) lines.push(`note: ${n}`);
    return { json, text: lines.join('\n') };
  },
};
