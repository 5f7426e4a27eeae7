/**
 * Prints the Markdown table of a λ sweep of `gradot ot` runs (one report folder per λ; lambda-sweep-table.ts
 * says what each column is), as in docs/ot-compression.md ("λ"):
 *
 *   for l in 0 0.5 1 2 4 8; do npx gradot ot public/models/demo --method gradot --keep 0.3 --adapters 1:1 ... \
 *       --lambda-mode balanced --lambda-attn $l --lambda-mlp $l --out /tmp/sweep/balanced-$l; done
 *   npx tsx src/ot/experiments/lambda-sweep.ts /tmp/sweep/balanced-0 /tmp/sweep/balanced-0.5 ...
 *   npx tsx src/ot/experiments/lambda-sweep.ts docs/ot-demo/genre-short-mc-lora-keep0.3-lambda.json
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { OTReport } from '../offsite/protocol';
import { lambdaSweepTable } from './lambda-sweep-table';

// Each argument: a report folder (its report.json) or a JSON file of reports (docs/ot-demo/…-lambda.json).
const reports = process.argv
  .slice(2)
  .flatMap((p) => JSON.parse(readFileSync(statSync(p).isDirectory() ? join(p, 'report.json') : p, 'utf8')) as OTReport[]);
console.log(lambdaSweepTable(reports));
