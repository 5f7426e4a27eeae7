export {
  createWebGpuBackend, WebGpuBackend, GpuStorage, DeviceLostError, WebGpuUnavailableError, GpuLimitError,
  bucketBytes,
} from './backend';
export type { GpuDType, WebGpuBackendOptions, WebGpuInfo } from './backend';
export { chooseBackend, describeWebGpuFeatures, type BackendChoice } from './select';
