/**
 * Method names `gradot ot --method` accepts: the compression methods themselves (budget.ts) plus named
 * layouts of one of them. `gradot-paper` is gradot with the OT/GradOT paper's layout — SCP channel pruning
 * of the MLP and the uniform rank plan (each factored matrix keeps its planned rank) — instead of the
 * defaults chosen on the demo model (GRADOT_DEFAULTS: MLP factored by DRD, ranks allocated globally), so
 * the paper's layout and ours can be compared on the same task, seeds and budget. Reports keep the
 * compression method (`method: 'gradot'`) and name the variant (`variant: 'gradot-paper'`); the emulator
 * record's readings show the layout actually built.
 */
import { COMPRESSION_METHODS, type CompressionMethod } from './budget';

export interface MethodVariant {
  method: CompressionMethod;
  mlp: 'scp' | 'drd';
  rankAllocation: 'uniform' | 'global';
}

export const METHOD_VARIANTS: Readonly<Record<string, MethodVariant>> = {
  'gradot-paper': { method: 'gradot', mlp: 'scp', rankAllocation: 'uniform' },
};

/** Every name `--method` takes, in the order help and errors list them. */
export const OT_METHOD_NAMES: readonly string[] = [...COMPRESSION_METHODS, ...Object.keys(METHOD_VARIANTS)];

export interface ResolvedMethod {
  /** The name asked for (a method or a variant), used in report rows and file names. */
  name: string;
  method: CompressionMethod;
  /** Layout options for compressModel; absent = the method's defaults. */
  mlp?: 'scp' | 'drd';
  rankAllocation?: 'uniform' | 'global';
}

/** A `--method` name -> what to build; null for an unknown name. */
export function resolveMethod(name: string): ResolvedMethod | null {
  if ((COMPRESSION_METHODS as readonly string[]).includes(name)) return { name, method: name as CompressionMethod };
  const v = Object.hasOwn(METHOD_VARIANTS, name) ? METHOD_VARIANTS[name] : undefined;
  return v ? { name, method: v.method, mlp: v.mlp, rankAllocation: v.rankAllocation } : null;
}
