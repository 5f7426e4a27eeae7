/**
 * One declaration per kernel: its storage bindings and uniform fields are named once, and `defineKernel`
 * writes the WGSL binding lines and the uniform struct `U` from them. The backend then binds storages and
 * packs uniforms *by name* (`run(k, { A, B, C }, { M, N, K })`), so a reordered struct or a forgotten
 * field is a compile-time type error or a named run-time error instead of silently wrong numbers.
 *
 * Layout rules (WGSL): every uniform field is a 4-byte scalar, so field i sits at byte 4 * i; the buffer
 * is padded to 16 bytes. Storage bindings get indices 0..n-1 in declaration order; the uniform comes last.
 */

/** Element type of a storage array; `f16` needs the device feature `shader-f16` (and `enable f16;`). */
export type Elem = 'f32' | 'f16' | 'i32' | 'u32';
export type UniformType = 'u32' | 'i32' | 'f32';

export interface BindingDecl {
  elem: Elem;
  access: 'read' | 'read_write';
}

/** Read-only storage of `elem` (default f32). */
export const ro = (elem: Elem = 'f32'): BindingDecl => ({ elem, access: 'read' });
/** Writable storage of `elem` (default f32). */
export const rw = (elem: Elem = 'f32'): BindingDecl => ({ elem, access: 'read_write' });

export interface KernelDecl<B extends string, U extends string> {
  /** Shown in errors and used as the default profiling label. */
  name: string;
  /** WGSL extensions the source needs (`f16`, `subgroups`). */
  enable?: readonly string[];
  bindings: Record<B, BindingDecl>;
  uniforms: Record<U, UniformType>;
  /** Everything after the declarations: constants, helper functions, the `main` entry point. */
  body: string;
}

export interface Kernel<B extends string = string, U extends string = string> {
  readonly name: string;
  /** Complete WGSL; also the backend's pipeline cache key. */
  readonly src: string;
  /** Storage binding names in binding-index order. */
  readonly bindings: readonly B[];
  readonly uniforms: readonly U[];
  /** Bytes of the packed uniform block (a multiple of 16). */
  readonly uniformBytes: number;
  /** Packs uniform values by field name into the struct layout. */
  pack(values: Record<U, number>): ArrayBuffer;
}

export class KernelArgumentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KernelArgumentError';
  }
}

export function defineKernel<B extends string, U extends string>(decl: KernelDecl<B, U>): Kernel<B, U> {
  const bindings = Object.keys(decl.bindings) as B[];
  const uniforms = Object.keys(decl.uniforms) as U[];
  if (uniforms.length === 0) throw new KernelArgumentError(`${decl.name}: a kernel needs at least one uniform field`);
  const types = uniforms.map((f) => decl.uniforms[f]);
  const lines: string[] = [];
  for (const e of decl.enable ?? []) lines.push(`enable ${e};`);
  lines.push(`struct U { ${uniforms.map((f, i) => `${f}: ${types[i]}`).join(', ')} }`);
  bindings.forEach((b, i) => {
    const d = decl.bindings[b];
    lines.push(`@group(0) @binding(${i}) var<storage, ${d.access}> ${b}: array<${d.elem}>;`);
  });
  lines.push(`@group(0) @binding(${bindings.length}) var<uniform> u: U;`);
  const src = `${lines.join('\n')}\n${decl.body}`;
  const uniformBytes = Math.ceil(uniforms.length / 4) * 16;
  return {
    name: decl.name,
    src,
    bindings,
    uniforms,
    uniformBytes,
    pack(values: Record<U, number>): ArrayBuffer {
      const ab = new ArrayBuffer(uniformBytes);
      const dv = new DataView(ab);
      uniforms.forEach((f, i) => {
        const v = values[f];
        if (typeof v !== 'number' || Number.isNaN(v)) {
          throw new KernelArgumentError(`${decl.name}: uniform '${f}' is ${String(v)}, expected a number`);
        }
        const t = types[i];
        if (t === 'f32') dv.setFloat32(4 * i, v, true);
        else if (t === 'i32') {
          if (!Number.isInteger(v) || v < -(2 ** 31) || v >= 2 ** 31) {
            throw new KernelArgumentError(`${decl.name}: uniform '${f}' = ${v} is not an i32`);
          }
          dv.setInt32(4 * i, v, true);
        } else {
          if (!Number.isInteger(v) || v < 0 || v >= 2 ** 32) {
            throw new KernelArgumentError(`${decl.name}: uniform '${f}' = ${v} is not a u32`);
          }
          dv.setUint32(4 * i, v, true);
        }
      });
      return ab;
    },
  };
}

/** Memoises a kernel generator on its (stringifiable) variant arguments, so each variant's source is built
 *  once and the backend's pipeline cache sees the identical string. */
export function variants<A extends unknown[], K>(make: (...args: A) => K): (...args: A) => K {
  const cache = new Map<string, K>();
  return (...args: A) => {
    const key = JSON.stringify(args);
    let k = cache.get(key);
    if (k === undefined) cache.set(key, (k = make(...args)));
    return k;
  };
}
