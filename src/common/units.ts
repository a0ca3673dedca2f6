/** Sizes as Lustre tools write them: 4M, 64k, 1G (base 2); a bare number is bytes. */
import { err } from './errno.js';

const SCALE: Record<string, number> = { '': 1, b: 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40, p: 2 ** 50, e: 2 ** 60 };

export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([bkmgtpe]?)(?:i?b)?$/i.exec(text.trim());
  if (!m) throw err('EINVAL', `invalid size '${text}' (examples: 1048576, 64K, 4M, 1G)`, 'BAD_SIZE');
  const v = Number(m[1]) * SCALE[m[2]!.toLowerCase()]!;
  if (!Number.isSafeInteger(Math.round(v))) throw err('EINVAL', `size '${text}' is too large`, 'BAD_SIZE');
  return Math.round(v);
}
