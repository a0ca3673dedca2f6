/**
 * O_APPEND across two mounts: two writer processes, one on each mount,
 * append fixed-length records to one file at the same time. Every append
 * lands at the end of the file as it is at that moment, cluster-wide: no
 * record is lost, doubled, overwritten or torn.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { spawn, type ChildProcess } from 'node:child_process';
import { TestCluster } from './helpers/cluster.js';
import { TestMount } from './helpers/mount.js';

const skip = process.getuid?.() !== 0 ? 'mount tests need root' : !existsSync('/dev/fuse') ? 'no /dev/fuse' : false;
const RECORDS = 1000;
const RECORD_LEN = 64;

/** A writer: opens with O_APPEND, says "ready", waits for "go" on stdin, then one write() per record. */
const WRITER = `
const fs = require('node:fs');
const [path, id, count, len] = process.argv.slice(1);
const fd = fs.openSync(path, fs.constants.O_WRONLY | fs.constants.O_APPEND);
process.stdout.write('ready\\n');
process.stdin.once('data', () => {
  const head = (seq) => 'W' + id + ':' + String(seq).padStart(6, '0') + ':';
  for (let seq = 0; seq < Number(count); seq++) {
    const h = head(seq);
    const rec = Buffer.from(h + id.toLowerCase().repeat(Number(len) - h.length - 1) + '\\n');
    const n = fs.writeSync(fd, rec);
    if (n !== rec.length) { process.stdout.write('short write ' + n + '\\n'); process.exit(3); }
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

interface Verdict {
  problems: string[];
}

/** Everything wrong with the appended file, as short sentences (none when it is right). */
function check(data: Buffer, writers: string[]): Verdict {
  const problems: string[] = [];
  const expectedSize = writers.length * RECORDS * RECORD_LEN;
  if (data.length !== expectedSize) problems.push(`size ${data.length}, expected ${expectedSize} (${writers.length} × ${RECORDS} × ${RECORD_LEN})`);
  const lines = data.toString('latin1').split('\n');
  if (lines.at(-1) === '') lines.pop();
  const seqs = new Map<string, number[]>(writers.map((w) => [w, []]));
  const torn: string[] = [];
  for (const line of lines) {
    const m = /^W([A-Z]):(\d{6}):([a-z]+)$/.exec(line);
    const id = m?.[1];
    const ok = m && id && seqs.has(id) && line.length === RECORD_LEN - 1 && m[3] === id.toLowerCase().repeat(m[3]!.length);
    if (!ok) torn.push(line);
    else seqs.get(id)!.push(Number(m[2]));
  }
  if (torn.length > 0) problems.push(`${torn.length} torn or interleaved records, e.g. ${JSON.stringify(torn.slice(0, 3).map((l) => (l.length > 80 ? `${l.slice(0, 80)}...` : l)))}`);
  for (const [id, list] of seqs) {
    const seen = new Set(list);
    const missing = Array.from({ length: RECORDS }, (_, i) => i).filter((i) => !seen.has(i));
    const doubled = list.length - seen.size;
    let outOfOrder = 0;
    for (let i = 1; i < list.length; i++) if (list[i]! <= list[i - 1]!) outOfOrder++;
    if (missing.length > 0) problems.push(`writer ${id}: ${missing.length} records missing (e.g. seq ${missing.slice(0, 5).join(', ')})`);
    if (doubled > 0) problems.push(`writer ${id}: ${doubled} records present twice`);
    if (outOfOrder > 0) problems.push(`writer ${id}: ${outOfOrder} records out of order`);
  }
  return { problems };
}

describe('two mounts: O_APPEND', { skip }, () => {
  let cluster: TestCluster;
  let a: TestMount;
  let b: TestMount;

  before(async () => {
    cluster = await TestCluster.start({ osts: 3 });
    a = await TestMount.start(cluster);
    b = await TestMount.start(cluster);
  }, { timeout: 120_000 });

  after(async () => {
    await b?.stop();
    await a?.stop();
    await cluster?.stop();
  }, { timeout: 300_000 });

  test(`two writers, one per mount, each append ${RECORDS} records of ${RECORD_LEN} bytes: all present once, intact, in order`, { timeout: 180_000 }, async () => {
    await writeFile(a.path('log'), '');
    const writers = [
      new Child([process.execPath, '-e', WRITER, a.path('log'), 'A', String(RECORDS), String(RECORD_LEN)]),
      new Child([process.execPath, '-e', WRITER, b.path('log'), 'B', String(RECORDS), String(RECORD_LEN)]),
    ];
    try {
      for (const w of writers) await w.waitFor('ready', 30_000);
      for (const w of writers) w.send('go');
      for (const w of writers) await w.waitFor('done', 150_000);
      const codes = await Promise.all(writers.map((w) => w.exited));
      assert.deepEqual(codes, [0, 0], `writers exited ${codes}: ${writers.map((w) => w.errors).join('\n')}`);
    } finally {
      for (const w of writers) w.kill();
    }
    const onA = await readFile(a.path('log'));
    const onB = await readFile(b.path('log'));
    const verdictA = check(onA, ['A', 'B']);
    assert.deepEqual(verdictA.problems, [], `the file as read on mount A:\n  ${verdictA.problems.join('\n  ')}`);
    const verdictB = check(onB, ['A', 'B']);
    assert.deepEqual(verdictB.problems, [], `the file as read on mount B:\n  ${verdictB.problems.join('\n  ')}`);
    assert.ok(onA.equals(onB), 'both mounts read the same bytes');
  });
});
