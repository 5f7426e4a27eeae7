/**
 * `gradot ot MODEL --method M[,M…] --keep F --task T`: the whole offsite-tuning protocol and its
 * five-number report (Full ZS, Emulator ZS, Emulator FT, Plug-in, optional Full FT; Δ; compression ratio).
 * Several methods (`--method gradot,drop,svd,prune`) run one after another on the same task and recipe,
 * sharing Full ZS / Full FT, and their rows land in one Markdown table (--out DIR/report.md + report.json,
 * and one report-<method>-<keep>.{json,md} per run). `--seeds 0,1,2` repeats each method's tuning per seed
 * (the emulator is rebuilt each time; compression is deterministic) and adds a mean ± sd summary.
 *
 * T is a task name under public/data (or a folder) with train.jsonl and test.jsonl (valid.jsonl optional):
 * multiple-choice tasks are scored by acc (acc_norm alongside), prompt/answer tasks by answer-token loss.
 * Support data for gradot's gradient pass: --support FILE, else the task's train file (as text), which
 * is the single-machine research setting; the record says which.
 */
import { REPORT_OUTPUT, checkOutputFolder } from '../../faults/output-folder';
import { resolve, join } from 'node:path';
import { OT_METHOD_NAMES, resolveMethod, type ResolvedMethod } from '../../ot/emulator/variants';
import type { LambdaMode } from '../../ot/emulator/gcs';
import { claimsOf, markdownReport, markdownTable, methodName } from '../../ot/offsite/report';
import { runVerdicts } from '../../ot/offsite/verdicts';
import { parseAdapters } from '../../ot/emulator/split';
import { prepareProtocolData, reuseFrom, runProtocolJob, type ProtocolJobOptions, type ProtocolJobReport } from '../../jobs/protocol';
import { parseCommandArgs } from '../args';
import { TUNE_DEFAULTS } from '../../jobs/tune-defaults';
import { UsageError, type Command } from '../command';
import { openModel } from '../open';
import { BACKEND_OPTIONS, BACKEND_USAGE, openCliBackend } from '../backend';
import {
  TUNE_OPTIONS,
  TUNE_USAGE,
  bosFromOptions,
  cliTokenizer,
  contextLength,
  fmtEta,
  readTaskFile,
  resolveTaskFolder,
  throttled,
  tuneFromOptions,
  writeFiles,
} from './ot-shared';

const r4 = (x: number | null): number | null => (x === null || !Number.isFinite(x) ? null : Math.round(x * 1e4) / 1e4);

