import { describe, expect, it } from 'vitest';
import { COMMANDS, loadCommand, main } from './main';
import { commandHelpText, documentedOptions, HELP } from './help';

describe('command help', () => {
  it('documents exactly the options each usage line names, with an example per command', async () => {
    for (const { name } of COMMANDS) {
      const cmd = await loadCommand(name);
      if (!cmd) continue;
      const inUsage = [...new Set([...cmd.usage.matchAll(/--([a-z][a-z0-9-]*)/g)].map((m) => m[1]!))].filter(
        (o) => o !== 'json' && o !== 'help',
      );
      const documented = documentedOptions(name);
      expect(HELP[name], `${name} has help`).toBeDefined();
      // The shared tuning usage names --seeds "(ot)"; it is documented for ot only.
      for (const o of inUsage) if (!(o === 'seeds' && name !== 'ot')) expect(documented, `${name}: --${o} documented`).toContain(o);
      // Documented beyond the usage line: only tuning options every tuning command parses.
      for (const o of documented)
        if (!inUsage.includes(o)) expect(['checkpoint-every', 'eval-batch'], `${name}: --${o} is parsed`).toContain(o);
      expect(HELP[name]!.examples.length, `${name}: examples`).toBeGreaterThan(0);
      for (const ex of HELP[name]!.examples) expect(ex.startsWith(`gradot ${name} `) || ex === `gradot ${name}`, ex).toBe(true);
    }
  });

  it('prints a line per option with its default', async () => {
    const out: string[] = [];
    const code = await main(['compress', '--help'], { out: (l) => out.push(l), err: () => undefined });
    expect(code).toBe(0);
    const text = out.join('\n');
    expect(text).toMatch(/--adapters L:R\s+.*\(default: 2:2\)/);
    expect(text).toMatch(/--support DATA\s+.*bundled task NAME/);
    expect(text).toMatch(/example/);
    expect(commandHelpText('nope', 'gradot nope', 's')).toBe('usage: gradot nope\n\ns');
  });
});
