/**
 * O_APPEND across two mounts: two writer processes, one on each mount,
 * append fixed-length records to one file at the same time. Every append
 * lands at the end of the file as it is at that moment, cluster-wide: no
 * record is lost, doubled, overwritten or torn.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { LineChild, handshakeScript, runTogether } from './helpers/child-process.js';
import { mountSkip, twoMounts } from './helpers/two-mounts.js';

const RECORDS = 1000;
const RECORD_LEN = 64;

/** A writer: opens with O_APPEND, then once started by runTogether, one write() per record. */
const WRITER = handshakeScript(`
const fs = require('node:fs');
const [path, id, count, len] = process.argv.slice(1);
const fd = fs.openSync(path, fs.constants.O_WRONLY | fs.constants.O_APPEND);
`, `
  const head = (seq) => 'W' + id + ':' + String(seq).padStart(6, '0') + ':';
  for (let seq = 0; seq < Number(count); seq++) {
    const h = head(seq);
    const rec = Buffer.from(h + id.toLowerCase().repeat(Number(len) - h.length - 1) + '\\n');
    const n = fs.writeSync(fd, rec);
    if (n !== rec.length) { process.stdout.write('short write ' + n + '\\n'); process.exit(3); }
  }
  fs.closeSync(fd);
`);

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

describe('two mounts: O_APPEND', { skip: mountSkip }, () => {
  const mounts = twoMounts({ osts: 3 });

  test(`two writers, one per mount, each append ${RECORDS} records of ${RECORD_LEN} bytes: all present once, intact, in order`, { timeout: 180_000 }, async () => {
    const { a, b } = mounts;
    await writeFile(a.path('log'), '');
    await runTogether([
      new LineChild([process.execPath, '-e', WRITER, a.path('log'), 'A', String(RECORDS), String(RECORD_LEN)], 'writer on A'),
      new LineChild([process.execPath, '-e', WRITER, b.path('log'), 'B', String(RECORDS), String(RECORD_LEN)], 'writer on B'),
    ], 150_000);
    const onA = await readFile(a.path('log'));
    const onB = await readFile(b.path('log'));
    const verdictA = check(onA, ['A', 'B']);
    assert.deepEqual(verdictA.problems, [], `the file as read on mount A:\n  ${verdictA.problems.join('\n  ')}`);
    const verdictB = check(onB, ['A', 'B']);
    assert.deepEqual(verdictB.problems, [], `the file as read on mount B:\n  ${verdictB.problems.join('\n  ')}`);
    assert.ok(onA.equals(onB), 'both mounts read the same bytes');
  });
});
