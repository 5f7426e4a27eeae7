/**
 * Prints the Markdown report (the five numbers, the privacy side and the verdicts, report.ts) of saved
 * `gradot ot` reports, so that reports written before the verdicts existed can be read in their terms:
 *
 *   npx tsx src/ot/experiments/report-of.ts docs/ot-demo/genre-short-mc-lora-keep0.3.json [more.json …]
 *
 * Each argument is a report.json (an array of runs) or a folder holding one.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { OTReport } from '../offsite/protocol';
import { markdownTable } from '../offsite/report';

const reports = process.argv.slice(2).flatMap((p) => {
  const file = statSync(p).isDirectory() ? join(p, 'report.json') : p;
  return JSON.parse(readFileSync(file, 'utf8')) as OTReport[];
});
console.log(markdownTable(reports));
