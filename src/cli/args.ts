/**
 * Thin layer over node:util parseArgs: typed options, numbers validated, and every mistake reported as a
 * UsageError (exit 2) rather than a stack trace.
 */
import { parseArgs } from 'node:util';
import { UsageError } from './command';

export interface OptionSpec {
  type: 'string' | 'boolean' | 'number';
  short?: string;
  multiple?: boolean;
  default?: string | boolean | number;
}

export type ParsedOptions = Record<string, string | boolean | number | string[] | number[] | undefined>;

export interface ParsedArgs {
  positionals: string[];
  options: ParsedOptions;
}

export function parseCommandArgs(
  argv: string[],
  spec: Record<string, OptionSpec>,
  positionals: { min?: number; max?: number } = {},
): ParsedArgs {
  const utilSpec: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const [k, o] of Object.entries(spec)) {
    utilSpec[k] = {
      type: o.type === 'boolean' ? 'boolean' : 'string',
      ...(o.short ? { short: o.short } : {}),
      ...(o.multiple ? { multiple: true } : {}),
    };
  }
  let parsed: { values: Record<string, string | boolean | (string | boolean)[] | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({ args: argv, options: utilSpec, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/^TypeError \[[A-Z_]+\]: /, ''));
  }
  const options: ParsedOptions = {};
  for (const [k, o] of Object.entries(spec)) {
    const v = parsed.values[k];
    if (v === undefined) {
      if (o.default !== undefined) options[k] = o.default;
      continue;
    }
    if (o.type === 'number') {
      const conv = (s: unknown): number => {
        const n = Number(s);
        if (typeof s !== 'string' || s.trim() === '' || !Number.isFinite(n))
          throw new UsageError(`--${k} expects a number, got '${String(s)}'`);
        return n;
      };
      options[k] = Array.isArray(v) ? v.map(conv) : conv(v);
    } else {
      options[k] = v as string | boolean | string[];
    }
  }
  const { min = 0, max = Infinity } = positionals;
  if (parsed.positionals.length < min) throw new UsageError(`expected ${min} positional argument(s), got ${parsed.positionals.length}`);
  if (parsed.positionals.length > max) throw new UsageError(`unexpected argument '${parsed.positionals[max]}'`);
  return { positionals: parsed.positionals, options };
}

/** Removes every `--json` from argv; returns whether one was there. */
export function takeJsonFlag(argv: string[]): { json: boolean; rest: string[] } {
  const rest = argv.filter((a) => a !== '--json');
  return { json: rest.length !== argv.length, rest };
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

export function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}

/** Plain-text table with right-aligned numeric columns. */
export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, c) => Math.max(...cells.map((r) => (r[c] ?? '').length)));
  const numeric = header.map(
    (_, c) => rows.length > 0 && rows.every((r) => typeof r[c] === 'number' || /^[\d.,]+[KMB]?$/.test(String(r[c]))),
  );
  const fmt = (r: string[]): string =>
    r
      .map((s, c) => (numeric[c] ? s.padStart(widths[c]!) : s.padEnd(widths[c]!)))
      .join('  ')
      .trimEnd();
  return [fmt(cells[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(fmt)].join('\n');
}
