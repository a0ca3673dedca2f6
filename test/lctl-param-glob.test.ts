/** Parameter names and patterns: dotted components, NIDs kept whole, shell globs per component. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { globMatch, splitParamPath } from '../src/ctl/glob.js';
import { ParamRegistry } from '../src/ctl/params.js';

test('a dotted name splits into components; a NID after .MGC or .exports. keeps its dots', () => {
  assert.deepEqual(splitParamPath('osc.testfs-OST0000-osc-ffff1234.stats'), ['osc', 'testfs-OST0000-osc-ffff1234', 'stats']);
  assert.deepEqual(splitParamPath('mgc.MGC192.168.1.1@tcp.import'), ['mgc', 'MGC192.168.1.1@tcp', 'import']);
  assert.deepEqual(splitParamPath('mgc.MGC127.0.0.1:988@tcp'), ['mgc', 'MGC127.0.0.1:988@tcp']);
  assert.deepEqual(splitParamPath('obdfilter.testfs-OST0000.exports.10.0.0.5@tcp.uuid'), ['obdfilter', 'testfs-OST0000', 'exports', '10.0.0.5@tcp', 'uuid']);
  assert.deepEqual(splitParamPath('mgs.MGS.live.testfs'), ['mgs', 'MGS', 'live', 'testfs']);
});

test('components match like shell globs', () => {
  assert.ok(globMatch('*', 'testfs-OST0000-osc-ffff'));
  assert.ok(globMatch('*OST000?-osc-*', 'testfs-OST0003-osc-ffff'));
  assert.ok(!globMatch('*OST000?-osc-*', 'testfs-OST0010-osc-ffff'));
  assert.ok(globMatch('testfs-OST000[0-2]', 'testfs-OST0002'));
  assert.ok(!globMatch('testfs-OST000[0-2]', 'testfs-OST0003'));
  assert.ok(globMatch('testfs-OST000[!0]', 'testfs-OST0001'));
  assert.ok(!globMatch('testfs-OST000[!0]', 'testfs-OST0000'));
  assert.ok(globMatch('max_*', 'max_rpcs_in_flight'));
  assert.ok(!globMatch('max_*', 'checksums'));
  assert.ok(globMatch('a.b', 'a.b'), 'a dot is literal inside one component');
  assert.ok(!globMatch('a.b', 'axb'));
  assert.ok(globMatch('[', '['), 'an unclosed bracket is literal');
});

test('the registry matches files and directories per component, sorted, recursively on request', () => {
  const reg = new ParamRegistry();
  const v = (s: string) => ({ get: () => s });
  reg.register('osc.fs-OST0001-osc-ffff01.max_rpcs_in_flight', { get: () => '8', set: () => undefined });
  reg.register('osc.fs-OST0001-osc-ffff01.stats', v('s1'));
  reg.register('osc.fs-OST0000-osc-ffff01.stats', v('s0'));
  reg.register('mdc.fs-MDT0000-mdc-ffff01.stats', v('m'));
  let dynamic = ['pool1'];
  reg.provide(() => dynamic.map((p) => [`lov.fs-clilov-ffff01.pools.${p}`, v(p)] as const));

  const names = (pattern: string, recursive = false) => reg.match(pattern, recursive).map((n) => `${n.name}${n.param ? '' : '/'}`);
  assert.deepEqual(names('osc.*.stats'), ['osc.fs-OST0000-osc-ffff01.stats', 'osc.fs-OST0001-osc-ffff01.stats']);
  assert.deepEqual(names('osc.*'), ['osc.fs-OST0000-osc-ffff01/', 'osc.fs-OST0001-osc-ffff01/']);
  assert.deepEqual(names('*'), ['lov/', 'mdc/', 'osc/']);
  assert.deepEqual(names('osc.*OST000[1]*.max_*'), ['osc.fs-OST0001-osc-ffff01.max_rpcs_in_flight']);
  assert.deepEqual(names('*.*.stats'), ['mdc.fs-MDT0000-mdc-ffff01.stats', 'osc.fs-OST0000-osc-ffff01.stats', 'osc.fs-OST0001-osc-ffff01.stats']);
  assert.deepEqual(names('osc.fs-OST0001-osc-ffff01', true), [
    'osc.fs-OST0001-osc-ffff01/',
    'osc.fs-OST0001-osc-ffff01.max_rpcs_in_flight',
    'osc.fs-OST0001-osc-ffff01.stats',
  ]);
  assert.deepEqual(names('osc.*.nosuch'), []);
  assert.deepEqual(names('osc.*.stats.deeper'), []);

  assert.deepEqual(names('lov.*.pools.*'), ['lov.fs-clilov-ffff01.pools.pool1']);
  dynamic = ['pool1', 'flash'];
  assert.deepEqual(names('lov.*.pools.*'), ['lov.fs-clilov-ffff01.pools.flash', 'lov.fs-clilov-ffff01.pools.pool1'], 'providers are asked afresh');
  assert.throws(() => reg.register('osc.fs-OST0000-osc-ffff01.stats', v('again')), /already registered/);
  assert.throws(() => reg.register('nodots', v('x')), /not a parameter name/);
  assert.throws(() => reg.register('a..b', v('x')), /not a parameter name/);
});
