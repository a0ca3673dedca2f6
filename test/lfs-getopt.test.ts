/** lfs reads its command lines as GNU getopt_long (and, for find, getopt_long_only) would. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { getopt, splitArgs, UsageError, type OptSpec } from '../src/cli/lfs-getopt.js';
import { parseGetstripe } from '../src/cli/lfs-getstripe.js';
import { V, V_DEFAULT } from '../src/cli/lfs-format.js';

const SPECS: OptSpec[] = [
  { name: 'c', short: 'c', long: ['stripe-count'], arg: 'required' },
  { name: 'S', short: 'S', long: ['stripe-size'], arg: 'required' },
  { name: 'v', short: 'v', long: ['verbose'] },
  { name: 'q', short: 'q', long: ['quiet'] },
  { name: 'I', short: 'I', long: ['comp-id'], arg: 'optional' },
  { name: 'name', short: 'n', long: ['name'], arg: 'required' },
  { name: 'maxdepth', short: 'D', long: ['maxdepth'], arg: 'required' },
];

const opts = (argv: string[], mode = {}) => getopt(argv, SPECS, mode).map((t) => (t.kind === 'opt' ? `${t.negated ? '!' : ''}${t.name}=${t.value ?? ''}` : `@${t.value}`));

test('short options group, take attached or separate values, and mix with operands', () => {
  assert.deepEqual(opts(['-vq', 'f1', '-c2', '-S', '1M', 'f2', '-c', '-1']), ['v=', 'q=', '@f1', 'c=2', 'S=1M', '@f2', 'c=-1']);
  assert.deepEqual(opts(['-vc', '3']), ['v=', 'c=3']);
  assert.deepEqual(opts(['-I', 'x']), ['I=', '@x'], 'an optional value must be attached');
  assert.deepEqual(opts(['-I5']), ['I=5']);
  assert.deepEqual(opts(['--', '-v', '-']), ['@-v', '@-']);
});

test('long options: =value, separate value, unique prefixes', () => {
  assert.deepEqual(opts(['--stripe-count=4', '--stripe-size', '64k', '--verb', '--comp-id=7', '--comp-id']), ['c=4', 'S=64k', 'v=', 'I=7', 'I=']);
  assert.throws(() => getopt(['--stripe'], SPECS), (e: Error) => e instanceof UsageError && /ambiguous/.test(e.message));
  assert.throws(() => getopt(['--bogus'], SPECS), /unrecognized option '--bogus'/);
  assert.throws(() => getopt(['-x'], SPECS), /invalid option -- 'x'/);
  assert.throws(() => getopt(['-c'], SPECS), /requires an argument/);
  assert.throws(() => getopt(['--stripe-count'], SPECS), /requires an argument/);
  assert.throws(() => getopt(['--verbose=1'], SPECS), /doesn't allow an argument/);
});

test('long-only mode reads -name as a long option, single letters as short ones, and ! negates', () => {
  assert.deepEqual(opts(['d', '-name', '*.c', '!', '-maxd', '2', '-n', 'x', '-D3'], { longOnly: true, bang: true }), ['@d', 'name=*.c', '!maxdepth=2', 'name=x', 'maxdepth=3']);
  assert.throws(() => getopt(['-xyz'], SPECS, { longOnly: true }), /unrecognized option '-xyz'/);
  assert.deepEqual(opts(['-nfoo'], { longOnly: true }), ['name=foo'], 'no long match: a short option with its value, as getopt_long_only');
  assert.throws(() => getopt(['!'], SPECS, { longOnly: true, bang: true }), /'!' must precede an option/);
  assert.throws(() => getopt(['!', 'dir'], SPECS, { longOnly: true, bang: true }), /must precede an option/);
});

test('getstripe options combine as lfs_getstripe_internal combines them', () => {
  const p = (...a: string[]) => parseGetstripe([...a, 'f']).params;
  assert.deepEqual(p(), { verbose: V_DEFAULT, maxDepth: 1, raw: false, yaml: false, follow: true });
  assert.deepEqual([p('-c').verbose, p('-c').maxDepth], [V.COUNT, 0], 'one field: only that value, no path');
  assert.equal(p('-c', '-S').verbose, V.COUNT | V.SIZE);
  assert.deepEqual([p('-v').verbose, p('-v').maxDepth], [V_DEFAULT | V.DETAIL, 1]);
  assert.equal(p('-v', '-c').verbose, V_DEFAULT | V.DETAIL, 'after -v a field option adds nothing');
  assert.equal(p('-c', '-v').maxDepth, 1, '-v shows the path again');
  assert.equal(p('-q').verbose, V.OBJID);
  assert.equal(p('-c', '-r').maxDepth, -1);
  assert.equal(p('-d').maxDepth, 0);
  assert.equal(p('-D').maxDepth, 0);
  assert.equal(p('-m').verbose, V.MDTINDEX);
  assert.equal(p('--no-follow').follow, false);
  assert.equal(p('-y').yaml, true);
  assert.deepEqual(parseGetstripe(['-c', 'a', 'b']).paths, ['a', 'b']);
  assert.throws(() => parseGetstripe(['-c']), UsageError);
  assert.throws(() => parseGetstripe(['--bogus', 'f']), UsageError);
  assert.deepEqual(splitArgs(['x', '-v'], SPECS).operands, ['x']);
});
