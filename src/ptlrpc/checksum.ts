/** crc32c of bulk payloads, chained across the buffers of a multi-buffer bulk. */
import { crc32c } from '@node-rs/crc32';
import type { MsgHeader } from './types.js';

export function bulkChecksum(bulk: Buffer | readonly Buffer[] | undefined): number {
  if (bulk === undefined) return 0;
  if (!Array.isArray(bulk)) return crc32c(bulk as Buffer) >>> 0;
  let crc = 0;
  for (const b of bulk as readonly Buffer[]) crc = crc32c(b, crc);
  return crc >>> 0;
}

/** True when the frame carries no checksum or its bulk matches it. */
export function bulkChecksumMatches(header: MsgHeader, bulk: Buffer | undefined): boolean {
  if (header.ck === undefined) return true;
  return bulkChecksum(bulk) === header.ck;
}
