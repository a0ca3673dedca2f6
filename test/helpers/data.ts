/** Deterministic pseudo-random data so a test can regenerate what it wrote. */
export function pseudoRandomBuffer(length: number, seed: number): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let s = seed >>> 0 || 1;
  let i = 0;
  for (; i + 4 <= length; i += 4) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    buf.writeUInt32LE(s, i);
  }
  for (; i < length; i++) buf[i] = i & 0xff;
  return buf;
}

export function mibPerSec(bytes: number, ms: number): string {
  return ((bytes / (1024 * 1024)) / (ms / 1000)).toFixed(1);
}
