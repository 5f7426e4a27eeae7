/**
 * `gradot bench --only scale`: GradOT at real model sizes. For each hub-shaped model (generated once with
 * make-model and cached under the OS temp dir), on this machine and in this run:
 *
 * - `gradot compress --method gradot` with default settings, as a child process under `/usr/bin/time -v`:
 *   wall, CPU seconds, peak RSS, and the seconds and peak RSS reached by each phase (from its JSON);
 * - our engine's forward + backward of one support batch and exact SVD of the model's largest block matrix,
 *   beside the same in PyTorch on OpenBLAS (Debian's /usr/bin/python3 via tools/pretrain/with_openblas.sh,
 *   tools/torch_ref/bench_scale.py), one thread — the reference the phases are read against;
 * - the machine's load average before and after, since a shared machine's wall clock says little.
 *
 * Slow (minutes per model): never part of `npm test` nor of `gradot bench` without `--only scale`.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CpuBackend } from '../engine/cpu/backend';
import { exactSvd } from '../engine/linalg/svd';
import { backward, tidy } from '../engine/tensor';
import { decoderFromWeights } from '../model/decoder';
import { loadHFModel } from '../model/hf';
import { HUB_FAMILIES, HUB_MODELS, hubFamily, type HubFamily } from '../model/hub-models';
import { makeHubModel } from '../model/make-model';
import { paramCounts } from '../model/params';
import { nodeDirSource } from '../model/source';
import { gaussian } from '../model/random-model';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SCALE_MODELS_DIR = join(tmpdir(), 'gradot-scale-models');

function run(cmd: string, args: string[], timeoutMs: number): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(cmd, args, { maxBuffer: 64 * 2 ** 20, timeout: timeoutMs, cwd: REPO }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      res({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** The cached hub-shaped folder for `family`, generated when missing. */
export async function scaleModel(family: HubFamily, log: (l: string) => void): Promise<string> {
  const dir = join(SCALE_MODELS_DIR, family);
  if (existsSync(join(dir, 'model.safetensors')) && existsSync(join(dir, 'tokenizer.json'))) return dir;
  log(`bench scale: generating ${HUB_MODELS[family].repo}-shaped model in ${dir}…`);
  await makeHubModel(family, dir);
  return dir;
}

/** Peak RSS, CPU and wall from GNU time -v's report. */
function parseTimeV(stderr: string): { maxRssMB: number; cpuS: number; wallS: number } {
  const num = (re: RegExp): number => Number(re.exec(stderr)?.[1] ?? NaN);
  const wall = /Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)/.exec(stderr)?.[1] ?? '';
  const parts = wall.split(':').map(Number);
  const wallS = parts.reduce((a, p) => a * 60 + p, 0);
  return {
    maxRssMB: Math.round(num(/Maximum resident set size \(kbytes\): (\d+)/) / 1024),
    cpuS: num(/User time \(seconds\): ([\d.]+)/) + num(/System time \(seconds\): ([\d.]+)/),
    wallS,
  };
}

const cpuS = (c0: NodeJS.CpuUsage): number => {
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1e6;
};

interface EngineSide {
  forwardBackwardS: number;
  forwardBackwardCpuS: number;
  svdS: number;
  svdShape: [number, number];
}

/** Our engine, one thread: forward + backward (every weight requiring grad) of one B×T batch, and the exact SVD. */
async function engineSide(dir: string, B: number, T: number): Promise<EngineSide> {
  const m = await loadHFModel(nodeDirSource(dir));
  const spec = m.spec;
  const be = new CpuBackend({ dtype: 'f32' });
  const dec = decoderFromWeights(be, spec, m.weights, { requiresGrad: true });
  m.weights.clear();
  const g = gaussian(1);
  const ids = Int32Array.from({ length: B * T }, () => Math.floor(Math.abs(g() * 1e6)) % spec.vocabSize);
  const targets = Int32Array.from(ids, (_, i) => ((i + 1) % T === 0 ? -100 : ids[i + 1]!));
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const loss = tidy(() => {
    const l = dec.loss(ids, targets, B, T);
    backward(l, { release: true });
    return l;
  });
  await loss.item();
  const forwardBackwardS = (performance.now() - t0) / 1000;
  const forwardBackwardCpuS = cpuS(c0);
  loss.free();
  dec.free();
  const shape: [number, number] = [spec.intermediateSize, spec.hiddenSize];
  const a = Float64Array.from({ length: shape[0] * shape[1] }, () => g());
  const ts = performance.now();
  exactSvd(a, shape[0], shape[1]);
  return { forwardBackwardS, forwardBackwardCpuS, svdS: (performance.now() - ts) / 1000, svdShape: shape };
}

export interface ScaleBenchOptions {
  models?: string[];
  /** Support file for compress (default: the bundled genre-mc training set). */
  support?: string;
  keep?: number;
  log?: (l: string) => void;
}

