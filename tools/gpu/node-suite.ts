// The WebGPU kernel suite and whole-training-step checks in Node through Dawn (the `webgpu` package):
// the same checks the Chromium suite runs, against the CPU reference. Exit code 1 on any failure.
//   npx tsx tools/gpu/node-suite.ts [--filter=matmul]
//   tools/gpu/swiftshader-env.sh npx tsx tools/gpu/node-suite.ts    (no GPU: software Vulkan)
import { createNodeWebGpuBackend } from '../../src/engine/webgpu/node';
import { describeRun, gpuRunInfo } from '../../src/engine/webgpu/run-info';
import { runKernelSuite } from '../../src/engine/webgpu/suite';
import { runTrainStepCheck } from '../../src/engine/webgpu/train-check';

const filter = process.argv.find((a) => a.startsWith('--filter='))?.slice('--filter='.length);
const gpu = await createNodeWebGpuBackend();
const i = gpu.info;
console.log(
  `[node-suite] adapter ${i.vendor}/${i.architecture} ${i.description} fallback=${i.isFallbackAdapter} ` +
    `shader-f16=${i.shaderF16} subgroups=${i.subgroups} (sizes ${i.subgroupMinSize}-${i.subgroupMaxSize}) ` +
    `uses: subgroup matmul=${i.uses.subgroupMatmul}, f16 operands ${i.uses.f16Operands}`,
);
console.log(`[node-suite] backend: ${describeRun({ kind: 'webgpu', gpu: gpuRunInfo(i, 'Dawn') })}`);
const r = await runKernelSuite(gpu, { filter });
if (!filter) {
  for (const c of await runTrainStepCheck(gpu)) {
    r.cases.push(c);
    if (c.ok) r.passed++;
    else r.failed++;
  }
}
for (const c of r.cases) {
  if (!c.ok || process.argv.includes('--verbose')) {
    console.log(
      `  ${c.ok ? 'ok  ' : 'FAIL'} ${c.kernel.padEnd(28)} ${c.shape.padEnd(34)} normRel=${c.normRel.toExponential(2)} ` +
        `maxRel=${c.maxRel.toExponential(2)}${c.error ? `  ERROR ${c.error}` : ''}`,
    );
  }
}
console.log(`[node-suite] ${r.passed} passed, ${r.failed} failed (${(r.ms / 1000).toFixed(1)}s)`);
gpu.destroy();
process.exit(r.failed === 0 ? 0 : 1);
