/**
 * The Redis metadata store against a real redis-server on a loopback port:
 * the shared conformance suite, its URLs, marker and key schema, concurrent
 * transactions from one and from several clients, the persistence check,
 * durability across kill -9 of the server, and its errors.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import type { Logger } from '../src/common/log.js';
import { encodeValue } from '../src/mds/store/codec.js';
import {
  openRedisStore,
  parseRedisUrl,
  REDIS_STORE_FORMAT,
  REDIS_STORE_VERSION,
  redisStoreKeys,
  type RedisStoreOptions,
} from '../src/mds/store/redis.js';
import type { MetadataStore } from '../src/mds/store/types.js';
import { findRedisServer, REDIS_MISSING, RedisServer } from './helpers/redis-server.js';
import { freePort } from './helpers/free-port.js';
import { checkCommittedTriples, storeConformance } from './helpers/store-conformance.js';

const freshPrefix = (): string => `s${randomUUID().slice(0, 8)}:`;
type Coded = Error & { code?: string };
const hasCode = (code: string, pattern?: RegExp) => (e: Coded) => e.code === code && (!pattern || pattern.test(e.message));

if (!findRedisServer()) {
  test('Redis metadata store', { skip: REDIS_MISSING }, () => undefined);
} else {
  const server = await RedisServer.start();
  after(() => server.stop());
  const raw = new Redis({ host: '127.0.0.1', port: server.port, lazyConnect: true, protocol: 2 });
  before(() => raw.connect());
  after(() => raw.quit());

  const open = (prefix: string, opts: RedisStoreOptions = {}): Promise<MetadataStore> => openRedisStore(server.url, { keyPrefix: prefix, ...opts });

  // one prefix per suite: the suite reopens its store to see what survived
  const suitePrefix = freshPrefix();
  storeConformance('redis', () => open(suitePrefix));
  const serialPrefix = freshPrefix();
  storeConformance('redis with a single transaction connection', () => open(serialPrefix, { poolSize: 1 }));

  describe('Redis store URLs', () => {
    test('standalone, TLS and Sentinel URLs name servers, database, credentials and prefix', () => {
      const a = parseRedisUrl('redis://127.0.0.1:6390/3');
      assert.deepEqual([a.mode, a.tls, a.hosts, a.db, a.password, a.username], ['standalone', false, [{ host: '127.0.0.1', port: 6390 }], 3, undefined, undefined]);
      const b = parseRedisUrl('rediss://:pw@redis.example');
      assert.deepEqual([b.tls, b.hosts, b.db, b.password, b.username], [true, [{ host: 'redis.example', port: 6379 }], 0, 'pw', undefined]);
      const c = parseRedisUrl('redis://mds:p%40ss@[::1]:7000/0?prefix=fs1%3A');
      assert.deepEqual([c.hosts, c.username, c.password, c.prefix], [[{ host: '::1', port: 7000 }], 'mds', 'p@ss', 'fs1:']);
      assert.equal(c.display, 'redis://mds:***@[::1]:7000/0', 'the password never appears in what is logged');
      const d = parseRedisUrl('redis+sentinel://:pw@s1:26380,s2,[::1]:26381/mymaster/2');
      assert.equal(d.mode, 'sentinel');
      assert.deepEqual(d.hosts, [{ host: 's1', port: 26380 }, { host: 's2', port: 26379 }, { host: '::1', port: 26381 }]);
      assert.deepEqual([d.masterName, d.db, d.password], ['mymaster', 2, 'pw']);
      assert.equal(parseRedisUrl('rediss+sentinel://s1/m').tls, true);
    });

    test('malformed URLs are refused with EINVAL, saying what is wrong, without connecting or echoing the password', async () => {
      const cases: Array<[string, RegExp]> = [
        ['http://h', /unsupported scheme "http"/],
        ['not a url', /scheme:\/\/host/],
        ['redis://', /no host/],
        ['redis://h:0', /port "0"/],
        ['redis://h:70000', /port "70000"/],
        ['redis://h:12ab', /not host\[:port\]/],
        ['redis://h/x', /database "x" is not a number/],
        ['redis://h/1/2', /\/db/],
        ['redis://a,b/0', /only for Sentinel/],
        ['redis+sentinel://s1:26379', /names the master/],
        ['redis://user@h', /needs a password/],
        ['redis://h/0?db=1', /unknown parameter "db"/],
        ['redis://u:secret@h:x/0', /not host\[:port\]/],
      ];
      for (const [url, why] of cases) {
        assert.throws(() => parseRedisUrl(url), hasCode('BAD_STORE_URL', why), url);
        await assert.rejects(openRedisStore(url), (e: Coded) => e.code === 'BAD_STORE_URL' && (e as { errno?: number }).errno === 22, url);
      }
      assert.throws(() => parseRedisUrl('redis://u:secret@h:x/0'), (e: Error) => !e.message.includes('secret'));
    });

    test('a prefix in the URL and a different one in the options are refused', async () => {
      await assert.rejects(openRedisStore(`${server.url}?prefix=a:`, { keyPrefix: 'b:' }), hasCode('BAD_STORE_URL', /two key prefixes/));
      await assert.rejects(openRedisStore(server.url, { keyPrefix: '' }), hasCode('BAD_STORE_URL'));
    });

    test('the prefix from the URL selects the same store as the option', async () => {
      const p = freshPrefix();
      const a = await openRedisStore(`${server.url}?prefix=${encodeURIComponent(p)}`);
      await a.transact(async (tx) => tx.put('k', 'via url'));
      await a.close();
      const b = await open(p);
      assert.equal(await b.get('k'), 'via url');
      await b.close();
    });
  });

  describe('Redis store marker and key schema', () => {
    test('a new prefix is initialised with a marker; reopening finds the same store', async () => {
      const p = freshPrefix();
      let s = await open(p);
      assert.equal(s.kind, 'redis');
      await s.transact(async (tx) => tx.put('k', 'v'));
      await s.close();
      const marker = await raw.getBuffer(redisStoreKeys(p).marker);
      assert.ok(marker, 'marker written');
      s = await open(p);
      assert.equal(await s.get('k'), 'v');
      await s.close();
    });

    test('values live under <prefix>v:<key> as the shared MessagePack codec encodes them, keys in the <prefix>idx sorted set', async () => {
      const p = freshPrefix();
      const keys = redisStoreKeys(p);
      const s = await open(p);
      try {
        const value = { fid: { seq: 0x200000400, oid: 1, ver: 0 }, name: 'x', buf: Buffer.from([1, 2]) };
        await s.transact(async (tx) => {
          tx.put('d:1:abc', value);
          tx.put('c:inodes', 7);
        });
        assert.deepEqual(await raw.getBuffer(`${p}v:d:1:abc`), encodeValue(value));
        assert.equal(keys.value('d:1:abc'), `${p}v:d:1:abc`);
        assert.deepEqual(await raw.zrange(keys.index, 0, '-1', 'WITHSCORES'), ['c:inodes', '0', 'd:1:abc', '0']);
        await s.transact(async (tx) => tx.del('d:1:abc'));
        assert.equal(await raw.exists(`${p}v:d:1:abc`), 0);
        assert.deepEqual(await raw.zrange(keys.index, 0, '-1'), ['c:inodes']);
      } finally {
        await s.close();
      }
    });

    test('stores under different prefixes in one database do not see each other', async () => {
      const [p, q] = [freshPrefix(), freshPrefix()];
      const a = await open(p);
      const b = await open(q);
      try {
        await a.transact(async (tx) => tx.put('same', 'a'));
        await b.transact(async (tx) => tx.put('same', 'b'));
        assert.equal(await a.get('same'), 'a');
        assert.deepEqual((await b.scan('', undefined, 10)).map(([, v]) => v), ['b']);
      } finally {
        await a.close();
        await b.close();
      }
    });

    test('a prefix marked with another format is refused', async () => {
      const p = freshPrefix();
      await raw.set(redisStoreKeys(p).marker, encodeValue({ format: 'stria-mdt-lmdb', version: 1 }));
      await assert.rejects(open(p), hasCode('STORE_FOREIGN', /not a Stria Redis metadata store \(format stria-mdt-lmdb\)/));
    });

    test('a store written by a newer version is refused with a clear error', async () => {
      const p = freshPrefix();
      await (await open(p)).close();
      await raw.set(redisStoreKeys(p).marker, encodeValue({ format: REDIS_STORE_FORMAT, version: REDIS_STORE_VERSION + 1, created: 'later' }));
      await assert.rejects(open(p), hasCode('STORE_TOO_NEW', /store version 2, newer than this Stria supports \(1\)/));
    });

    test('a marker that is not a string or not MessagePack is refused', async () => {
      const p = freshPrefix();
      await raw.hset(redisStoreKeys(p).marker, 'format', REDIS_STORE_FORMAT);
      await assert.rejects(open(p), hasCode('STORE_FOREIGN'));
      const q = freshPrefix();
      await raw.set(redisStoreKeys(q).marker, 'plain text');
      await assert.rejects(open(q), hasCode('STORE_FOREIGN'));
    });

    test('a prefix holding keys but no marker is refused and left untouched', async () => {
      const p = freshPrefix();
      await raw.set(`${p}someone-elses`, 'data');
      await assert.rejects(open(p), hasCode('STORE_FOREIGN', /holds keys .* but no Stria store marker/));
      assert.equal(await raw.exists(redisStoreKeys(p).marker), 0);
      assert.equal(await raw.get(`${p}someone-elses`), 'data');
    });
  });

  describe('Redis store concurrency', () => {
    test('50 concurrent increments of one counter all apply', async () => {
      const p = freshPrefix();
      const s = await open(p);
      try {
        const results = await Promise.all(
          Array.from({ length: 50 }, () =>
            s.transact(async (tx) => {
              const v = (await tx.get<number>('ctr')) ?? 0;
              await new Promise((r) => setImmediate(r));
              tx.put('ctr', v + 1);
              return v + 1;
            }),
          ),
        );
        assert.equal(await s.get('ctr'), 50);
        assert.deepEqual([...results].sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => i + 1));
      } finally {
        await s.close();
      }
    });

    test('increments from two separate clients (their own connections) all apply', async () => {
      const p = freshPrefix();
      const stores = [await open(p), await open(p)];
      try {
        await Promise.all(
          Array.from({ length: 60 }, (_, i) =>
            stores[i % 2]!.transact(async (tx) => {
              const v = (await tx.get<number>('ctr')) ?? 0;
              await new Promise((r) => setImmediate(r));
              tx.put('ctr', v + 1);
            }),
          ),
        );
        assert.equal(await stores[0]!.get('ctr'), 60);
      } finally {
        await Promise.all(stores.map((s) => s.close()));
      }
    });

    test('concurrent transfers between two keys keep their sum, and every read-only transaction sees it', async () => {
      const p = freshPrefix();
      const stores = [await open(p), await open(p)];
      try {
        await stores[0]!.transact(async (tx) => {
          tx.put('a', 100);
          tx.put('b', 100);
        });
        const ops: Array<Promise<number | undefined>> = [];
        for (let i = 0; i < 80; i++) {
          const s = stores[i % 2]!;
          if (i % 3 === 2) {
            ops.push(
              s.transact(async (tx) => {
                const a = (await tx.get<number>('a'))!;
                await new Promise((r) => setImmediate(r));
                const b = (await tx.get<number>('b'))!;
                return a + b;
              }),
            );
          } else {
            const [from, to] = i % 2 ? ['a', 'b'] : ['b', 'a'];
            const amount = 1 + (i % 7);
            ops.push(
              s.transact(async (tx) => {
                const x = (await tx.get<number>(from))!;
                await new Promise((r) => setImmediate(r));
                const y = (await tx.get<number>(to))!;
                tx.put(from, x - amount);
                tx.put(to, y + amount);
                return undefined;
              }),
            );
          }
        }
        const sums = (await Promise.all(ops)).filter((v) => v !== undefined);
        assert.ok(sums.length > 0);
        assert.deepEqual(sums, sums.map(() => 200), 'every read-only transaction saw a consistent state');
        assert.equal((await stores[1]!.get<number>('a'))! + (await stores[1]!.get<number>('b'))!, 200);
      } finally {
        await Promise.all(stores.map((s) => s.close()));
      }
    });

    test('a scan sees inserts and deletions from another client made before it commits', async () => {
      const p = freshPrefix();
      const [s, other] = [await open(p), await open(p)];
      try {
        await s.transact(async (tx) => {
          for (let i = 0; i < 5; i++) tx.put(`r:${i}`, i);
        });
        let runs = 0;
        const seen = await s.transact(async (tx) => {
          runs++;
          const rows = await tx.scan<number>('r:', undefined, 100);
          if (runs === 1) {
            await other.transact(async (o) => {
              o.del('r:1');
              o.put('r:9', 9);
            });
          }
          tx.put('summary', rows.length);
          return rows.map(([, v]) => v);
        });
        assert.equal(runs, 2, 'the first run read a range that changed before it committed');
        assert.deepEqual(seen, [0, 2, 3, 4, 9]);
        assert.equal(await s.get('summary'), 5);
      } finally {
        await s.close();
        await other.close();
      }
    });

    test('a function that fails because another client changed what it read is run again, not failed', async () => {
      const p = freshPrefix();
      const [s, other] = [await open(p), await open(p)];
      try {
        await s.transact(async (tx) => {
          tx.put('a', 50);
          tx.put('b', 50);
        });
        let runs = 0;
        const total = await s.transact(async (tx) => {
          runs++;
          const a = (await tx.get<number>('a'))!;
          if (runs === 1) {
            await other.transact(async (o) => {
              o.put('a', 10);
              o.put('b', 90);
            });
          }
          const b = (await tx.get<number>('b'))!;
          if (a + b !== 100) throw new Error(`inconsistent view: ${a} + ${b}`);
          return a + b;
        });
        assert.equal(total, 100);
        assert.equal(runs, 2);
        // a failure on a consistent view is the function's own: it is reported
        await assert.rejects(
          s.transact(async (tx) => {
            await tx.get('a');
            throw new Error('genuine');
          }),
          /genuine/,
        );
      } finally {
        await s.close();
        await other.close();
      }
    });

    test('a transaction that conflicts on every attempt gives up with EAGAIN after maxAttempts', async () => {
      const p = freshPrefix();
      const s = await open(p, { maxAttempts: 3 });
      const other = await open(p);
      try {
        let runs = 0;
        await assert.rejects(
          s.transact(async (tx) => {
            runs++;
            const v = (await tx.get<number>('hot')) ?? 0;
            await other.transact(async (o) => o.put('hot', v + 100));
            tx.put('hot', v + 1);
          }),
          hasCode('STORE_CONFLICT', /gave up after 3 attempts/),
        );
        assert.equal(runs, 3);
        assert.equal(await s.get('hot'), 300, 'none of its writes landed');
      } finally {
        await s.close();
        await other.close();
      }
    });
  });

  describe('Redis store persistence settings', () => {
    const capture = (): { log: Logger; warnings: () => string[] } => {
      const lines: Array<{ level: number; msg: string }> = [];
      const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
      return { log, warnings: () => lines.filter((l) => l.level === 40).map((l) => l.msg) };
    };
    const openWith = async (log: Logger): Promise<void> => (await openRedisStore(server.url, { keyPrefix: freshPrefix(), log })).close();

    test('appendonly yes with appendfsync always opens without a warning', async () => {
      const c = capture();
      await openWith(c.log);
      assert.deepEqual(c.warnings(), []);
    });

    test('weaker persistence is reported as a warning saying what could be lost', async () => {
      try {
        await raw.config('SET', 'appendfsync', 'everysec');
        let c = capture();
        await openWith(c.log);
        assert.equal(c.warnings().length, 1);
        assert.match(c.warnings()[0]!, /appendfsync everysec.*about the last second.*appendfsync always/);
        await raw.config('SET', 'appendonly', 'no');
        c = capture();
        await openWith(c.log);
        assert.match(c.warnings().join('\n'), /without an append-only file.*RDB snapshot/);
        await raw.config('SET', 'maxmemory-policy', 'allkeys-lru');
        c = capture();
        await openWith(c.log);
        assert.match(c.warnings().join('\n'), /evict.*noeviction/);
      } finally {
        await raw.config('SET', 'maxmemory-policy', 'noeviction');
        await raw.config('SET', 'appendonly', 'yes');
        await raw.config('SET', 'appendfsync', 'always');
      }
    });

    test('a server that refuses CONFIG is used, with a warning that persistence could not be checked', async () => {
      const locked = await RedisServer.start({ args: ['--rename-command', 'CONFIG', '""'] });
      try {
        const c = capture();
        const s = await openRedisStore(locked.url, { log: c.log });
        await s.transact(async (tx) => tx.put('k', 1));
        assert.equal(await s.get('k'), 1);
        await s.close();
        assert.match(c.warnings().join('\n'), /cannot read the Redis persistence settings/);
      } finally {
        await locked.stop();
      }
    });
  });

  describe('Redis store durability', () => {
    let crashy: RedisServer;
    before(async () => {
      crashy = await RedisServer.start();
    });
    after(() => crashy.stop());

    test('every acknowledged transaction survives kill -9 of redis-server, and none is half there', async (t) => {
      const p = freshPrefix();
      for (let round = 0; round < 3; round++) {
        const writer = await openRedisStore(crashy.url, { keyPrefix: p, reconnectWaitMs: 300 });
        let acked = 0;
        let failures = 0;
        const worker = async (): Promise<void> => {
          for (let k = 0; k < 100_000; k++) {
            try {
              const count = await writer.transact(async (tx) => {
                const i = (await tx.get<number>('count')) ?? 0;
                for (const part of ['a', 'b', 'c']) tx.put(`r:${String(i).padStart(8, '0')}:${part}`, { n: i, part });
                tx.put('count', i + 1);
                return i + 1;
              });
              acked = Math.max(acked, count);
            } catch {
              failures++;
              return;
            }
          }
        };
        const workers = Promise.all(Array.from({ length: 8 }, worker));
        const target = acked + 50 + Math.floor(Math.random() * 200);
        for (let i = 0; i < 3000 && acked < target; i++) await new Promise((r) => setTimeout(r, 5));
        await crashy.kill();
        await workers;
        await writer.close();
        await crashy.restart();
        const s = await openRedisStore(crashy.url, { keyPrefix: p });
        try {
          const count = (await s.get<number>('count')) ?? 0;
          t.diagnostic(`round ${round}: ${acked} acknowledged, ${count} stored, ${failures} workers stopped by the kill`);
          assert.ok(acked > 0, 'the writers made progress');
          assert.ok(count >= acked, `round ${round}: ${acked} acknowledged but only ${count} stored`);
          await checkCommittedTriples(s, count);
        } finally {
          await s.close();
        }
      }
    });

    test('an open store carries on after the server was killed and restarted, waiting for it', async () => {
      const p = freshPrefix();
      const s = await openRedisStore(crashy.url, { keyPrefix: p });
      try {
        await s.transact(async (tx) => tx.put('before', 1));
        await crashy.kill();
        // called while the server is down: it waits for it to come back
        const during = s.transact(async (tx) => {
          const v = (await tx.get<number>('before'))!;
          tx.put('after', v + 1);
          return v + 1;
        });
        const read = s.get('before');
        await new Promise((r) => setTimeout(r, 300));
        await crashy.restart();
        assert.equal(await during, 2);
        assert.equal(await read, 1);
        assert.equal(await s.get('after'), 2);
        assert.deepEqual((await s.scan('', undefined, 10)).map(([k]) => k), ['after', 'before']);
      } finally {
        await s.close();
      }
    });

    test('an operation fails with STORE_UNAVAILABLE when the server stays away longer than reconnectWaitMs', async () => {
      const s = await openRedisStore(crashy.url, { keyPrefix: freshPrefix(), reconnectWaitMs: 500 });
      try {
        await crashy.kill();
        await assert.rejects(s.transact(async (tx) => tx.put('k', 1)), hasCode('STORE_UNAVAILABLE', new RegExp(`127\\.0\\.0\\.1:${crashy.port}`)));
        await assert.rejects(s.get('k'), hasCode('STORE_UNAVAILABLE'));
      } finally {
        await crashy.restart();
        await s.close();
      }
    });
  });

  describe('Redis store connection errors', () => {
    test('no server on the port: a clear error naming host:port, after connectTimeoutMs', { timeout: 30_000 }, async () => {
      const port = await freePort();
      await assert.rejects(
        openRedisStore(`redis://127.0.0.1:${port}/0`, { connectTimeoutMs: 1000 }),
        hasCode('STORE_UNREACHABLE', new RegExp(`cannot reach Redis at 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`)),
      );
    });

    test('a server that accepts but never answers: a timeout naming host:port', { timeout: 30_000 }, async () => {
      const sockets = new Set<net.Socket>();
      const silent = net.createServer((sock) => {
        sockets.add(sock);
        sock.on('close', () => sockets.delete(sock));
      });
      await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
      const port = (silent.address() as net.AddressInfo).port;
      try {
        await assert.rejects(
          openRedisStore(`redis://127.0.0.1:${port}/0`, { connectTimeoutMs: 1000 }),
          (e: Coded & { errno?: number }) => e.code === 'STORE_UNREACHABLE' && e.message.includes(`127.0.0.1:${port}`) && /no answer within 1000 ms/.test(e.message),
        );
      } finally {
        for (const sock of sockets) sock.destroy();
        await new Promise((r) => silent.close(r));
      }
    });

    test('wrong or missing credentials are refused with EACCES; the right ones work', { timeout: 30_000 }, async () => {
      const guarded = await RedisServer.start({ args: ['--requirepass', 's3cret'] });
      try {
        const base = `127.0.0.1:${guarded.port}/0`;
        await assert.rejects(openRedisStore(`redis://${base}`, { connectTimeoutMs: 3000 }), hasCode('STORE_AUTH'));
        await assert.rejects(openRedisStore(`redis://:wrong@${base}`, { connectTimeoutMs: 3000 }), (e: Coded) => e.code === 'STORE_AUTH' && !e.message.includes('wrong'));
        const s = await openRedisStore(`redis://:s3cret@${base}`);
        await s.transact(async (tx) => tx.put('k', 'v'));
        assert.equal(await s.get('k'), 'v');
        await s.close();
      } finally {
        await guarded.stop();
      }
    });

    test('a database number the server does not have is refused', async () => {
      await assert.rejects(openRedisStore(`redis://127.0.0.1:${server.port}/99`), hasCode('BAD_STORE_URL', /has no database 99/));
    });

    test('a store in another database is a different store', async () => {
      const p = freshPrefix();
      const a = await openRedisStore(`redis://127.0.0.1:${server.port}/3`, { keyPrefix: p });
      await a.transact(async (tx) => tx.put('k', 'db3'));
      await a.close();
      const b = await open(p);
      assert.equal(await b.get('k'), undefined);
      await b.close();
      assert.equal(await raw.exists(redisStoreKeys(p).marker), 1, 'the db-0 store got its own marker');
    });

    test('closed stores refuse work', async () => {
      const s = await open(freshPrefix());
      await s.close();
      await assert.rejects(s.transact(async () => undefined), hasCode('STORE_CLOSED'));
    });
  });

  describe('Redis store through Sentinel', () => {
    test('a redis+sentinel:// URL finds the master through the sentinel', { timeout: 60_000 }, async () => {
      const sentinel = await RedisServer.startSentinel(server, 'stria-master');
      try {
        const p = freshPrefix();
        const s = await openRedisStore(`redis+sentinel://127.0.0.1:${sentinel.port}/stria-master/0`, { keyPrefix: p });
        try {
          await s.transact(async (tx) => tx.put('via', 'sentinel'));
          assert.equal(await s.get('via'), 'sentinel');
        } finally {
          await s.close();
        }
        const direct = await open(p);
        assert.equal(await direct.get('via'), 'sentinel', 'the same store as the master reached directly');
        await direct.close();
        await assert.rejects(
          openRedisStore(`redis+sentinel://127.0.0.1:${sentinel.port}/no-such-master`, { connectTimeoutMs: 1500 }),
          hasCode('STORE_UNREACHABLE', /Sentinel 127\.0\.0\.1:\d+ \(master "no-such-master"\)/),
        );
      } finally {
        await sentinel.stop();
      }
    });
  });
}

