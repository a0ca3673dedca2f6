/** Nanosecond timestamps as {sec, nsec}: a JS number cannot hold ns since the epoch. */
export interface Timestamp {
  sec: number;
  nsec: number;
}

export function now(): Timestamp {
  const ns = process.hrtime.bigint() - hrtimeOrigin + epochOriginNs;
  return fromNs(ns);
}

const epochOriginNs = BigInt(Date.now()) * 1_000_000n;
const hrtimeOrigin = process.hrtime.bigint();

/** Floored, so times before 1970 keep 0 <= nsec < 1e9. */
export function fromNs(ns: bigint): Timestamp {
  let sec = ns / 1_000_000_000n;
  let nsec = ns % 1_000_000_000n;
  if (nsec < 0n) {
    nsec += 1_000_000_000n;
    sec -= 1n;
  }
  return { sec: Number(sec), nsec: Number(nsec) };
}

export function toNs(t: Timestamp): bigint {
  return BigInt(t.sec) * 1_000_000_000n + BigInt(t.nsec);
}

export function compareTime(a: Timestamp, b: Timestamp): number {
  return a.sec !== b.sec ? a.sec - b.sec : a.nsec - b.nsec;
}

export function isTimestamp(x: unknown): x is Timestamp {
  if (!x || typeof x !== 'object') return false;
  const t = x as Record<string, unknown>;
  return Number.isSafeInteger(t.sec) && Number.isInteger(t.nsec) && (t.nsec as number) >= 0 && (t.nsec as number) < 1e9;
}
