export {
  createWebGpuBackend, WebGpuBackend, GpuStorage, DeviceLostError, WebGpuUnavailableError, GpuLimitError,
  bucketBytes,
} from './backend';
export type { WebGpuBackendOptions, WebGpuInfo } from './backend';
export { chooseBackend, type BackendChoice } from './select';
