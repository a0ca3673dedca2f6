/**
 * Statahead's choices, with a recorded lookup in place of the MDS: which names of a
 * numbered run it looks up ahead and when, that creates never trigger it, that a missing
 * name ends the run, that known names and names in flight are not asked twice, that at
 * most STATAHEAD_PARALLEL lookups run at once, and that statahead_max=0 turns it off.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatLike, parseNumberedName, Statahead, STATAHEAD_PARALLEL } from '../src/client/statahead.js';
import type { Fid } from '../src/common/fid.js';
import { stataheadParams } from '../src/ctl/statahead-params.js';

const dir: Fid = { seq: 0x200000401, oid: 1, ver: 0 };
const other: Fid = { seq: 0x200000401, oid: 2, ver: 0 };

/** A statahead whose lookups are recorded and answered at once: `exists` decides. */
function recorded(exists: (name: string) => boolean = () => true, cached: (name: string) => boolean = () => false) {
  const asked: string[] = [];
  const sa = new Statahead(
    async (_p, name) => {
      asked.push(name);
      return exists(name);
    },
    (_p, name) => cached(name),
  );
  return { sa, asked };
}

/** Lets the queued lookups (each resolved at once) run to the end. */
async function settle(): Promise<void> {
  for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
}

test('names are split at their last number, and numbers written back as they were', () => {
  assert.deepEqual(parseNumberedName('img_000123.jpg'), { prefix: 'img_', digits: '000123', value: 123, suffix: '.jpg' });
  assert.deepEqual(parseNumberedName('file.mdtest.3.17'), { prefix: 'file.mdtest.3.', digits: '17', value: 17, suffix: '' });
  assert.equal(parseNumberedName('README'), undefined);
  assert.equal(formatLike(7, 6), '000007');
  assert.equal(formatLike(1234567, 6), '1234567');
  assert.equal(formatLike(10, 0), '10');
});

test('the third lookup of a run in one directory looks the next statahead_max names up ahead', async () => {
  const { sa, asked } = recorded();
  sa.max = 8;
  sa.observe(dir, 'e000000', true);
  sa.observe(dir, 'e000001', true);
  await settle();
  assert.deepEqual(asked, [], 'two names are not a run yet');
  sa.observe(dir, 'e000002', true);
  await settle();
  assert.deepEqual(asked, ['e000003', 'e000004', 'e000005', 'e000006', 'e000007', 'e000008', 'e000009', 'e000010']);
  // the application catches up: each lookup it makes slides the window by one
  sa.observe(dir, 'e000003', true);
  sa.observe(dir, 'e000004', true);
  await settle();
  assert.deepEqual(asked.slice(8), ['e000011', 'e000012']);
  assert.equal(sa.counters.hits, 2, 'both were names looked up ahead');
  assert.equal(sa.counters.runs, 1);
});

test('a constant stride is followed, in either direction, with the names\' own padding and suffix', async () => {
  const { sa, asked } = recorded();
  sa.max = 3;
  for (const n of ['img_0050.jpg', 'img_0100.jpg', 'img_0150.jpg']) sa.observe(dir, n, true);
  for (const n of ['f9', 'f8', 'f7']) sa.observe(other, n, true);
  await settle();
  assert.deepEqual(asked.sort(), ['f4', 'f5', 'f6', 'img_0200.jpg', 'img_0250.jpg', 'img_0300.jpg']);
});

test('creates (lookups that find nothing) never start a run, and a changed pattern starts over', async () => {
  const { sa, asked } = recorded();
  for (let i = 0; i < 10; i++) {
    sa.observe(dir, `new${i}`, false);
    sa.observe(dir, `new${i}`, true); // the create's own lookup afterwards
  }
  await settle();
  assert.deepEqual(asked, [], 'each miss forgot the run');
  sa.observe(other, 'a1', true);
  sa.observe(other, 'b2', true);
  sa.observe(other, 'a3', true);
  sa.observe(other, 'x1.dat', true);
  await settle();
  assert.deepEqual(asked, [], 'no three names of one pattern at one stride');
});

