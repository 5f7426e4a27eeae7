/**
 * The contract every `gradot` subcommand implements. A command lives in `src/cli/commands/<name>.ts` and
 * exports `command: Command`; main.ts finds it by name, so adding compress/tune/eval/plug/ot/bench needs
 * no edit to main.ts.
 */

export interface CliIO {
  /** One line to stdout (the JSON result goes here). */
  out(line: string): void;
  /** One line to stderr (progress, warnings), so `--json` stdout stays a single line. */
  err(line: string): void;
}

export interface CommandContext extends CliIO {
  /** `--json` was given: the result is printed as one line of JSON. */
  json: boolean;
  cwd: string;
}

export interface CommandResult {
  /** Machine-readable result; printed as one line with --json. */
  json: Record<string, unknown>;
  /** Human-readable rendering, printed without --json. */
  text: string;
  /** Process exit code (default 0). */
  exitCode?: number;
}

export interface Command {
  name: string;
  summary: string;
  usage: string;
  /** argv after the command name, with --json already removed. */
  run(argv: string[], ctx: CommandContext): Promise<CommandResult>;
}

/** Bad invocation: printed with the command's usage, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}
