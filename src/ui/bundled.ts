/**
 * Task folders shipped with the site under public/data (train/valid/test JSONL each), so a hosted demo can
 * run every job, GradOT's support pass included, without any file of the visitor's.
 */
import type { InputFile } from '../jobs/studio-api';
import { fetchFiles } from './studio';

export const BUNDLED_TASKS = ['genre-short-mc', 'genre-mc', 'imdb-sentiment-mc', 'imdb-sentiment-qa', 'wordnet-def-mc', 'spam-mc'];

export async function fetchBundledTask(name: string): Promise<InputFile[]> {
  // Named under the task's folder, so runs and messages say which task (not just "test.jsonl").
  return (await fetchFiles(`./data/${name}/`, ['train.jsonl', 'test.jsonl'], ['valid.jsonl'])).map((f) => ({
    ...f,
    path: `${name}/${f.path}`,
  }));
}

/** One file of a bundled task, named after the task so messages and package manifests say where it came from. */
export async function fetchBundledFile(name: string, file: 'train.jsonl' | 'test.jsonl'): Promise<InputFile> {
  const [f] = await fetchFiles(`./data/${name}/`, [file]);
  return { path: `${name}/${file}`, data: f!.data };
}
