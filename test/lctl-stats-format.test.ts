/** Counters print in Lustre's lprocfs layout; rpc_stats histograms in osc's table layout. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatRwHistogram, formatStatsHeader, Histogram, StatsSet } from '../src/ctl/stats.js';

test('stats print the header, then only counters with samples: NAME COUNT samples [unit] min max sum sumsq', () => {
  const s = new StatsSet([
    { name: 'read_bytes', unit: 'bytes' },
    { name: 'write_bytes', unit: 'bytes' },
    { name: 'open', unit: 'usec' },
    { name: 'ioctl', unit: 'reqs', minmax: false },
  ]);
  s.add('read_bytes', 4096);
  s.add('read_bytes', 1048576);
  s.add('open', 12);
  s.add('ioctl');
  s.add('ioctl');
  s.add('ioctl');
  const start = s.startTime;
  const at = { sec: start.sec + 10, nsec: start.nsec };
  const lines = s.format(at).split('\n');
  assert.equal(lines[0], `snapshot_time             ${at.sec}.${String(at.nsec).padStart(9, '0')} secs.nsecs`);
  assert.equal(lines[1], `start_time                ${start.sec}.${String(start.nsec).padStart(9, '0')} secs.nsecs`);
  assert.equal(lines[2], 'elapsed_time              10.000000000 secs.nsecs');
  assert.equal(lines[3], `read_bytes                2 samples [bytes] 4096 1048576 1052672 ${4096 ** 2 + 1048576 ** 2}`);
  assert.equal(lines[4], 'open                      1 samples [usec] 12 12 12 144');
  assert.equal(lines[5], 'ioctl                     3 samples [reqs]');
  assert.equal(lines[6], '');
  assert.equal(lines.length, 7, 'write_bytes has no samples and is not printed');

  s.clear();
  assert.equal(s.get('read_bytes').samples, 0);
  assert.equal(s.format().split('\n').length, 4, 'after clear only the header remains');
});

test('sums of squares beyond 2^53 stay exact', () => {
  const s = new StatsSet([{ name: 'write_bytes', unit: 'bytes' }]);
  const big = 64 * 1024 * 1024;
  for (let i = 0; i < 3000; i++) s.add('write_bytes', big);
  assert.equal(s.get('write_bytes').sumsq, BigInt(big) * BigInt(big) * 3000n);
  assert.match(s.format(), new RegExp(`write_bytes +3000 samples \\[bytes\\] ${big} ${big} ${big * 3000} ${BigInt(big) * BigInt(big) * 3000n}\\n$`));
});

test('a header with a colon, as rpc_stats prints it', () => {
  const h = formatStatsHeader({ sec: 100, nsec: 5 }, { sec: 101, nsec: 7 }, ':');
  assert.equal(h, 'snapshot_time:            101.000000007 secs.nsecs\nstart_time:               100.000000005 secs.nsecs\nelapsed_time:             1.000000002 secs.nsecs\n');
});

test('histograms: log2 and linear buckets, rows until both columns are complete', () => {
  const r = new Histogram();
  const w = new Histogram();
  w.tallyLog2(1);
  w.tallyLog2(3); // -> bucket of 4
  w.tallyLog2(4);
  w.tallyLog2(1024);
  r.tallyLog2(1);
  const out = formatRwHistogram('pages per rpc', r, w, (i) => 2 ** i);
  assert.equal(
    out,
    '\n\t\t\tread\t\t\twrite\n' +
      'pages per rpc         rpcs   % cum % |       rpcs   % cum %\n' +
      '1:\t\t         1 100 100   |          1  25  25\n' +
      '2:\t\t         0   0 100   |          0   0  25\n' +
      '4:\t\t         0   0 100   |          2  50  75\n' +
      '8:\t\t         0   0 100   |          0   0  75\n' +
      '16:\t\t         0   0 100   |          0   0  75\n' +
      '32:\t\t         0   0 100   |          0   0  75\n' +
      '64:\t\t         0   0 100   |          0   0  75\n' +
      '128:\t\t         0   0 100   |          0   0  75\n' +
      '256:\t\t         0   0 100   |          0   0  75\n' +
      '512:\t\t         0   0 100   |          0   0  75\n' +
      '1024:\t\t         0   0 100   |          1  25 100\n',
  );
  const empty = formatRwHistogram('rpcs in flight', new Histogram(), new Histogram(), (i) => i);
  assert.equal(empty.split('\n').filter((l) => /^\d+:/.test(l)).length, 1, 'empty tables print one row');
  const lin = new Histogram();
  lin.tally(3);
  lin.tally(99);
  assert.equal(lin.buckets[3], 1);
  assert.equal(lin.buckets[31], 1, 'beyond the last bucket lands in it');
});