export async function benchScale(o: ScaleBenchOptions = {}): Promise<{ json: Record<string, unknown>; text: string }> {
  const log = o.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const fams = (o.models ?? ['gpt2', 'opt-125m']).map((n) => {
    const f = hubFamily(n);
    if (!f) throw new Error(`bench scale: unknown model '${n}' (${HUB_FAMILIES.join(', ')})`);
    return f;
  });
  const support = o.support ?? join(REPO, 'public', 'data', 'genre-mc', 'train.jsonl');
  const keep = o.keep ?? 0.5;
  const haveTime = existsSync('/usr/bin/time');
  const havePy = existsSync('/usr/bin/python3');
  const rows: Record<string, unknown>[] = [];
  const lines: string[] = [];
  for (const family of fams) {
    const dir = await scaleModel(family, log);
    const load0 = loadavg()[0]!;
    const out = await mkdtemp(join(tmpdir(), 'gradot-scale-emu-'));
    log(`bench scale: ${family}: gradot compress (defaults, keep ${keep})…`);
    const args = [
      join(REPO, 'bin', 'gradot.mjs'),
      'compress',
      dir,
      '--method',
      'gradot',
      '--keep',
      String(keep),
      '--support',
      support,
      '--out',
      out,
      '--json',
    ];
    const r = haveTime
      ? await run('/usr/bin/time', ['-v', process.execPath, ...args], 6 * 3600e3)
      : await run(process.execPath, args, 6 * 3600e3);
    const load1 = loadavg()[0]!;
    let compress: Record<string, unknown> = {
      error: r.stderr
        .split('\n')
        .filter((l) => !l.startsWith('npm warn'))
        .slice(-5)
        .join('\n'),
    };
    if (r.code === 0) {
      const j = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
      compress = {
        seconds: j.seconds,
        cpuSeconds: j.cpuSeconds,
        phaseMaxRssMB: j.phaseMaxRssMB,
        ...(haveTime ? { process: parseTimeV(r.stderr) } : {}),
        params: j.params,
        supportLoss: j.supportLoss,
        packageBytes: j.packageBytes,
      };
    }
    await rm(out, { recursive: true, force: true });
    log(`bench scale: ${family}: reference (our forward+backward and SVD vs torch)…`);
    const B = 4,
      T = 128;
    const ours = await engineSide(dir, B, T);
    let torch: Record<string, unknown> | null = null;
    if (havePy) {
      // On OpenBLAS (Debian's torch links the ~40x slower reference BLAS; the wrapper fetches OpenBLAS once).
      const py = await run(
        join(REPO, 'tools', 'pretrain', 'with_openblas.sh'),
        [
          '/usr/bin/python3',
          join(REPO, 'tools', 'torch_ref', 'bench_scale.py'),
          JSON.stringify({ dir, batch: B, seq: T, svd: ours.svdShape, reps: 1 }),
        ],
        3600e3,
      );
      torch =
        py.code === 0 ? (JSON.parse(py.stdout.trim().split('\n').pop()!) as Record<string, unknown>) : { error: py.stderr.slice(-500) };
    }
    const params = paramCounts((await import('../model/hf')).specFromHFConfig(HUB_MODELS[family].config)).total;
    const row = {
      model: HUB_MODELS[family].repo,
      family,
      params,
      dtype: HUB_MODELS[family].dtype,
      load: { before: load0, after: load1 },
      compress,
      engine: ours,
      torch,
    };
    rows.push(row);
    const t1 = (torch?.threads1 ?? null) as { forwardBackwardS: number; forwardBackwardCpuS: number; svdS: number } | null;
    const pr = (compress.process ?? null) as { maxRssMB: number; cpuS: number; wallS: number } | null;
    const sec = (compress.seconds ?? {}) as Record<string, number>;
    lines.push(
      `${HUB_MODELS[family].repo} (${(params / 1e6).toFixed(2)} M params, ${HUB_MODELS[family].dtype}), load ${load0.toFixed(1)} -> ${load1.toFixed(1)} on ${(await import('node:os')).cpus().length} cores`,
    );
    if (pr)
      lines.push(
        `  compress (gradot, keep ${keep}, defaults): wall ${pr.wallS.toFixed(0)} s, CPU ${pr.cpuS.toFixed(0)} s, peak RSS ${pr.maxRssMB} MB`,
      );
    else lines.push(`  compress: ${String(compress.error ?? 'no /usr/bin/time')}`);
    if (Object.keys(sec).length)
      lines.push(
        `  phases (wall s): ${Object.entries(sec)
          .map(([k, v]) => `${k} ${Number(v).toFixed(1)}`)
          .join(', ')}`,
      );
    if (compress.phaseMaxRssMB)
      lines.push(
        `  peak RSS by the end of each phase (MB): ${Object.entries(compress.phaseMaxRssMB as Record<string, number>)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ')}`,
      );
    lines.push(
      `  forward+backward ${B}x${T}: ours ${ours.forwardBackwardS.toFixed(2)} s (${ours.forwardBackwardCpuS.toFixed(2)} CPU s)` +
        (t1
          ? `, torch (OpenBLAS) 1 thread ${t1.forwardBackwardS.toFixed(2)} s (${t1.forwardBackwardCpuS.toFixed(2)} CPU s): ` +
            `${(ours.forwardBackwardCpuS / t1.forwardBackwardCpuS).toFixed(1)}x by CPU time`
          : ''),
    );
    lines.push(
      `  exact SVD ${ours.svdShape.join('x')} f64: ours ${ours.svdS.toFixed(2)} s` +
        (t1 ? `, torch.linalg.svd (OpenBLAS) 1 thread ${t1.svdS.toFixed(2)} s (${(ours.svdS / t1.svdS).toFixed(1)}x)` : ''),
    );
  }
  return { json: { models: rows }, text: lines.join('\n') };
}
