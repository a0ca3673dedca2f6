/**
 * The workloads fio does not express: many small files (the AI-training
 * pattern) and metadata create/stat/unlink loops, in node with a few
 * concurrent workers (async fs calls run on libuv's thread pool, so W workers
 * keep W system calls in flight).
 */
import { mkdir, open, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { round } from './fio.js';

export interface RateFigures {
  ops: number;
  seconds: number;
  per_s: number;
}

/** Runs task(0..count-1) on `workers` concurrent loops; returns the elapsed seconds. */
async function pool(count: number, workers: number, task: (i: number) => Promise<void>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: Math.min(workers, count) }, async () => {
    for (let i = next++; i < count; i = next++) await task(i);
  }));
  return (performance.now() - t0) / 1000;
}

function rate(ops: number, seconds: number): RateFigures {
  return { ops, seconds: round(seconds, 3), per_s: round(ops / seconds, 1) };
}

export interface SmallFileSet {
  root: string;
  count: number;
  dirs: number;
  size: number;
}

function smallFilePath(s: SmallFileSet, i: number): string {
  return join(s.root, `d${String(i % s.dirs).padStart(3, '0')}`, `f${String(i).padStart(6, '0')}`);
}

/** Each file carries its index in its first bytes, so a read proves it got its own file back. */
function smallFileContent(size: number, i: number): Buffer {
  const b = Buffer.alloc(size, i & 0xff);
  b.writeUInt32LE(i, 0);
  b.writeUInt32LE(size, 4);
  return b;
}

export async function smallFilesCreate(s: SmallFileSet, workers: number): Promise<RateFigures> {
  await mkdir(s.root, { recursive: true });
  for (let d = 0; d < s.dirs; d++) await mkdir(join(s.root, `d${String(d).padStart(3, '0')}`));
  const secs = await pool(s.count, workers, (i) => writeFile(smallFilePath(s, i), smallFileContent(s.size, i), { flag: 'wx' }));
  return rate(s.count, secs);
}

export async function smallFilesRead(s: SmallFileSet, workers: number): Promise<RateFigures> {
  const secs = await pool(s.count, workers, async (i) => {
    const b = await readFile(smallFilePath(s, i));
    if (b.length !== s.size || b.readUInt32LE(0) !== i || b.readUInt32LE(4) !== s.size || b[s.size - 1] !== (i & 0xff)) {
      throw new Error(`small file ${smallFilePath(s, i)} read back wrong (${b.length} bytes)`);
    }
  });
  return rate(s.count, secs);
}

export interface MetadataFigures {
  create: RateFigures;
  stat: RateFigures;
  unlink: RateFigures;
}

/**
 * create (open O_CREAT|O_EXCL + close), stat, unlink of `count` empty files
 * spread over `dirs` directories under root; `between` runs before the stat
 * phase (the suite drops caches there, so stats go to the filesystem).
 */
export async function metadataLoop(root: string, count: number, dirs: number, workers: number, between: () => Promise<void>): Promise<MetadataFigures> {
  const dirName = (d: number) => join(root, `m${String(d).padStart(3, '0')}`);
  for (let d = 0; d < dirs; d++) await mkdir(dirName(d), { recursive: true });
  const path = (i: number) => join(dirName(i % dirs), `e${String(i).padStart(6, '0')}`);
  const create = rate(count, await pool(count, workers, async (i) => (await open(path(i), 'wx', 0o644)).close()));
  await between();
  const st = rate(count, await pool(count, workers, async (i) => {
    const s = await stat(path(i));
    if (!s.isFile() || s.size !== 0) throw new Error(`${path(i)}: not an empty file`);
  }));
  const ul = rate(count, await pool(count, workers, (i) => unlink(path(i))));
  await rm(root, { recursive: true, force: true });
  return { create, stat: st, unlink: ul };
}
