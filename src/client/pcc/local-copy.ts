/**
 * One file's copy in a PCC backend directory: written whole from a stream (temporary name,
 * fsync, rename, so a crash never leaves a half copy under the real name), then opened for
 * the I/O the mount routes to it, and streamed back out by a restore.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, rename, unlink, utimes, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Timestamp } from '../../common/time.js';

const DIR_MODE = 0o700;
const FILE_MODE = 0o600;

export interface CopyResult {
  size: number;
  /** "sha256:<hex>", as HSM records archive copies */
  checksum: string;
}

function toDate(t: Timestamp): Date {
  return new Date(t.sec * 1000 + Math.floor(t.nsec / 1e6));
}

/**
 * Writes `source` to `path` (replacing what was there once complete) and gives it `times`,
 * so the copy's mtime only moves when the copy is written to.
 */
export async function writeCopy(path: string, source: AsyncIterable<Buffer>, times?: { atime: Timestamp; mtime: Timestamp }): Promise<CopyResult> {
  await mkdir(dirname(path), { recursive: true, mode: DIR_MODE });
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  const hash = createHash('sha256');
  let size = 0;
  try {
    const fh = await open(tmp, 'wx', FILE_MODE);
    try {
      for await (const chunk of source) {
        for (let at = 0; at < chunk.length; ) {
          const { bytesWritten } = await fh.write(chunk, at, chunk.length - at, size + at);
          at += bytesWritten;
        }
        hash.update(chunk);
        size += chunk.length;
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (times) await utimes(tmp, toDate(times.atime), toDate(times.mtime));
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  return { size, checksum: `sha256:${hash.digest('hex')}` };
}

/** The copy, open for the mount's I/O. */
export class LocalCopy {
  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
  ) {}

  static async open(path: string): Promise<LocalCopy> {
    return new LocalCopy(path, await open(path, 'r+'));
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(length);
    let fill = 0;
    while (fill < length) {
      const { bytesRead } = await this.fh.read(buf, fill, length - fill, offset + fill);
      if (bytesRead === 0) break;
      fill += bytesRead;
    }
    return buf.subarray(0, fill);
  }

  async write(offset: number, data: Buffer): Promise<void> {
    for (let at = 0; at < data.length; ) {
      const { bytesWritten } = await this.fh.write(data, at, data.length - at, offset + at);
      at += bytesWritten;
    }
  }

  truncate(size: number): Promise<void> {
    return this.fh.truncate(size);
  }

  sync(): Promise<void> {
    return this.fh.sync();
  }

  async stat(): Promise<{ size: number; mtime: Timestamp; atime: Timestamp }> {
    const st = await this.fh.stat({ bigint: true });
    const ts = (ns: bigint): Timestamp => ({ sec: Number(ns / 1_000_000_000n), nsec: Number(ns % 1_000_000_000n) });
    return { size: Number(st.size), mtime: ts(st.mtimeNs), atime: ts(st.atimeNs) };
  }

  /** The whole copy in chunks of `chunkSize`, with its sha256 once the last chunk went. */
  async *chunks(chunkSize: number, digest: { checksum?: string }): AsyncGenerator<{ offset: number; data: Buffer }> {
    const hash = createHash('sha256');
    for (let offset = 0; ; ) {
      const data = await this.read(offset, chunkSize);
      if (data.length === 0) break;
      hash.update(data);
      yield { offset, data };
      offset += data.length;
      if (data.length < chunkSize) break;
    }
    digest.checksum = `sha256:${hash.digest('hex')}`;
  }

  close(): Promise<void> {
    return this.fh.close();
  }
}

export async function removeCopy(path: string): Promise<void> {
  await unlink(path).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'ENOENT') throw e;
  });
}