export const command: Command = {
  name: 'ot',
  summary: 'the whole offsite-tuning protocol and the five-number report',
  usage:
    `gradot ot MODEL --method ${OT_METHOD_NAMES.join('|')}[,…] --keep F --task NAME|DIR [--adapters 2:2] [--full-ft] [--out DIR [--force]] ` +
    '[--support FILE] [--support-examples N] [--support-len T] [--lambda-attn X] [--lambda-mlp Y] [--lambda-mode raw|balanced] [--limit-train N] [--limit-test N] ' +
    TUNE_USAGE +
    ' ' +
    BACKEND_USAGE,
  async run(argv, ctx) {
    const { positionals, options: o } = parseCommandArgs(
      argv,
      {
        ...TUNE_OPTIONS,
        method: { type: 'string' },
        keep: { type: 'number' },
        task: { type: 'string' },
        adapters: { type: 'string' },
        'full-ft': { type: 'boolean' },
        out: { type: 'string' },
        force: { type: 'boolean' },
        support: { type: 'string' },
        'support-examples': { type: 'number' },
        'support-len': { type: 'number' },
        'lambda-attn': { type: 'number' },
        'lambda-mlp': { type: 'number' },
        'lambda-mode': { type: 'string' },
        'limit-train': { type: 'number' },
        'limit-test': { type: 'number' },
        seeds: { type: 'string' },
        ...BACKEND_OPTIONS,
      },
      { min: 1, max: 1 },
    );
    if (!o.method) throw new UsageError(`--method is required (${OT_METHOD_NAMES.join(', ')})`);
    const methods: ResolvedMethod[] = (o.method as string).split(',').map((name) => {
      const m = resolveMethod(name.trim());
      if (!m) throw new UsageError(`unknown method '${name.trim()}' (${OT_METHOD_NAMES.join(', ')})`);
      return m;
    });
    const keep = o.keep as number | undefined;
    if (keep === undefined || !(keep > 0 && keep <= 1)) throw new UsageError('--keep F in (0, 1] is required');
    if (!o.task) throw new UsageError('--task NAME|DIR is required');
    const folder = resolveTaskFolder(o.task as string, ctx.cwd);
    if (!folder || !folder.train || !folder.test)
      throw new UsageError(`--task ${o.task}: need a folder (or a name under public/data) with train.jsonl and test.jsonl`);
    const split = parseAdapters((o.adapters as string | undefined) ?? '2:2');
    const lambdaMode = o['lambda-mode'] as LambdaMode | undefined;
    if (lambdaMode !== undefined && lambdaMode !== 'raw' && lambdaMode !== 'balanced')
      throw new UsageError('--lambda-mode must be raw or balanced');

    const model = await openModel(resolve(ctx.cwd, positionals[0]!));
    if (model.kind !== 'hf') throw new UsageError('ot needs the full model (an HF folder)');
    const tok = await cliTokenizer(model, o.tokenizer as string | undefined, ctx.cwd);
    const C = contextLength(model.spec, o.context as number | undefined);
    const addBos = bosFromOptions(o, model.spec, tok);
    // The default budget of the adapter kind (src/jobs/tune-defaults.ts), the same as the studio's.
    const budget = TUNE_DEFAULTS[o.lora !== undefined ? 'lora' : 'full'];
    const recipe = tuneFromOptions(o, budget, model.spec.family);
    const limitTrain = o['limit-train'] === undefined ? budget.examples : (o['limit-train'] as number);
    if (!(Number.isInteger(limitTrain) && limitTrain >= 0)) throw new UsageError('--limit-train expects a number of examples (0 = all)');
    // --seeds repeats every method's tuning with each seed (same data, same emulator), so a table shows how
    // much of a difference is training randomness; the data split keeps the first seed.
    if (o.seeds !== undefined && o.seed !== undefined) throw new UsageError('--seed and --seeds are exclusive');
    const rawSeeds = o.seeds === undefined ? null : (o.seeds as string).split(',').map((x) => x.trim());
    const seeds = rawSeeds === null ? [recipe.seed ?? 0] : rawSeeds.map(Number);
    if ((rawSeeds && rawSeeds.some((x) => !/^\d+$/.test(x))) || new Set(seeds).size !== seeds.length) {
      throw new UsageError(`--seeds ${o.seeds}: a comma-separated list of distinct non-negative integers`);
    }
    if (o.seeds !== undefined) recipe.seed = seeds[0]!;

    // The report folder: not an input, nothing unrelated in it, writable — before hours of work.
    if (o.out)
      await checkOutputFolder(resolve(ctx.cwd, o.out as string), {
        inputs: [resolve(ctx.cwd, positionals[0]!), folder.dir],
        kind: REPORT_OUTPUT,
        force: o.force === true,
      });
    // All data read and checked before any compute.
    const data = prepareProtocolData(
      {
        name: folder.name,
        train: await readTaskFile(folder.train, ctx.cwd),
        valid: folder.valid ? await readTaskFile(folder.valid, ctx.cwd) : null,
        test: await readTaskFile(folder.test, ctx.cwd),
      },
      tok,
      model.spec,
      {
        contextLength: C,
        addBos,
        validFraction: (o['valid-fraction'] as number | undefined) ?? 0.05,
        seed: recipe.seed,
        ...(limitTrain > 0 ? { limitTrain } : {}),
        ...(o['limit-test'] !== undefined ? { limitTest: o['limit-test'] as number } : {}),
        needSupport: methods.some((m) => m.method === 'gradot'),
        support: o.support ? await readTaskFile(o.support as string, ctx.cwd) : null,
        ...(o['support-examples'] !== undefined ? { supportExamples: o['support-examples'] as number } : {}),
        ...(o['support-len'] !== undefined ? { supportSeqLen: o['support-len'] as number } : {}),
      },
    );
    if (!o.support) data.supportFrom = data.supportFrom.replace(/^.* \(default\)$/, `${folder.name}/train.jsonl (default)`);

    const cb = await openCliBackend(o, ctx);
    const be = cb.backend;
    const modelId = positionals[0]!.replace(/\/+$/, '');
    const out = o.out ? resolve(ctx.cwd, o.out as string) : null;
    const reports: ProtocolJobReport[] = [];
    let reuse: ProtocolJobOptions['reuse'] = {};
    const line = throttled(ctx.err);
    // One method that cannot run (e.g. prune below its floor) must not throw away the others' hours of work:
    // record it, go on, and fail the command at the end with every finished report already on disk.
    const failed: { method: string; seed: number; error: string }[] = [];
    for (const m of methods)
      for (const seed of seeds) {
        const method = m.name;
        const label = seeds.length > 1 ? `${method} s${seed}` : method;
        let r: ProtocolJobReport;
        try {
          r = await runProtocolJob(
            { spec: model.spec, weights: model.weights, modelId },
            data,
            {
              method: m.method,
              ...(m.mlp ? { mlp: m.mlp } : {}),
              ...(m.rankAllocation ? { rankAllocation: m.rankAllocation } : {}),
              ...(m.name !== m.method ? { variant: m.name } : {}),
              keep,
              split,
              backend: be,
              fullFT: Boolean(o['full-ft']),
              reuse,
              ...(o['eval-batch'] !== undefined ? { evalBatchSize: o['eval-batch'] as number } : {}),
              ...(o['lambda-attn'] !== undefined ? { lambdaAttn: o['lambda-attn'] as number } : {}),
              ...(o['lambda-mlp'] !== undefined ? { lambdaMlp: o['lambda-mlp'] as number } : {}),
              ...(lambdaMode ? { lambdaMode } : {}),
              tune: { ...recipe, seed },
            },
            {
              onProgress: (p) => {
                if (p.tune) {
                  const t = p.tune;
                  line(
                    `[${label}] ${p.phase} step ${t.step}/${t.totalSteps} loss ${t.loss.toFixed(4)}${t.valLoss !== undefined ? ` val ${t.valLoss.toFixed(4)}` : ''} ${t.tokensPerSec.toFixed(0)} tok/s eta ${fmtEta(t.etaSeconds)}`,
                    t.phase !== 'train',
                  );
                } else if (p.result) {
                  const m = p.result;
                  line(
                    `[${label}] ${p.phase}: ${m.kind === 'mc' ? `acc ${(100 * m.acc!).toFixed(2)} acc_norm ${(100 * m.accNorm!).toFixed(2)}` : `loss ${m.loss!.toFixed(4)}`}`,
                    true,
                  );
                } else line(`[${label}] ${p.phase}…`, true);
              },
            },
          );
        } catch (e) {
          const error = e instanceof Error ? e.message : String(e);
          failed.push({ method, seed, error });
          line(`[${label}] failed: ${error}`, true);
          continue;
        }
        reports.push(r);
        reuse = reuseFrom(r);
        if (out) {
          const base = `report-${method}-${keep}${seeds.length > 1 ? `-seed${seed}` : ''}`;
          await writeFiles(
            out,
            new Map([
              [`${base}.json`, new TextEncoder().encode(JSON.stringify(r, null, 2) + '\n')],
              [`${base}.md`, new TextEncoder().encode(markdownReport(r))],
            ]),
          );
        }
      }
    cb.close(); // every run is done with the device (an error thrown above leaves it to the process exit)
    const table =
      markdownTable(reports) +
      failed.map((f) => `\n\nNot run: ${f.method}${seeds.length > 1 ? ` (seed ${f.seed})` : ''} at keep ${keep}: ${f.error}`).join('');
    if (out && reports.length > 0) {
      await writeFiles(
        out,
        new Map([
          ['report.json', new TextEncoder().encode(JSON.stringify(reports, null, 2) + '\n')],
          ...(failed.length
            ? [
                [
                  'failed.json',
                  new TextEncoder().encode(
                    JSON.stringify(
                      failed.map((f) => ({ keep, ...f })),
                      null,
                      2,
                    ) + '\n',
                  ),
                ] as [string, Uint8Array],
              ]
            : []),
          ['report.md', new TextEncoder().encode(table + '\n')],
        ]),
      );
    }
    const runs = reports.map((r) => ({
      method: methodName(r),
      keep: r.keep,
      seed: r.tuneOptions.seed,
      metric: r.metric,
      fullZS: r4(r.fullZS),
      emulatorZS: r4(r.emulatorZS),
      emulatorFT: r4(r.emulatorFT),
      plugIn: r4(r.plugIn),
      fullFT: r4(r.fullFT),
      delta: r4(r.delta),
      deltaStderr: r.deltaStderr ?? null,
      privacyGap: r.privacyGap ?? null,
      privacyGapStderr: r.privacyGapStderr ?? null,
      compressionRatio: r4(r.compressionRatio),
      checks: r.checks,
      verdicts: runVerdicts({ claims: claimsOf(r) }) ?? null,
      tokensPerSec: Math.round(r.tune.tokensPerSec),
      seconds: r4(r.seconds.total ?? 0),
    }));
    if (failed.length > 0) {
      const done = reports.length
        ? `; finished: ${reports.map((r) => (seeds.length > 1 ? `${methodName(r)} s${r.tuneOptions.seed}` : methodName(r))).join(', ')}${out ? ` (reports in ${out})` : ''}`
        : '';
      throw new Error(
        `gradot ot: ${failed.length} of ${methods.length * seeds.length} runs failed — ${failed.map((f) => `${f.method}${seeds.length > 1 ? ` (seed ${f.seed})` : ''}: ${f.error}`).join('; ')}${done}`,
      );
    }
    const json: Record<string, unknown> = {
      model: modelId,
      task: folder.name,
      split,
      backend: cb.run,
      support: data.supportFrom,
      out: out ? join(out, 'report.md') : null,
      runs,
      ...(runs.length === 1 ? runs[0] : {}),
    };
    return { json, text: table };
  },
};
