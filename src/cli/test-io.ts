/** Test helper: a CliIO that records what a command prints (stdout lines in `out`, stderr lines in `err`). */
import type { CliIO } from './command';

export function captureIO(): { io: CliIO; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (l) => out.push(l), err: (l) => err.push(l) }, out, err };
}
