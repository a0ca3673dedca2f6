/**
 * What a cache dir holds after a restart: the index file a clean close wrote, or, when
 * there is none (crash, first use of an older dir), a scan of the block files' headers.
 * The index file is removed as soon as it is read, so a crash later forces a scan
 * rather than trusting an index that no longer matches the disk.
 */
import { open, readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { pack, unpack } from 'msgpackr';
import { crc32c } from '@node-rs/crc32';
import { writeFileAtomic } from '../../common/atomic-file.js';
import {
  BLOCK_HEADER_BYTES,
  BLOCKS_SUBDIR,
  MAX_KEY_BYTES,
  TEMP_MARKER,
  decodeBlockHeader,
  keyHash,
} from './ssd-block-file.js';

export const INDEX_FILE = 'index.bin';
const INDEX_MAGIC = Buffer.from('STRIASSDIDX1');
const SCAN_CONCURRENCY = 64;

export interface IndexRecord {
  key: string;
  /** data bytes */
  size: number;
  /** last access (ms since epoch); orders the LRU on restart */
  at: number;
  /** in the protected (read more than once) segment */
  hot: boolean;
}

export interface LoadResult {
  records: IndexRecord[];
  source: 'index' | 'scan';
  /** fan-out directories that exist (relative paths), so puts need not mkdir them */
  fanoutDirs: string[];
  /** block files removed as partial, foreign or damaged */
  removed: number;
}

export async function writeIndexFile(dir: string, records: IndexRecord[]): Promise<void> {
  const flat: Array<string | number> = [];
  for (const r of records) flat.push(r.key, r.size, r.at, r.hot ? 1 : 0);
  const payload = pack(flat);
  const head = Buffer.alloc(INDEX_MAGIC.length + 4);
  INDEX_MAGIC.copy(head, 0);
  head.writeUInt32BE(crc32c(payload) >>> 0, INDEX_MAGIC.length);
  await writeFileAtomic(join(dir, INDEX_FILE), Buffer.concat([head, payload]));
}

/** Reads and deletes the index file; undefined when it is missing or damaged. */
async function takeIndexFile(dir: string): Promise<IndexRecord[] | undefined> {
  const path = join(dir, INDEX_FILE);
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  await unlink(path);
  const at = INDEX_MAGIC.length;
  if (buf.length < at + 4 || !buf.subarray(0, at).equals(INDEX_MAGIC)) return undefined;
  const payload = buf.subarray(at + 4);
  if ((crc32c(payload) >>> 0) !== buf.readUInt32BE(at)) return undefined;
  let flat: unknown;
  try {
    flat = unpack(payload);
  } catch {
    return undefined;
  }
  if (!Array.isArray(flat) || flat.length % 4 !== 0) return undefined;
  const records: IndexRecord[] = [];
  for (let i = 0; i < flat.length; i += 4) {
    const [key, size, when, hot] = flat.slice(i, i + 4) as [unknown, unknown, unknown, unknown];
    if (typeof key !== 'string' || typeof size !== 'number' || typeof when !== 'number') return undefined;
    records.push({ key, size, at: when, hot: hot === 1 });
  }
  return records;
}

async function listFanout(dir: string): Promise<{ dirs: string[]; files: string[] }> {
  const dirs: string[] = [];
  const files: string[] = [];
  const root = join(dir, BLOCKS_SUBDIR);
  for (const l1 of await readdir(root, { withFileTypes: true })) {
    if (!l1.isDirectory()) continue;
    const rel1 = join(BLOCKS_SUBDIR, l1.name);
    dirs.push(rel1);
    for (const l2 of await readdir(join(dir, rel1), { withFileTypes: true })) {
      if (!l2.isDirectory()) continue;
      const rel2 = join(rel1, l2.name);
      dirs.push(rel2);
      for (const f of await readdir(join(dir, rel2))) files.push(join(rel2, f));
    }
  }
  return { dirs, files };
}

/** Reads one block file's header; the record when the file is a whole block stored under its own name. */
async function scanOne(dir: string, rel: string, buf: Buffer): Promise<IndexRecord | undefined> {
  const name = rel.slice(rel.lastIndexOf('/') + 1);
  if (name.includes(TEMP_MARKER)) return undefined;
  const fh = await open(join(dir, rel), 'r');
  try {
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    const h = decodeBlockHeader(buf.subarray(0, bytesRead));
    if (!h || keyHash(h.key) !== name) return undefined;
    const st = await fh.stat();
    // a short file is a put cut off by a crash; its data must never be served
    if (st.size !== h.dataOffset + h.dataLen) return undefined;
    return { key: h.key, size: h.dataLen, at: Math.max(st.atimeMs, st.mtimeMs), hot: false };
  } finally {
    await fh.close();
  }
}

async function scanDir(dir: string): Promise<LoadResult> {
  const { dirs, files } = await listFanout(dir);
  const records: IndexRecord[] = [];
  let removed = 0;
  let next = 0;
  const worker = async (): Promise<void> => {
    const buf = Buffer.allocUnsafe(BLOCK_HEADER_BYTES + MAX_KEY_BYTES);
    while (next < files.length) {
      const rel = files[next++]!;
      let rec: IndexRecord | undefined;
      try {
        rec = await scanOne(dir, rel, buf);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw e;
      }
      if (rec) {
        records.push(rec);
      } else {
        removed++;
        await unlink(join(dir, rel)).catch(() => undefined);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(SCAN_CONCURRENCY, files.length) }, worker));
  return { records, source: 'scan', fanoutDirs: dirs, removed };
}

/** What dir holds: from its index file when a clean close left one, else by scanning. */
export async function loadDir(dir: string): Promise<LoadResult> {
  const fromIndex = await takeIndexFile(dir);
  if (!fromIndex) return scanDir(dir);
  return { records: fromIndex, source: 'index', fanoutDirs: [], removed: 0 };
}
