/** NID syntax: what parses, and what is refused before anything is sent anywhere. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatNid, parseNid, parseNidList } from '../src/lnet/nid.js';
import { parseFsSpec } from '../src/client/fs-spec.js';

test('addresses, ports and networks parse; the default port is left out when formatted', () => {
  assert.deepEqual(parseNid('127.0.0.1@tcp'), { addr: '127.0.0.1', port: 988, net: 'tcp' });
  assert.deepEqual(parseNid('10.0.0.5:9988@tcp1'), { addr: '10.0.0.5', port: 9988, net: 'tcp1' });
  assert.deepEqual(parseNid('mds1.example:1000'), { addr: 'mds1.example', port: 1000, net: 'tcp' });
  assert.equal(formatNid(parseNid('[::1]:2000@tcp')), '[::1]:2000@tcp');
  assert.equal(formatNid(parseNid('127.0.0.1:988@tcp0')), '127.0.0.1@tcp');
  assert.equal(parseNidList('127.0.0.1@tcp,127.0.0.2:99@tcp').length, 2);
});

test('a bare number or a partial dotted address is refused, not resolved as an IPv4 number', () => {
  for (const bad of ['19880', '10.1', '1.2.3', '19880@tcp']) {
    assert.throws(() => parseNid(bad), (e: Error & { code?: string }) => e.code === 'BAD_NID', bad);
  }
  // the mistake that led here: a port after the network reads as a failover node "19880"
  assert.throws(() => parseFsSpec('127.0.0.1@tcp:19880:/stria'), /not a dotted IPv4 address/);
  assert.equal(parseFsSpec('127.0.0.1:19880@tcp:/stria').fsname, 'stria');
});

test('other malformed NIDs are refused', () => {
  for (const bad of ['', '@tcp', 'a b@tcp', '127.0.0.1:99999@tcp', '127.0.0.1@ib0']) {
    assert.throws(() => parseNid(bad), (e: Error & { code?: string }) => e.code === 'BAD_NID', bad);
  }
});
