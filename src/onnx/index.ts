/**
 * src/onnx public API that runs in Node and in browsers/workers alike. Browser-only helpers (onnxruntime-web
 * with locally served wasm, `generateInBrowser`) are in ./browser; the Node-only bench in ./bench.
 */
export {
  buildOnnxModel, decodeOnnxModel, encodeOnnxModel, exportOnnx, exportOnnxFiles, exportTransformersJsFolder,
  externalDataNames, moveToExternalData, ONNX_IR_VERSION, ONNX_OPSET,
} from './export';
export type { OnnxExportOptions, OnnxFiles, TransformersJsExportOptions } from './export';
export { cacheNames } from './names';
export { loadOrt, OrtDecoder, ortInfoFromSpec } from './runtime';
export type { ForwardResult, KvCache, OrtModelInfo, OrtModule } from './runtime';
export { generateWithTransformersJs, loadTransformersJsModel } from './transformers';
export type { LoadedTjsModel, TjsGenerateOptions, TjsGenerateResult, TjsLoadOptions } from './transformers';
export { evaluateWithOrt } from './evaluate';
export type { OrtEvalOptions } from './evaluate';
