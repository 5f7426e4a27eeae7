/**
 * A one-node ONNX model (C = MatMul(A, B), float32, static shapes) encoded by hand: only the handful of
 * protobuf fields a single-node graph needs (field numbers from onnx/onnx.proto3), so the benchmark needs
 * no ONNX protobuf dependency.
 */
class Writer {
  private bytes: number[] = [];
  varint(v: number): this {
    let x = BigInt(v);
    do {
      let b = Number(x & 0x7fn);
      x >>= 7n;
      if (x > 0n) b |= 0x80;
      this.bytes.push(b);
    } while (x > 0n);
    return this;
  }
  tag(field: number, wire: 0 | 2): this {
    return this.varint((field << 3) | wire);
  }
  int(field: number, v: number): this {
    return this.tag(field, 0).varint(v);
  }
  bytesField(field: number, b: Uint8Array): this {
    this.tag(field, 2).varint(b.length);
    for (const x of b) this.bytes.push(x);
    return this;
  }
  str(field: number, s: string): this {
    return this.bytesField(field, new TextEncoder().encode(s));
  }
  msg(field: number, w: Writer): this {
    return this.bytesField(field, w.finish());
  }
  finish(): Uint8Array {
    return Uint8Array.from(this.bytes);
  }
}

const FLOAT = 1; // TensorProto.DataType.FLOAT

function valueInfo(name: string, dims: number[]): Writer {
  const shape = new Writer();
  for (const d of dims) shape.msg(1, new Writer().int(1, d)); // TensorShapeProto.dim { dim_value }
  const tensorType = new Writer().int(1, FLOAT).msg(2, shape); // TypeProto.Tensor { elem_type, shape }
  const type = new Writer().msg(1, tensorType); // TypeProto { tensor_type }
  return new Writer().str(1, name).msg(2, type); // ValueInfoProto { name, type }
}

export function matmulModel(m: number, k: number, n: number): Uint8Array {
  const node = new Writer().str(1, 'A').str(1, 'B').str(2, 'C').str(3, 'matmul').str(4, 'MatMul');
  const graph = new Writer()
    .msg(1, node)
    .str(2, 'matmul_graph')
    .msg(11, valueInfo('A', [m, k]))
    .msg(11, valueInfo('B', [k, n]))
    .msg(12, valueInfo('C', [m, n]));
  const opset = new Writer().str(1, '').int(2, 17);
  return new Writer().int(1, 8).str(2, 'gradot-bench').msg(7, graph).msg(8, opset).finish();
}
