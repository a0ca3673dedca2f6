/**
 * Store keys are strings ordered by their UTF-8 bytes (the order LMDB and
 * Redis sorted sets use). JavaScript compares UTF-16 code units, which
 * disagrees for characters above U+FFFF versus U+E000..U+FFFF, so in-memory
 * layers compare with this instead.
 */

/** <0, 0, >0 as `a` sorts before, with, after `b` in UTF-8 byte order. */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return utf8Rank(x) - utf8Rank(y);
  }
  return a.length - b.length;
}

// Surrogates (U+D800..U+DFFF) start code points above U+FFFF, whose UTF-8
// form sorts after every BMP character: move them above U+E000..U+FFFF.
function utf8Rank(unit: number): number {
  if (unit >= 0xe000) return unit - 0x800;
  if (unit >= 0xd800) return unit + 0x2000;
  return unit;
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** A string survives a UTF-8 round trip (no unpaired surrogate halves). */
export function isWellFormedKey(s: string): boolean {
  return !LONE_SURROGATE.test(s);
}
