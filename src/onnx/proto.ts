/**
 * The ONNX protobuf messages, from the `onnx-proto` package (protobufjs static code generated from
 * onnx/onnx.proto). It is CommonJS whose `module.exports` is built at run time, so Node's ESM loader cannot
 * see a named `onnx` export: take it from whichever shape the loader (Node, tsx, Vite) hands us.
 */
import * as onnxProtoModule from 'onnx-proto';
import type { onnx as OnnxNamespace } from 'onnx-proto';

type Mod = { onnx?: typeof OnnxNamespace; default?: { onnx?: typeof OnnxNamespace } };
const m = onnxProtoModule as unknown as Mod;
const resolved = m.onnx ?? m.default?.onnx;
if (!resolved) throw new Error("onnx-proto: could not find the 'onnx' namespace export");

export const onnx: typeof OnnxNamespace = resolved;
export type { OnnxNamespace };

/** TensorProto.DataType values used here. */
export const DT = { FLOAT: 1, INT64: 7, BOOL: 9 } as const;
/** AttributeProto.AttributeType values used here. */
export const AT = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, INTS: 7 } as const;
