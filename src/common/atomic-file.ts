/** Durable whole-file replacement: write a temp file, fsync it, rename over, fsync the directory. */
import { open, rename, readFile, unlink } from 'node:fs/promises';
import { dirname, join, basename } from 'node:path';

let tmpSeq = 0;

export async function writeFileAtomic(path: string, data: string | Buffer): Promise<void> {
  // Unique per call: two overlapping replacements of one file must not share a temp file.
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${++tmpSeq}.tmp`);
  const fh = await open(tmp, 'w', 0o644);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  const dirFh = await open(dirname(path), 'r');
  try {
    await dirFh.sync();
  } finally {
    await dirFh.close();
  }
}

/** Reads and parses a JSON file; undefined when it does not exist. */
export async function readJsonFile<T>(path: string): Promise<T | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  return JSON.parse(text) as T;
}
