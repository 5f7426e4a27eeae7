#!/usr/bin/env node
// Launcher for `npx gradot`: registers tsx's ESM loader in-process and runs the TypeScript CLI, so no build
// step is needed after `npm ci`.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
