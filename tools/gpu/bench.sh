#!/usr/bin/env bash
# WebGPU benchmarks in one go on a machine with a real GPU (a few minutes). Run from anywhere:
#   tools/gpu/bench.sh [--peak-fp32=TFLOPS --peak-fp16=TFLOPS] [--sizes=1024,2048,4096] [--skip-browser]
#
# Needs: `npm ci` (with the optional `webgpu` package: Dawn for Node), the GPU's Vulkan driver (Linux) and,
# for the browser half, a Chromium (CHROMIUM_PATH, default /usr/bin/chromium). Prints:
#   1. the kernel suite through Dawn (every kernel vs the CPU reference, on this GPU: subgroup sizes and
#      native f16 that SwiftShader cannot show);
#   2. matmul GFLOP/s per kernel variant (tiled / subgroup, f32 / f16 operands) and the fraction of the
#      fp32 / fp16 peak (given, or looked up by adapter name), and our training step (tokens/s) in Node;
#   3. in headless Chromium on the GPU (Vulkan): our training step beside TF.js's webgpu backend on the same
#      model, and our matmul beside onnxruntime-web's WebGPU MatMul;
#   4. GradOT compress seconds on the gpt2-shaped model (`gradot bench --only scale`, when present).
# Targets (issue): matmul >= 50% of fp32 peak at n >= 2048; training step >= 2x TF.js webgpu.
set -u
cd "$(dirname "$0")/../.."
args=("$@")
has() { for a in "${args[@]}"; do [ "$a" = "$1" ] && return 0; done; return 1; }
pass=()
for a in "${args[@]}"; do case "$a" in --peak-*|--sizes=*) pass+=("$a");; esac; done
status=0
log() { printf '\n== %s (%s, load %s)\n' "$1" "$(date -u +%H:%M:%S)" "$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"; }

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

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

log "4/4 GradOT compress on the gpt2-shaped model"
if npx gradot bench --help 2>&1 | grep -q "scale"; then
  # The compress pipeline's backend is the CPU one today (support pass and SVDs); see the README.
  timeout 1200 npx gradot bench --only scale --models gpt2 || status=1
else
  echo "this checkout has no 'gradot bench --only scale' (gpt2-shaped model compress): skipped"
fi
exit $status
