/**
 * The benchmark's figures: fio's JSON summed over jobs, the table's columns and ratios,
 * the JSON document, and the arguments that choose targets and workloads.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FioError, parseFioJson } from '../src/bench/fio.js';
import { Results } from '../src/bench/report.js';
import { parseGroups, parseVs } from '../src/bench/suite.js';
import { stepCount } from '../src/bench/workloads.js';

function fioDoc(jobs: Array<{ bw: number; iops: number; kb: number; error?: number }>): string {
  const dir = (j: { bw: number; iops: number; kb: number }) => ({ bw: j.bw, iops: j.iops, runtime: 2000, io_kbytes: j.kb, clat_ns: { mean: 5000, percentile: { '99.000000': 9000 } } });
  const idle = { bw: 0, iops: 0, runtime: 0, io_kbytes: 0 };
  return `fio: a warning first\n${JSON.stringify({ jobs: jobs.map((j, i) => ({ jobname: `j${i}`, error: j.error ?? 0, read: dir(j), write: idle })) })}`;
}

test('fio figures add up the bandwidth and IOPS of every job', () => {
  const f = parseFioJson(fioDoc([{ bw: 102400, iops: 100, kb: 1024 }, { bw: 51200, iops: 50, kb: 1024 }]), 'read', 'x.fio');
  assert.equal(f.MiB_s, 150);
  assert.equal(f.iops, 150);
  assert.equal(f.io_MiB, 2);
  assert.equal(f.p99_us, 9);
  assert.equal(f.runtime_s, 2);
});

test('a job error, no jobs or no I/O in the asked direction is a FioError', () => {
  assert.throws(() => parseFioJson(fioDoc([{ bw: 1, iops: 1, kb: 4, error: 5 }]), 'read', 'x.fio'), FioError);
  assert.throws(() => parseFioJson(fioDoc([{ bw: 1, iops: 1, kb: 4 }]), 'write', 'x.fio'), /no write I\/O/);
  assert.throws(() => parseFioJson('{"jobs":[]}', 'read', 'x.fio'), /no jobs/);
  assert.throws(() => parseFioJson('fio: crashed', 'read', 'x.fio'), /no JSON/);
});

test('the table has a column per target and a Stria/baseline ratio per baseline; the JSON carries the same figures', () => {
  const r = new Results([
    { label: 'stria', kind: 'stria', dir: '/m' },
    { label: 'local', kind: 'baseline', dir: '/l' },
    { label: 'bindfs', kind: 'baseline', dir: '/b' },
  ]);
  r.set('seq-write-1M', 'MiB/s', 'stria', { value: 300, details: { jobs: 1 } });
  r.set('seq-write-1M', 'MiB/s', 'local', { value: 600 });
  r.set('seq-write-1M', 'MiB/s', 'bindfs', { value: 100 });
  r.set('integrity-crc32c', 'pass', 'stria', { value: 1 });
  r.set('integrity-crc32c', 'pass', 'local', { value: 0 });
  r.set('md-1dir-1w-create', 'ops/s', 'stria', { error: 'EIO' });
  r.set('md-1dir-1w-create', 'ops/s', 'local', { value: 5000 });
  const lines = r.table().split('\n');
  assert.deepEqual(lines[0]!.trim().split(/\s+/), ['workload', 'unit', 'stria', 'local', 'bindfs', 'stria/local', 'stria/bindfs']);
  assert.deepEqual(lines[2]!.trim().split(/\s+/), ['seq-write-1M', 'MiB/s', '300.0', '600.0', '100.0', '0.50', '3.00']);
  assert.deepEqual(lines[3]!.trim().split(/\s+/), ['integrity-crc32c', 'pass', 'pass', 'FAIL', '-', '-', '-']);
  assert.deepEqual(lines[4]!.trim().split(/\s+/), ['md-1dir-1w-create', 'ops/s', 'ERROR', '5000', '-', '-', '-']);
  const doc = r.toJSON({ mode: 'quick' }) as { mode: string; results: Array<{ workload: string; values: Record<string, number | null>; ratios: Record<string, number | null>; details: Record<string, Record<string, unknown>> }> };
  assert.equal(doc.mode, 'quick');
  const seq = doc.results.find((x) => x.workload === 'seq-write-1M')!;
  assert.deepEqual(seq.values, { stria: 300, local: 600, bindfs: 100 });
  assert.deepEqual(seq.ratios, { 'stria/local': 0.5, 'stria/bindfs': 3 });
  assert.equal(seq.details.stria!.jobs, 1);
  const md = doc.results.find((x) => x.workload === 'md-1dir-1w-create')!;
  assert.equal(md.values.stria, null);
  assert.equal(md.details.stria!.error, 'EIO');
});

test('--vs takes DIR or DIR:label, --only a list of known groups', () => {
  assert.deepEqual(parseVs('/mnt/bf:bindfs'), { dir: '/mnt/bf', label: 'bindfs' });
  assert.deepEqual(parseVs('/mnt/moose'), { dir: '/mnt/moose', label: 'moose' });
  assert.throws(() => parseVs('/mnt/x:has space'), /label must be/);
  assert.deepEqual(parseGroups('md,integrity,md'), ['md', 'integrity']);
  assert.throws(() => parseGroups('md,fast'), /unknown workload group 'fast'/);
  assert.equal(stepCount(['seq', 'rand', 'integrity', 'small', 'md']), 19);
  assert.equal(stepCount(['integrity']), 1);
});
