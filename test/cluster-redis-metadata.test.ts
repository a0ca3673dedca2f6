/**
 * A whole cluster with its metadata in a real redis-server: namespace operations and
 * striped data work as on the embedded store, survive a SIGKILL of the MDS, and an MDS of
 * another filesystem pointed at the same Redis database is refused.
 */
import { test, after, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { TestCluster, STRIA_BIN, freePort } from './helpers/cluster.js';
import { RedisServer, REDIS_MISSING, findRedisServer } from './helpers/redis-server.js';
import type { StriaClient } from '../src/client/client.js';

const root = { uid: 0, gid: 0 };

describe('a cluster on Redis', { skip: findRedisServer() ? false : REDIS_MISSING }, () => {
  let redis: RedisServer;
  let cluster: TestCluster;
  let url: string;

  before(async () => {
    redis = await RedisServer.start();
    url = redis.url.replace(/\/\d+$/, '/3');
    cluster = await TestCluster.start({ osts: 2, mdsStore: url });
  });

  after(async () => {
    await cluster?.stop();
    await redis?.stop();
  });

  async function names(c: StriaClient, dir: Parameters<StriaClient['listDir']>[0]): Promise<string[]> {
    const out: string[] = [];
    for await (const e of c.listDir(dir)) out.push(e.name);
    return out.sort();
  }

  test('namespace and data work, and survive a SIGKILL of the MDS', async () => {
    let c = await cluster.mount();
    try {
      const d = await c.mkdir(c.root, 'dir', { mode: 0o755, cred: root });
      const f = await c.create(d.fid, 'file', { mode: 0o644, cred: root, layout: { stripeCount: 2, stripeSize: 65536 } });
      const data = Buffer.alloc(300_000, 5);
      await c.write(f, 0, data);
      await c.close(f);
      await c.link(f.fid, c.root, 'hardlink');
      await c.rename(d.fid, 'file', c.root, 'moved');
      await c.symlink(c.root, 'sym', 'moved', root);
      assert.deepEqual(await names(c, c.root), ['dir', 'hardlink', 'moved', 'sym']);
      assert.equal((await c.lookup(c.root, 'moved')).nlink, 2);
    } finally {
      await c.unmount();
    }

    await cluster.kill9('mds');
    await cluster.startRole('mds');
    await cluster.waitOstsReady();
    c = await cluster.mount();
    try {
      assert.deepEqual(await names(c, c.root), ['dir', 'hardlink', 'moved', 'sym']);
      const moved = await c.lookup(c.root, 'moved');
      assert.equal(moved.size, 300_000);
      const f = await c.open(moved.fid);
      assert.ok((await c.read(f, 0, 300_000)).equals(Buffer.alloc(300_000, 5)));
      await c.close(f);
      assert.equal(await c.readlink((await c.lookup(c.root, 'sym')).fid), 'moved');
    } finally {
      await c.unmount();
    }
  });

  test('an MDS of another filesystem is refused on the same Redis database', async () => {
    const port = await freePort();
    const proc = spawn(process.execPath, [STRIA_BIN, 'mds', '--fsname', 'otherfs', '--mgs', `127.0.0.1:${cluster.ports.mgs}@tcp`, '--store', url, '--listen', `127.0.0.1:${port}@tcp`], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, STRIA_RUN_DIR: cluster.runDir },
    });
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
    const code = await new Promise<number | null>((resolve) => proc.once('exit', (c) => resolve(c)));
    clearTimeout(timer);
    assert.notEqual(code, 0, 'the MDS exits with an error');
    assert.match(out, /holds filesystem testfs, not otherfs/);
    assert.doesNotMatch(out, /:\/\/[^@\s]*:[^@\s]*@/, 'no password in the message');
  });
});
