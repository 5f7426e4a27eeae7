/**
 * `gradot` command line: dispatch to src/cli/commands/<name>.ts. `--json` anywhere makes the command print
 * exactly one line of JSON on stdout (errors too, as {"ok": false, "error": ...}); progress goes to stderr.
 */
import { pathToFileURL } from 'node:url';
import { UsageError, type CliIO, type Command } from './command';
import { namedError } from '../faults/fs-errors';
import { takeJsonFlag } from './args';
import { startThreads, takeThreadsFlag } from './threads';
import { commandHelpText } from './help';

/**
 * Every `gradot` command. A command is available once `./commands/<name>.ts` exists and exports
 * `command`; until then it reports that it is not available in this build (exit 2).
 */
export const COMMANDS: { name: string; summary: string }[] = [
  { name: 'inspect', summary: 'architecture, layers, widths, parameter counts of a model folder' },
  { name: 'compress', summary: 'build an emulator package (gradot | drop | svd | prune) and its report' },
  { name: 'tune', summary: 'fine-tune adapters of an emulator package' },
  { name: 'eval', summary: 'loss, perplexity, accuracy of a model or emulator (+ adapter) on a task' },
  { name: 'plug', summary: 'plug tuned adapters back into the full model' },
  { name: 'ot', summary: 'the whole offsite-tuning protocol and the five-number report' },
  { name: 'bench', summary: 'kernel and end-to-end throughput against in-process references' },
  { name: 'export-onnx', summary: 'export a model, emulator or plug-in model to ONNX (transformers.js layout)' },
  { name: 'ort-eval', summary: 'evaluate a model state through its ONNX export in onnxruntime' },
  { name: 'make-model', summary: 'write a hub-shaped random checkpoint (gpt2, opt-125m, qwen2.5-0.5b, ...) for tests and benchmarks' },
];

export async function loadCommand(name: string): Promise<Command | null> {
  if (!COMMANDS.some((c) => c.name === name)) return null;
  const url = new URL(`./commands/${name}.ts`, import.meta.url);
  try {
    const mod = (await import(/* @vite-ignore */ url.href)) as { command?: Command };
    if (!mod.command) throw new Error(`src/cli/commands/${name}.ts does not export 'command'`);
    return mod.command;
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' && String((e as Error).message).includes(`${name}.ts`)) return null;
    throw e;
  }
}

function helpText(): string {
  const w = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'usage: gradot <command> [args] [--json] [--threads N]',
    '',
    'commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(w)}  ${c.summary}`),
    '',
    "run 'gradot <command> --help' for a command's options, their defaults and examples",
    '',
    'example: gradot ot public/models/demo --method gradot,svd --keep 0.3 --task genre-short-mc --limit-train 256 --limit-test 200',
  ].join('\n');
}

const defaultIO: CliIO = {
  out: (l) => process.stdout.write(l + '\n'),
  err: (l) => process.stderr.write(l + '\n'),
};

function errorJson(e: unknown): Record<string, unknown> {
  const err = e as Error & { code?: unknown; file?: unknown; tensor?: unknown };
  const o: Record<string, unknown> = { name: err?.name ?? 'Error', message: err?.message ?? String(e) };
  for (const k of ['code', 'file', 'tensor'] as const) if (err && err[k] !== undefined) o[k] = err[k];
  return o;
}

/** Runs one invocation; returns the exit code (0 ok, 1 failure, 2 usage). */
export async function main(argv: string[], io: CliIO = defaultIO, cwd = process.cwd()): Promise<number> {
  const { json, rest: afterJson } = takeJsonFlag(argv);
  let threads: number | undefined;
  let rest = afterJson;
  try {
    ({ threads, rest } = takeThreadsFlag(afterJson));
  } catch (e) {
    if (json) io.out(JSON.stringify({ ok: false, command: null, error: errorJson(e) }));
    else io.err(`gradot: ${(e as Error).message}`);
    return 2;
  }
  const [name, ...args] = rest;
  const fail = (e: unknown, code: number, usage?: string): number => {
    if (json) io.out(JSON.stringify({ ok: false, command: name ?? null, error: errorJson(e) }));
    else {
      io.err(`gradot${name ? ` ${name}` : ''}: ${(e as Error).message ?? String(e)}`);
      if (usage) io.err(`usage: ${usage}`);
    }
    return code;
  };
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    if (json) io.out(JSON.stringify({ ok: true, commands: COMMANDS }));
    else io.out(helpText());
    return name ? 0 : 2;
  }
  let cmd: Command | null;
  try {
    cmd = await loadCommand(name);
  } catch (e) {
    return fail(e, 1);
  }
  if (!cmd) {
    const known = COMMANDS.some((c) => c.name === name);
    return fail(
      new UsageError(known ? `'${name}' is not available in this build yet` : `unknown command '${name}' (see gradot --help)`),
      2,
    );
  }
  if (args.includes('--help') || args.includes('-h')) {
    if (json) io.out(JSON.stringify({ ok: true, command: cmd.name, usage: cmd.usage, summary: cmd.summary }));
    else io.out(commandHelpText(cmd.name, cmd.usage, cmd.summary));
    return 0;
  }
  try {
    // The CPU backend's thread pool (a no-op when already started at this count).
    const { warning } = await startThreads(threads);
    if (warning) io.err(warning);
    const r = await cmd.run(args, { ...io, json, cwd });
    if (json) io.out(JSON.stringify({ ok: true, command: cmd.name, ...r.json }));
    else io.out(r.text);
    return r.exitCode ?? 0;
  } catch (e) {
    if (e instanceof UsageError) return fail(e, 2, cmd.usage);
    return fail(namedError(e), 1); // raw Node file errors get the file and a plain reason
  }
}

const isEntry = typeof process !== 'undefined' && process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isEntry) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
