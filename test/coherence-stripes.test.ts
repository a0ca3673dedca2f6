/**
 * Concurrent writers on two mounts into one file striped over 3 OSTs with
 * 64 KiB stripes: disjoint stripes merge into their union; overlapping
 * writes of whole pages never mix two writers inside a page, and both mounts
 * read the same result.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LineChild, handshakeScript, runTogether } from './helpers/child-process.js';
import { STRIA_BIN } from './helpers/cluster.js';
import { shOk } from './helpers/shell.js';
import { mountSkip, twoMounts } from './helpers/two-mounts.js';

const LFS = join(STRIA_BIN, '..', 'lfs.js');
const STRIPE = 64 * 1024;
const FILE_SIZE = 6 * 1024 * 1024;
const PAGE = 4096;
const PASSES = 3;

/** Copies every other 64 KiB stripe (those with index % 2 == parity) from src into dst with pwrite. */
const STRIPE_WRITER = handshakeScript(`
const fs = require('node:fs');
const [src, dst, parity, stripe, size] = process.argv.slice(1).map((x, i) => (i < 2 ? x : Number(x)));
const data = fs.readFileSync(src);
const fd = fs.openSync(dst, 'r+');
`, `
  for (let k = parity; k * stripe < size; k += 2) {
    const n = fs.writeSync(fd, data, k * stripe, stripe, k * stripe);
    if (n !== stripe) { process.stdout.write('short write\\n'); process.exit(3); }
  }
  fs.closeSync(fd);
`);

/**
 * Writes the whole region PASSES times, front to back, in chunks of 4..256 KiB (4 KiB
 * aligned, sizes from a seeded PRNG). Every page says who wrote it, in which pass, where.
 */
const OVERLAP_WRITER = handshakeScript(`
const fs = require('node:fs');
const [dst, id, passes, size, page, seed] = process.argv.slice(1).map((x, i) => (i < 2 ? x : Number(x)));
let s = seed >>> 0;
const rnd = () => { s = (s + 0x6d2b79f5) >>> 0; let t = s; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
const fd = fs.openSync(dst, 'r+');
`, `
  for (let p = 1; p <= passes; p++) {
    for (let off = 0; off < size; ) {
      const pages = Math.min(1 + Math.floor(rnd() * 64), (size - off) / page);
      const buf = Buffer.alloc(pages * page, id);
      for (let i = 0; i < pages; i++) buf.write(id + ' p=' + p + ' pg=' + String((off / page) + i).padStart(5, '0') + '\\n', i * page, 'latin1');
      const n = fs.writeSync(fd, buf, 0, buf.length, off);
      if (n !== buf.length) { process.stdout.write('short write\\n'); process.exit(3); }
      off += buf.length;
    }
  }
  fs.closeSync(fd);
`);

/** Where two buffers first differ, as stripe and offset. */
function firstDiff(expected: Buffer, got: Buffer): string {
  if (expected.length !== got.length) return `size ${got.length}, expected ${expected.length}`;
  for (let i = 0; i < expected.length; i++) {
    if (expected[i] !== got[i]) return `first different byte at ${i} (stripe ${Math.floor(i / STRIPE)}, OST index ${Math.floor(i / STRIPE) % 3} of the layout)`;
  }
  return 'identical';
}

describe('two mounts: concurrent writers on a file striped over 3 OSTs', { skip: mountSkip }, () => {
  const mounts = twoMounts({ osts: 3 });
  let scratch: string;

  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'stria-coh-stripes-'));
  });

  after(async () => {
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  async function stripedFile(name: string): Promise<void> {
    const { a, b } = mounts;
    await shOk(`node ${LFS} setstripe -c 3 -S 64K ${a.path(name)}`);
    const layout = await shOk(`node ${LFS} getstripe ${b.path(name)}`);
    assert.match(layout, /lmm_stripe_count:\s+3\n/, layout);
    assert.match(layout, /lmm_stripe_size:\s+65536\n/, layout);
  }

  test('A writes the even stripes, B the odd ones, at the same time: both mounts read the union', { timeout: 120_000 }, async () => {
    const { a, b } = mounts;
    await stripedFile('interleaved');
    const src = join(scratch, 'src');
    const data = randomBytes(FILE_SIZE);
    await writeFile(src, data);
    await runTogether([
      new LineChild([process.execPath, '-e', STRIPE_WRITER, src, a.path('interleaved'), '0', String(STRIPE), String(FILE_SIZE)], 'writer on A'),
      new LineChild([process.execPath, '-e', STRIPE_WRITER, src, b.path('interleaved'), '1', String(STRIPE), String(FILE_SIZE)], 'writer on B'),
    ], 90_000);
    for (const [name, m] of [['A', a], ['B', b]] as const) {
      assert.equal((await stat(m.path('interleaved'))).size, FILE_SIZE, `size on mount ${name}`);
      const got = await readFile(m.path('interleaved'));
      assert.ok(got.equals(data), `mount ${name} reads the union of both writers: ${firstDiff(data, got)}`);
    }
  });

  test(`A and B overwrite the whole 6 MiB ${PASSES} times each in 4..256 KiB chunks: no page mixes two writers, both mounts agree`, { timeout: 180_000 }, async () => {
    const { a, b } = mounts;
    await stripedFile('overlapped');
    const seed = Number(process.env.STRIA_TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));
    console.log(`chunk-size seed ${seed} (set STRIA_TEST_SEED to repeat)`);
    await runTogether([
      new LineChild([process.execPath, '-e', OVERLAP_WRITER, a.path('overlapped'), 'A', String(PASSES), String(FILE_SIZE), String(PAGE), String(seed)], 'writer on A'),
      new LineChild([process.execPath, '-e', OVERLAP_WRITER, b.path('overlapped'), 'B', String(PASSES), String(FILE_SIZE), String(PAGE), String(seed + 1)], 'writer on B'),
    ], 150_000);
    const onA = await readFile(a.path('overlapped'));
    const onB = await readFile(b.path('overlapped'));
    for (const [name, got] of [['A', onA], ['B', onB]] as const) {
      assert.equal(got.length, FILE_SIZE, `size read on mount ${name}`);
      const bad: string[] = [];
      const writtenBy = { A: 0, B: 0 };
      for (let pg = 0; pg < FILE_SIZE / PAGE; pg++) {
        const page = got.subarray(pg * PAGE, (pg + 1) * PAGE).toString('latin1');
        const m = /^([AB]) p=(\d+) pg=(\d{5})\n/.exec(page);
        const who = m?.[1] as 'A' | 'B' | undefined;
        const intact = m && who && Number(m[3]) === pg && page.slice(m[0].length) === who.repeat(PAGE - m[0].length);
        if (!intact) bad.push(`page ${pg} (stripe ${Math.floor((pg * PAGE) / STRIPE)}): ${JSON.stringify(page.slice(0, 24))}... holds ${[...new Set(page)].map((c) => JSON.stringify(c)).join(' ')}`);
        else writtenBy[who]++;
      }
      assert.deepEqual(bad.slice(0, 5), [], `mount ${name}: ${bad.length} pages are not one writer's whole page (pages from A: ${writtenBy.A}, from B: ${writtenBy.B})`);
    }
    assert.ok(onA.equals(onB), `both mounts read the same bytes: ${firstDiff(onA, onB)}`);
  });
});
