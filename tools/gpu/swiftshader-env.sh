#!/bin/sh
# Runs a command with the Vulkan loader pointed at Chromium's SwiftShader (a software Vulkan driver), so
# Dawn (the `webgpu` npm package) finds an adapter on a machine without a GPU. Correct but slow: use it to
# check the Node WebGPU path, never to measure speed.
#   tools/gpu/swiftshader-env.sh npx tsx tools/gpu/node-suite.ts
dir=${CHROMIUM_LIB_DIR:-/usr/lib/chromium}
if [ ! -f "$dir/vk_swiftshader_icd.json" ] || [ ! -f "$dir/libvulkan.so.1" ]; then
  echo "swiftshader-env: no SwiftShader Vulkan driver in $dir (set CHROMIUM_LIB_DIR)" >&2
  exit 2
fi
LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" VK_ICD_FILENAMES="$dir/vk_swiftshader_icd.json" exec "$@"
