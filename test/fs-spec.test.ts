import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFsSpec } from '../src/client/fs-spec.js';

test('filesystem specs: ports inside NIDs, failover nodes, paths', () => {
  const a = parseFsSpec('127.0.0.1:23000@tcp:/testfs/dir/file');
  assert.deepEqual(a.mgsNids, [{ addr: '127.0.0.1', port: 23000, net: 'tcp' }]);
  assert.equal(a.fsname, 'testfs');
  assert.deepEqual(a.path, ['dir', 'file']);
  const b = parseFsSpec('10.0.0.1@tcp,10.0.1.1@tcp1:10.0.0.2:9000@tcp:/fs');
  assert.deepEqual(b.mgsNids.map((n) => `${n.addr}:${n.port}@${n.net}`), ['10.0.0.1:988@tcp', '10.0.1.1:988@tcp1', '10.0.0.2:9000@tcp']);
  assert.deepEqual(b.path, []);
  assert.throws(() => parseFsSpec('127.0.0.1@tcp'), /MGSNID:\/FSNAME/);
  assert.throws(() => parseFsSpec('127.0.0.1@tcp:/much-too-long-name'), /filesystem name/);
});