test('a name found missing ends the run: nothing past it is asked for', async () => {
  const { sa, asked } = recorded((name) => Number(name.slice(1)) < 6);
  sa.max = 32;
  for (const n of ['e1', 'e2', 'e3']) sa.observe(dir, n, true);
  await settle();
  const past = asked.filter((n) => Number(n.slice(1)) > 6);
  assert.ok(past.length < STATAHEAD_PARALLEL, `only lookups already running when e6 was missing went past it (${past.length})`);
  const before = asked.length;
  sa.observe(dir, 'e4', true);
  sa.observe(dir, 'e5', true);
  await settle();
  assert.equal(asked.length, before, 'the run stays ended');
  assert.ok(sa.counters.missing >= 1);
});

test('names the client knows, and names already being looked up, are not asked again', async () => {
  const { sa, asked } = recorded(() => true, (name) => name === 'e4' || name === 'e5');
  sa.max = 4;
  for (const n of ['e1', 'e2', 'e3']) sa.observe(dir, n, true);
  await settle();
  assert.deepEqual(asked, ['e6', 'e7']);
});

test('at most STATAHEAD_PARALLEL lookups run at once, and an application lookup can wait for the one of its name', async () => {
  let running = 0;
  let most = 0;
  const release: Array<() => void> = [];
  const sa = new Statahead(
    (_p, _name) =>
      new Promise<boolean>((resolve) => {
        running++;
        most = Math.max(most, running);
        release.push(() => {
          running--;
          resolve(true);
        });
      }),
    () => false,
  );
  sa.max = 64;
  for (const n of ['e1', 'e2', 'e3']) sa.observe(dir, n, true);
  assert.equal(running, STATAHEAD_PARALLEL);
  const waiting = sa.pending(dir, 'e4');
  assert.ok(waiting, 'e4 is being looked up ahead');
  assert.equal(sa.pending(dir, 'e60'), undefined, 'e60 is queued, not in flight');
  for (let i = 0; i < 200 && release.length > 0; i++) {
    release.shift()!();
    await settle();
  }
  await waiting;
  assert.equal(most, STATAHEAD_PARALLEL);
  assert.equal(sa.counters.fetched, 64);
  assert.equal(sa.counters.waits, 1);
});

test('statahead_max=0 turns it off; close() stops it', async () => {
  const { sa, asked } = recorded();
  sa.max = 0;
  for (const n of ['e1', 'e2', 'e3', 'e4']) sa.observe(dir, n, true);
  await settle();
  assert.deepEqual(asked, []);
  sa.max = 4;
  sa.close();
  for (const n of ['e5', 'e6', 'e7']) sa.observe(dir, n, true);
  await settle();
  assert.deepEqual(asked, []);
});

test('llite.*.statahead_max takes 0..8192; statahead_stats counts and clears', async () => {
  const { sa } = recorded();
  const params = new Map(stataheadParams('llite.lfs-ffff', sa));
  const max = params.get('llite.lfs-ffff.statahead_max')!;
  const stats = params.get('llite.lfs-ffff.statahead_stats')!;
  assert.equal(await max.get!(), '32');
  await max.set!('128');
  assert.equal(sa.max, 128);
  await assert.rejects(async () => max.set!('8193'), /statahead_max/);
  await assert.rejects(async () => max.set!('-1'), /statahead_max/);
  assert.equal(sa.max, 128, 'a refused value changes nothing');
  for (const n of ['e1', 'e2', 'e3']) sa.observe(dir, n, true);
  await settle();
  sa.observe(dir, 'e4', true);
  const text = String(await stats.get!());
  assert.match(text, /^statahead total: 1$/m);
  assert.match(text, /^hit_total: 1$/m);
  assert.match(text, /^fetched_total: 129$/m, 'e4..e131, then e132 as e4 slid the window');
  await stats.set!('clear');
  assert.match(String(await stats.get!()), /^hit_total: 0$/m);
  await assert.rejects(async () => stats.set!('yes'), /clear/);
});
