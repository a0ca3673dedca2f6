/**
 * Archive in a POSIX directory (a local disk, NFS, another parallel filesystem): the copy
 * of key K is the file ROOT/K and its checksum the sidecar ROOT/K.sha256 ("sha256:<hex>\n").
 * A put writes both under temporary names, fsyncs them, drops the old sidecar, then renames
 * the data and the sidecar into place and fsyncs the directory: a crash leaves the old copy,
 * the new one, or the new one without a checksum (then only the caller's expected checksum
 * is checked), never a mix of old data and a new checksum.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { err, toStriaError } from '../common/errno.js';
import {
  CHECKSUM_SUFFIX, StreamDigest, chunkSizeOf, checkDigest, checkExpected, digested, noObject, sizeMismatch, throwIfAborted, validateKey,
  type ArchiveBackend, type ArchivedObject, type ChunkSink, type GetOptions, type ObjectDigest, type PutOptions,
} from './archive-backend.js';

export interface PosixBackendOptions {
  /** create the root directory when missing (otherwise it must exist) */
  create?: boolean;
}

const FILE_MODE = 0o600;
const DIR_MODE = 0o700;

export class PosixBackend implements ArchiveBackend {
  private constructor(readonly root: string) {}

  static async open(root: string, opts: PosixBackendOptions = {}): Promise<PosixBackend> {
    const dir = resolve(root);
    if (opts.create) await mkdir(dir, { recursive: true, mode: DIR_MODE });
    let st;
    try {
      st = await stat(dir);
    } catch (e) {
      const se = toStriaError(e);
      throw err(se.code === 'ENOENT' ? 'ENOENT' : 'EIO', `archive directory ${dir}: ${se.message}`, 'BAD_ARCHIVE_DIR');
    }
    if (!st.isDirectory()) throw err('ENOTDIR', `archive directory ${dir} is not a directory`, 'BAD_ARCHIVE_DIR');
    return new PosixBackend(dir);
  }

  describe(): string {
    return `posix:${this.root}`;
  }

  private path(key: string): string {
    validateKey(key);
    return join(this.root, key);
  }

  async put(key: string, data: AsyncIterable<Buffer>, size: number, opts: PutOptions = {}): Promise<ObjectDigest> {
    const path = this.path(key);
    const dir = dirname(path);
    await mkdir(dir, { recursive: true, mode: DIR_MODE });
    const tag = `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
    const tmpData = `${path}${tag}`;
    const tmpSum = `${path}${CHECKSUM_SUFFIX}${tag}`;
    try {
      const digest = new StreamDigest();
      const fh = await open(tmpData, 'wx', FILE_MODE);
      try {
        for await (const chunk of digested(data, digest, size, key, opts.signal)) await writeAll(fh, chunk);
        if (digest.bytes !== size) throw sizeMismatch(key, size, digest.bytes);
        await fh.sync();
      } finally {
        await fh.close();
      }
      const checksum = digest.digest();
      await writeSynced(tmpSum, `${checksum}\n`);
      throwIfAborted(opts.signal, `archive ${key}`);
      await unlinkIfPresent(`${path}${CHECKSUM_SUFFIX}`);
      await rename(tmpData, path);
      await rename(tmpSum, `${path}${CHECKSUM_SUFFIX}`);
      await syncDir(dir);
      return { size, checksum };
    } catch (e) {
      await unlinkIfPresent(tmpData);
      await unlinkIfPresent(tmpSum);
      throw e;
    }
  }

  async get(key: string, sink: ChunkSink, opts: GetOptions = {}): Promise<ObjectDigest> {
    const path = this.path(key);
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw noObject(key, this.root);
      throw e;
    }
    try {
      const stored = await this.storedChecksum(path);
      checkExpected(key, stored, opts.expectedChecksum);
      const size = (await fh.stat()).size;
      const digest = new StreamDigest();
      const chunkSize = chunkSizeOf(opts);
      let last: Buffer | undefined;
      for (let pos = 0; ; ) {
        throwIfAborted(opts.signal, `restore of ${key}`);
        const chunk = Buffer.allocUnsafe(chunkSize);
        let fill = 0;
        while (fill < chunkSize) {
          const { bytesRead } = await fh.read(chunk, fill, chunkSize - fill, pos + fill);
          if (bytesRead === 0) break;
          fill += bytesRead;
        }
        if (fill === 0) break;
        digest.update(chunk.subarray(0, fill));
        if (fill < chunkSize) {
          // the end: delivered once the whole file checked out
          last = chunk.subarray(0, fill);
          break;
        }
        await sink(chunk, pos);
        pos += fill;
      }
      const result = checkDigest(key, digest, size, stored, opts.expectedChecksum);
      if (last) await sink(last, size - last.length);
      return result;
    } finally {
      await fh.close();
    }
  }

  async head(key: string): Promise<ArchivedObject | undefined> {
    const path = this.path(key);
    let size: number;
    try {
      size = (await stat(path)).size;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    return { size, checksum: await this.storedChecksum(path) };
  }

  async remove(key: string): Promise<void> {
    const path = this.path(key);
    await unlinkIfPresent(path);
    await unlinkIfPresent(`${path}${CHECKSUM_SUFFIX}`);
  }

  async close(): Promise<void> {
    // nothing held between calls
  }

  private async storedChecksum(path: string): Promise<string | undefined> {
    try {
      return (await readFile(`${path}${CHECKSUM_SUFFIX}`, 'utf8')).trim();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }
}

async function writeAll(fh: FileHandle, chunk: Buffer): Promise<void> {
  for (let at = 0; at < chunk.length; ) {
    const { bytesWritten } = await fh.write(chunk, at, chunk.length - at);
    at += bytesWritten;
  }
}

async function writeSynced(path: string, text: string): Promise<void> {
  const fh = await open(path, 'wx', FILE_MODE);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function unlinkIfPresent(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}
