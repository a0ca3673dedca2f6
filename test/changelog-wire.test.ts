/**
 * LLOG_CHANGELOG over the real RPC layer: the changelog's handlers served by an
 * RpcServer, reached with ChangelogClient. Root only except `users`; malformed bodies
 * are EINVAL; a read never answers more than fits one message, however long the names,
 * and pages chain to every record in order.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../src/common/log.js';
import { openLmdbStore } from '../src/mds/store/lmdb.js';
import type { MetadataStore } from '../src/mds/store/types.js';
import { CL } from '../src/mds/changelog-types.js';
import { Changelog, CHANGELOG_READ_MAX } from '../src/mds/changelog.js';
import { RpcServer } from '../src/ptlrpc/server.js';
import { RpcClient } from '../src/ptlrpc/client.js';
import { Opc } from '../src/ptlrpc/opcodes.js';
import type { RequestHandler } from '../src/ptlrpc/types.js';
import type { Import } from '../src/ptlrpc/import.js';
import { ChangelogClient } from '../src/hsm/policy/changelog-client.js';
import type { StriaError } from '../src/common/errno.js';

const dir = mkdtempSync(join(tmpdir(), 'stria-clwire-'));
let store: MetadataStore;
let changelog: Changelog;
let server: RpcServer;
let rpc: RpcClient;
let imp: Import;
let client: ChangelogClient;

before(async () => {
  const log = silentLogger();
  store = await openLmdbStore(join(dir, 'mdt'));
  changelog = new Changelog(store, { mdtName: 'testfs-MDT0000', log });
  await changelog.init();
  const handlers = new Map<number, RequestHandler>();
  changelog.registerHandlers(handlers);
  server = new RpcServer({ nid: { addr: '127.0.0.1', port: 0, net: 'tcp' } }, log);
  server.addTarget({ name: 'testfs-MDT0000', handlers, onConnect: () => ({}) });
  await server.listen();
  rpc = new RpcClient({ uuid: 'changelog-wire-test' }, log);
  imp = rpc.import({ nids: [{ addr: '127.0.0.1', port: server.port, net: 'tcp' }], target: 'testfs-MDT0000', connectOpc: Opc.MDS_CONNECT, pingIntervalMs: 0 });
  await imp.connect();
  client = new ChangelogClient(imp);
});

after(async () => {
  await rpc?.close();
  await server?.close();
  await changelog?.close();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

const code = (e: unknown) => (e as StriaError).code;

test('only root registers, reads and clears; anyone may list users', async () => {
  const asUser = { uid: 500, gid: 500 };
  await assert.rejects(imp.request(Opc.LLOG_CHANGELOG, { op: 'register' }, asUser), (e) => code(e) === 'CHANGELOG_PERM');
  assert.equal(await client.register(), 'cl1');
  await assert.rejects(imp.request(Opc.LLOG_CHANGELOG, { op: 'read', after: 0 }, asUser), (e) => code(e) === 'CHANGELOG_PERM');
  await assert.rejects(imp.request(Opc.LLOG_CHANGELOG, { op: 'clear', id: 'cl1', endrec: 0 }, asUser), (e) => code(e) === 'CHANGELOG_PERM');
  await assert.rejects(imp.request(Opc.LLOG_CHANGELOG, { op: 'deregister', id: 'cl1' }, asUser), (e) => code(e) === 'CHANGELOG_PERM');
  const users = (await imp.request(Opc.LLOG_CHANGELOG, { op: 'users' }, asUser)).body as { current: number; users: Array<{ id: string }> };
  assert.deepEqual(users.users.map((u) => u.id), ['cl1']);
});

test('malformed requests are EINVAL', async () => {
  for (const body of [{ op: 'nope' }, { op: 'read', after: -1 }, { op: 'read', after: 0, limit: CHANGELOG_READ_MAX + 1 }, { op: 'clear', id: 'x', endrec: 0 }, 'text', null]) {
    await assert.rejects(imp.request(Opc.LLOG_CHANGELOG, body), (e) => (e as StriaError).errno === 22, JSON.stringify(body));
  }
});

test('reads are bounded to one message and page through every record in order', async () => {
  const long = 'n'.repeat(255);
  const count = 2500;
  await Promise.all(
    Array.from({ length: count }, (_, i) =>
      changelog.append({
        type: CL.RENME, tfid: { seq: 0, oid: 0, ver: 0 }, pfid: { seq: 0x200000007, oid: 1, ver: 0 }, name: `${long.slice(0, 250)}${String(i).padStart(5, '0')}`,
        sfid: { seq: 0x200000400, oid: i + 1, ver: 0 }, spfid: { seq: 0x200000007, oid: 1, ver: 0 }, sname: long, jobid: 'mv.500', nid: '127.0.0.1@tcp', uid: 0, gid: 0,
      }),
    ),
  );
  const first = changelog.currentIndex - count;
  let after = first;
  const seen: number[] = [];
  let pages = 0;
  for (; pages < 1000; pages++) {
    const r = await client.read(after);
    assert.ok(r.records.length <= CHANGELOG_READ_MAX);
    for (const rec of r.records) seen.push(rec.index);
    if (r.records.length === 0 || r.eof) break;
    after = r.records[r.records.length - 1]!.index;
  }
  assert.ok(pages > 2, `long names take several replies (took ${pages + 1})`);
  assert.deepEqual(seen, Array.from({ length: count }, (_, i) => first + i + 1));

  const small = await client.read(first, 3);
  assert.deepEqual(small.records.map((r) => r.index), [first + 1, first + 2, first + 3]);
  assert.equal(small.eof, false);
  assert.equal(small.current, changelog.currentIndex);
});

test('clear and users through the client', async () => {
  const id = await client.register();
  await client.clear('cl1', 0);
  const u = await client.users();
  assert.equal(u.current, changelog.currentIndex);
  assert.deepEqual(u.users.map((x) => [x.id, x.endrec]), [['cl1', u.current], [id, u.current]]);
  await assert.rejects(client.clear('cl7', 0), (e) => code(e) === 'NO_CHANGELOG_USER');
  await client.deregister(id);
  await client.deregister('cl1');
  assert.deepEqual((await client.users()).users, []);
  assert.deepEqual((await client.read(0)).records, []);
});
