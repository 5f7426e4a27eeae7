#!/usr/bin/env bash
# WebGPU benchmarks in one go on a machine with a real GPU (a few minutes, plus the CPU compress reference). Run
# from anywhere:
#   tools/gpu/bench.sh [--peak-fp32=TFLOPS --peak-fp16=TFLOPS] [--sizes=1024,2048,4096] [--skip-browser]
#                      [--only-compress] [--skip-cpu-compress] [--compress-model=DIR] [--compress-args="..."]
#
# Needs: `npm ci` (with the optional `webgpu` package: Dawn for Node), the GPU's Vulkan driver (Linux) and,
# for the browser half, a Chromium (CHROMIUM_PATH, default /usr/bin/chromium). Prints:
#   1. the kernel suite through Dawn (every kernel vs the CPU reference, on this GPU: subgroup sizes and
#      native f16 that SwiftShader cannot show);
#   2. matmul GFLOP/s per kernel variant (tiled / subgroup, f32 / f16 operands) and the fraction of the
#      fp32 / fp16 peak (given, or looked up by adapter name), and our training step (tokens/s) in Node;
#   3. in headless Chromium on the GPU (Vulkan): our training step beside TF.js's webgpu backend on the same
#      model, and our matmul beside onnxruntime-web's WebGPU MatMul;
#   4. GradOT compress seconds on the gpt2-shaped model (`gradot make-model gpt2`) through the CLI with
#      `--backend webgpu` (Dawn), beside the same command with `--backend cpu` (skip it: --skip-cpu-compress):
#      the "backend: ..." line, wall seconds, the job's seconds per phase, and the CPU/WebGPU ratio.
#      --compress-model=DIR compresses that HF folder instead (e.g. public/models/demo for a quick check),
#      --compress-args adds options (e.g. "--support-batches 2 --heldout-batches 1"), --only-compress runs
#      only this part. The model and packages go to GRADOT_GPU_BENCH_DIR (default: a temporary folder).
# Targets (issue): matmul >= 50% of fp32 peak at n >= 2048; training step >= 2x TF.js webgpu.
set -u
cd "$(dirname "$0")/../.."
args=("$@")
has() { for a in "${args[@]}"; do [ "$a" = "$1" ] && return 0; done; return 1; }
pass=()
compress_model=""
compress_args=""
for a in "${args[@]}"; do
  case "$a" in
    --peak-*|--sizes=*) pass+=("$a");;
    --compress-model=*) compress_model="${a#--compress-model=}";;
    --compress-args=*) compress_args="${a#--compress-args=}";;
  esac
done
status=0
log() { printf '\n== %s (%s, load %s)\n' "$1" "$(date -u +%H:%M:%S)" "$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"; }

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

if has --only-compress; then
  echo "(parts 1-3 skipped: --only-compress)"
else
log "1/4 kernel suite through Dawn (correctness on this GPU)"
timeout 600 node --expose-gc node_modules/tsx/dist/cli.mjs tools/gpu/node-suite.ts || status=1

log "2/4 matmul and training step through Dawn"
timeout 900 npx tsx tools/gpu/node-bench.ts "${pass[@]}" || status=1

if has --skip-browser; then
  echo "(browser half skipped)"
else
  log "3/4 headless Chromium on the GPU: ours vs TF.js webgpu (training) and onnxruntime-web (matmul)"
  # Headless Chromium uses the GPU through Vulkan with these switches; without them it falls back to
  # SwiftShader and the numbers mean nothing (the script prints the adapter it got).
  GRADOT_CHROMIUM_ARGS="--enable-features=Vulkan,VulkanFromANGLE --use-angle=vulkan --use-vulkan=native --ignore-gpu-blocklist --disable-vulkan-surface --enable-unsafe-webgpu" \
    timeout 900 npx tsx e2e/bench-webgpu.ts --sizes=1024,2048 --train-layers=6 --train-t=64 || status=1
fi
fi

log "4/4 GradOT compress through the CLI: --backend webgpu (Dawn) beside --backend cpu"
work=${GRADOT_GPU_BENCH_DIR:-$(mktemp -d)}
mkdir -p "$work"
model="$compress_model"
if [ -z "$model" ]; then
  model="$work/gpt2"
  [ -f "$model/config.json" ] || timeout 600 npx gradot make-model gpt2 "$model" || status=1
fi
backends=(webgpu)
has --skip-cpu-compress || backends+=(cpu)
for b in "${backends[@]}"; do
  start=$(date +%s.%N)
  # shellcheck disable=SC2086 # --compress-args is split into options on purpose
  timeout 3600 npx gradot compress "$model" --method gradot --keep 0.5 --support genre-mc --out "$work/emu-$b" --force \
    --backend "$b" $compress_args --json >"$work/compress-$b.json" 2>"$work/compress-$b.log"
  rc=$?
  end=$(date +%s.%N)
  grep -m1 '^backend: ' "$work/compress-$b.log"
  grep -m1 '^warning: ' "$work/compress-$b.log"
  if [ $rc -ne 0 ]; then
    echo "compress --backend $b failed (exit $rc); last lines of $work/compress-$b.log:"
    tail -5 "$work/compress-$b.log"
    status=1
    continue
  fi
  node -e '
    const [file, wall, b] = process.argv.slice(1);
    const r = JSON.parse(require("fs").readFileSync(file, "utf8"));
    const s = r.seconds, f = (x) => (x ?? 0).toFixed(1);
    console.log(`compress --backend ${b}: ${f(Number(wall))} s wall (job ${f(s.total)} s: support pass ${f(s.support)}, SVD ${f(s.svd)}, ` +
      `scoring ${f(s.scoring)}, evaluate ${f(s.evaluate)}, held-out ${f(s.heldout)}, package ${f(s.package)}), ${r.cpuSeconds} CPU-s, ` +
      `peak RSS ${(r.maxRssMB / 1024).toFixed(2)} GB; support loss full ${r.supportLoss.full} emulator ${r.supportLoss.emulator}`);
  ' "$work/compress-$b.json" "$(awk "BEGIN { print $end - $start }")" "$b" || status=1
done
if [ -f "$work/compress-webgpu.json" ] && [ -f "$work/compress-cpu.json" ]; then
  node -e '
    const fs = require("fs");
    const [g, c] = process.argv.slice(1).map((p) => JSON.parse(fs.readFileSync(p, "utf8")));
    if (g.ok && c.ok) console.log(`compress job seconds, cpu / webgpu: ${(c.seconds.total / g.seconds.total).toFixed(2)}x ` +
      `(support pass ${(c.seconds.support / g.seconds.support).toFixed(2)}x); support loss difference ` +
      `${Math.abs(g.supportLoss.emulator - c.supportLoss.emulator).toExponential(1)}`);
  ' "$work/compress-webgpu.json" "$work/compress-cpu.json" || status=1
fi
echo "(model, packages and logs in $work)"
exit $status
