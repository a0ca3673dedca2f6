/**
 * On-disk layout of one SSD cache block: a fixed header, the key, then the data.
 *
 *   magic "SSB1" | keyLen u16 | reserved u16 | dataLen u32 | dataCrc u32 | headerCrc u32 | key | data
 *
 * headerCrc (crc32c of the first 16 bytes and the key) lets the restart scan trust a
 * header it read without reading the data; dataCrc is checked on every get.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { crc32c } from '@node-rs/crc32';

export const BLOCK_MAGIC = 0x53534231; // "SSB1"
export const BLOCK_HEADER_BYTES = 20;
/** keys longer than this are not cached (keeps the scan's header read one small read) */
export const MAX_KEY_BYTES = 1024;
/** subdirectory of each cache dir holding the fan-out of block files */
export const BLOCKS_SUBDIR = 'blocks';
/** temp files carry this marker until renamed into place; the scan deletes leftovers */
export const TEMP_MARKER = '.tmp.';

export interface BlockHeader {
  key: string;
  dataLen: number;
  dataCrc: number;
  /** header + key bytes: where the data starts */
  dataOffset: number;
}

/** 40 hex chars naming the block file of a key. */
export function keyHash(key: string): string {
  return createHash('sha1').update(key).digest('hex');
}

/** `blocks/ab/cd/<hash>` relative to a cache dir: two levels of 256 keep directories small at 100k+ blocks. */
export function blockRelPath(hash: string): { level1: string; level2: string; file: string } {
  const level1 = join(BLOCKS_SUBDIR, hash.slice(0, 2));
  const level2 = join(level1, hash.slice(2, 4));
  return { level1, level2, file: join(level2, hash) };
}

/** The header and key, to be written before the data. */
export function encodeBlockHeader(key: string, data: Uint8Array): Buffer {
  const keyBytes = Buffer.from(key, 'utf8');
  const head = Buffer.alloc(BLOCK_HEADER_BYTES + keyBytes.length);
  head.writeUInt32BE(BLOCK_MAGIC, 0);
  head.writeUInt16BE(keyBytes.length, 4);
  head.writeUInt16BE(0, 6);
  head.writeUInt32BE(data.length, 8);
  head.writeUInt32BE(crc32c(data) >>> 0, 12);
  keyBytes.copy(head, BLOCK_HEADER_BYTES);
  head.writeUInt32BE(headerCrc(head, keyBytes.length), 16);
  return head;
}

function headerCrc(buf: Buffer, keyLen: number): number {
  const fixed = crc32c(buf.subarray(0, 16));
  return crc32c(buf.subarray(BLOCK_HEADER_BYTES, BLOCK_HEADER_BYTES + keyLen), fixed) >>> 0;
}

/** Parses a header from the start of a block file; undefined when it is not a whole, valid header. */
export function decodeBlockHeader(buf: Buffer): BlockHeader | undefined {
  if (buf.length < BLOCK_HEADER_BYTES || buf.readUInt32BE(0) !== BLOCK_MAGIC) return undefined;
  const keyLen = buf.readUInt16BE(4);
  if (keyLen > MAX_KEY_BYTES || buf.length < BLOCK_HEADER_BYTES + keyLen) return undefined;
  if (buf.readUInt32BE(16) !== headerCrc(buf, keyLen)) return undefined;
  return {
    key: buf.toString('utf8', BLOCK_HEADER_BYTES, BLOCK_HEADER_BYTES + keyLen),
    dataLen: buf.readUInt32BE(8),
    dataCrc: buf.readUInt32BE(12),
    dataOffset: BLOCK_HEADER_BYTES + keyLen,
  };
}

/** The data of a whole block file if its header, key, length and checksum all match; undefined otherwise. */
export function decodeBlock(buf: Buffer, expectKey: string): Buffer | undefined {
  const h = decodeBlockHeader(buf);
  if (!h || h.key !== expectKey || buf.length !== h.dataOffset + h.dataLen) return undefined;
  const data = buf.subarray(h.dataOffset);
  return (crc32c(data) >>> 0) === h.dataCrc ? data : undefined;
}
