/**
 * Concurrent writers on two mounts into one file striped over 3 OSTs with
 * 64 KiB stripes: disjoint stripes merge into their union; overlapping
 * writes of whole pages never mix two writers inside a page, and both mounts
 * read the same result.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestCluster, STRIA_BIN } from './helpers/cluster.js';
import { TestMount, sh } from './helpers/mount.js';

const skip = process.getuid?.() !== 0 ? 'mount tests need root' : !existsSync('/dev/fuse') ? 'no /dev/fuse' : false;
const LFS = join(STRIA_BIN, '..', 'lfs.js');
const STRIPE = 64 * 1024;
const FILE_SIZE = 6 * 1024 * 1024;
const PAGE = 4096;
const PASSES = 3;

/** Copies every other 64 KiB stripe (those with index % 2 == parity) from src into dst with pwrite. */
const STRIPE_WRITER = `
const fs = require('node:fs');
const [src, dst, parity, stripe, size] = process.argv.slice(1).map((x, i) => (i < 2 ? x : Number(x)));
const data = fs.readFileSync(src);
const fd = fs.openSync(dst, 'r+');
process.stdout.write('ready\\n');
process.stdin.once('data', () => {
  for (let k = parity; k * stripe < size; k += 2) {
    const n = fs.writeSync(fd, data, k * stripe, stripe, k * stripe);
    if (n !== stripe) { process.stdout.write('short write\\n'); process.exit(3); }
  }
  fs.closeSync(fd);
  process.stdout.write('done\\n');
  process.exit(0);
});
`;

/**
 * Writes the whole region PASSES times, front to back, in chunks of 4..256 KiB (4 KiB
 * aligned, sizes from a seeded PRNG). Every page says who wrote it, in which pass, where.
 */
const OVERLAP_WRITER = `
const fs = require('node:fs');
const [dst, id, passes, size, page, seed] = process.argv.slice(1).map((x, i) => (i < 2 ? x : Number(x)));
let s = seed >>> 0;
const rnd = () => { s = (s + 0x6d2b79f5) >>> 0; let t = s; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
const fd = fs.openSync(dst, 'r+');
process.stdout.write('ready\\n');
process.stdin.once('data', () => {
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
  process.stdout.write('done\\n');
  process.exit(0);
});
`;

/** A child process whose stdout lines can be awaited. */
class Child {
  readonly lines: string[] = [];
  readonly exited: Promise<number | null>;
  private readonly proc: ChildProcess;
  private stderr = '';

  constructor(argv: string[]) {
    this.proc = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    let buf = '';
    this.proc.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        this.lines.push(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
    });
    this.proc.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => this.proc.once('exit', (code) => resolve(code)));
  }

  async waitFor(line: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.lines.includes(line)) {
      if (this.proc.exitCode !== null) throw new Error(`exited (${this.proc.exitCode}) before "${line}": ${this.lines.join('|')} ${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`no "${line}" within ${timeoutMs} ms: ${this.lines.join('|')} ${this.stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  send(line: string): void {
    this.proc.stdin!.write(`${line}\n`);
  }

  get errors(): string {
    return this.stderr;
  }

  kill(): void {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
  }
}

/** Starts the writers together (after each says ready) and waits for all to finish cleanly. */
async function runTogether(writers: Child[], timeoutMs: number): Promise<void> {
  try {
    for (const w of writers) await w.waitFor('ready', 30_000);
    for (const w of writers) w.send('go');
    for (const w of writers) await w.waitFor('done', timeoutMs);
    const codes = await Promise.all(writers.map((w) => w.exited));
    assert.deepEqual(codes, writers.map(() => 0), `writers exited ${codes}: ${writers.map((w) => w.errors).join('\n')}`);
  } finally {
    for (const w of writers) w.kill();
  }
}

async function ok(cmd: string): Promise<string> {
  const r = await sh(cmd, { timeoutMs: 60_000 });
  assert.equal(r.code, 0, `${cmd}\n${r.stdout}\n${r.stderr}`);
  return r.stdout.trim();
}

/** Where two buffers first differ, as stripe and offset. */
function firstDiff(expected: Buffer, got: Buffer): string {
  if (expected.length !== got.length) return `size ${got.length}, expected ${expected.length}`;
  for (let i = 0; i < expected.length; i++) {
    if (expected[i] !== got[i]) return `first different byte at ${i} (stripe ${Math.floor(i / STRIPE)}, OST index ${Math.floor(i / STRIPE) % 3} of the layout)`;
  }
  return 'identical';
}

describe('two mounts: concurrent writers on a file striped over 3 OSTs', { skip }, () => {
  let cluster: TestCluster;
  let a: TestMount;
  let b: TestMount;
  let scratch: string;

  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'stria-coh-stripes-'));
    cluster = await TestCluster.start({ osts: 3 });
    a = await TestMount.start(cluster);
    b = await TestMount.start(cluster);
  }, { timeout: 120_000 });

  after(async () => {
    await b?.stop();
    await a?.stop();
    await cluster?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  }, { timeout: 300_000 });

  async function stripedFile(name: string): Promise<void> {
    await ok(`node ${LFS} setstripe -c 3 -S 64K ${a.path(name)}`);
    const layout = await ok(`node ${LFS} getstripe ${b.path(name)}`);
    assert.match(layout, /lmm_stripe_count:\s+3\n/, layout);
    assert.match(layout, /lmm_stripe_size:\s+65536\n/, layout);
  }

  test('A writes the even stripes, B the odd ones, at the same time: both mounts read the union', { timeout: 120_000 }, async () => {
    await stripedFile('interleaved');
    const src = join(scratch, 'src');
    const data = randomBytes(FILE_SIZE);
    await writeFile(src, data);
    await runTogether([
      new Child([process.execPath, '-e', STRIPE_WRITER, src, a.path('interleaved'), '0', String(STRIPE), String(FILE_SIZE)]),
      new Child([process.execPath, '-e', STRIPE_WRITER, src, b.path('interleaved'), '1', String(STRIPE), String(FILE_SIZE)]),
    ], 90_000);
    for (const [name, m] of [['A', a], ['B', b]] as const) {
      assert.equal((await stat(m.path('interleaved'))).size, FILE_SIZE, `size on mount ${name}`);
      const got = await readFile(m.path('interleaved'));
      assert.ok(got.equals(data), `mount ${name} reads the union of both writers: ${firstDiff(data, got)}`);
    }
  });

  test(`A and B overwrite the whole 6 MiB ${PASSES} times each in 4..256 KiB chunks: no page mixes two writers, both mounts agree`, { timeout: 180_000 }, async () => {
    await stripedFile('overlapped');
    const seed = Number(process.env.STRIA_TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));
    console.log(`chunk-size seed ${seed} (set STRIA_TEST_SEED to repeat)`);
    await runTogether([
      new Child([process.execPath, '-e', OVERLAP_WRITER, a.path('overlapped'), 'A', String(PASSES), String(FILE_SIZE), String(PAGE), String(seed)]),
      new Child([process.execPath, '-e', OVERLAP_WRITER, b.path('overlapped'), 'B', String(PASSES), String(FILE_SIZE), String(PAGE), String(seed + 1)]),
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
