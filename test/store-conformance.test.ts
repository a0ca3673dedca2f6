/**
 * The LMDB metadata store: the shared conformance suite (with and without
 * group commit), its on-disk marker checks, and crash safety under SIGKILL.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { open } from 'lmdb';
import { encodeValue } from '../src/mds/store/codec.js';
import { LMDB_MARKER_KEY, LMDB_STORE_FORMAT, LMDB_STORE_VERSION, openLmdbStore } from '../src/mds/store/lmdb.js';
import type { MetadataStore } from '../src/mds/store/types.js';
import { checkCommittedTriples, storeConformance } from './helpers/store-conformance.js';

const CHILD_ENV = 'STRIA_STORE_CRASH_CHILD';

if (process.env[CHILD_ENV]) {
  await crashChild(process.env[CHILD_ENV]);
} else {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'stria-store-'));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  storeConformance('lmdb', () => openLmdbStore(path.join(tmp, 'group')));
  storeConformance('lmdb without group commit', () => openLmdbStore(path.join(tmp, 'serial'), { groupCommit: false }));

  describe('LMDB store directory', () => {
    test('a new directory is created and initialised; reopening finds the same store', async () => {
      const dir = path.join(tmp, 'fresh', 'nested');
      let s = await openLmdbStore(dir);
      assert.equal(s.kind, 'lmdb');
      await s.transact(async (tx) => tx.put('k', 'v'));
      await s.close();
      s = await openLmdbStore(dir);
      assert.equal(await s.get('k'), 'v');
      await s.close();
    });

    test('an empty existing directory is accepted', async () => {
      const dir = path.join(tmp, 'empty');
      fs.mkdirSync(dir);
      const s = await openLmdbStore(dir);
      await s.close();
      assert.ok(fs.existsSync(path.join(dir, 'data.mdb')));
    });

    test('a non-empty directory without a store is refused and left untouched', async () => {
      const dir = path.join(tmp, 'home');
      fs.mkdirSync(dir);
      fs.writeFileSync(path.join(dir, 'notes.txt'), 'mine');
      await assert.rejects(openLmdbStore(dir), (e: Error & { code?: string }) => e.code === 'STORE_FOREIGN' && /not empty/.test(e.message));
      assert.deepEqual(fs.readdirSync(dir), ['notes.txt']);
    });

    test('a path that is a file is refused', async () => {
      const file = path.join(tmp, 'plain-file');
      fs.writeFileSync(file, 'x');
      await assert.rejects(openLmdbStore(file), (e: Error & { code?: string }) => e.code === 'STORE_FOREIGN');
    });

    test('a foreign LMDB database is refused', async () => {
      const dir = path.join(tmp, 'foreign-lmdb');
      const db = open({ path: dir, noSubdir: false });
      await db.put('someone-elses', 'data');
      await db.close();
      await assert.rejects(openLmdbStore(dir), (e: Error & { code?: string }) => e.code === 'STORE_FOREIGN' && /not a Stria/.test(e.message));
    });

    test('a data.mdb that is not LMDB at all is refused', async () => {
      const dir = path.join(tmp, 'garbage');
      fs.mkdirSync(dir);
      fs.writeFileSync(path.join(dir, 'data.mdb'), Buffer.alloc(64 * 1024, 0x5a));
      await assert.rejects(openLmdbStore(dir), (e: Error & { code?: string }) => e.code === 'STORE_FOREIGN');
    });

    test('a store written by a newer version is refused with a clear error', async () => {
      const dir = path.join(tmp, 'newer');
      await (await openLmdbStore(dir)).close();
      const db = open<Buffer, Buffer>({ path: dir, noSubdir: false, keyEncoding: 'binary', encoding: 'binary', overlappingSync: false });
      await db.put(LMDB_MARKER_KEY as Buffer, encodeValue({ format: LMDB_STORE_FORMAT, version: LMDB_STORE_VERSION + 1, created: 'later' }));
      await db.close();
      await assert.rejects(openLmdbStore(dir), (e: Error & { code?: string }) => e.code === 'STORE_TOO_NEW' && /newer/.test(e.message));
    });

    test('a store marked with another format is refused', async () => {
      const dir = path.join(tmp, 'other-format');
      await (await openLmdbStore(dir)).close();
      const db = open<Buffer, Buffer>({ path: dir, noSubdir: false, keyEncoding: 'binary', encoding: 'binary', overlappingSync: false });
      await db.put(LMDB_MARKER_KEY as Buffer, encodeValue({ format: 'something-else', version: 1 }));
      await db.close();
      await assert.rejects(openLmdbStore(dir), (e: Error & { code?: string }) => e.code === 'STORE_FOREIGN');
    });
  });

  describe('LMDB store crash safety', () => {
    test('SIGKILL at random moments: every acknowledged transaction is there, none is half there', async (t) => {
      const dir = path.join(tmp, 'crash');
      const rounds = 6;
      let acknowledgedTotal = 0;
      for (let round = 0; round < rounds; round++) {
        const acked = await runAndKill(dir, 100 + Math.floor(Math.random() * 500));
        const s = await openLmdbStore(dir);
        try {
          const count = (await s.get<number>('count')) ?? 0;
          assert.ok(count >= acked, `round ${round}: ${acked} acknowledged but only ${count} stored`);
          await checkCommittedTriples(s, count);
          t.diagnostic(`round ${round}: ${acked} acknowledged, ${count} stored`);
          acknowledgedTotal = count;
        } finally {
          await s.close();
        }
      }
      assert.ok(acknowledgedTotal > 0, 'the child made progress');
    });
  });
}


/** Starts the child, kills it after `ms`, returns the highest transaction count it saw acknowledged. */
async function runAndKill(dir: string, ms: number): Promise<number> {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url)], {
    env: { ...process.env, [CHILD_ENV]: dir },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let acked = 0;
  let buf = '';
  let started!: () => void;
  const ready = new Promise<void>((r) => (started = r));
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d: string) => {
    buf += d;
    const lines = buf.split('\n');
    buf = lines.pop()!;
    for (const l of lines) {
      if (l === 'ready') started();
      else if (/^\d+$/.test(l)) acked = Math.max(acked, Number(l));
    }
  });
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  await Promise.race([ready, exited]);
  await new Promise((r) => setTimeout(r, ms));
  child.kill('SIGKILL');
  await exited;
  return acked;
}

/** Child: many concurrent transactions, each appending one numbered triple; prints the count once durable. */
async function crashChild(dir: string): Promise<void> {
  const s = await openLmdbStore(dir);
  process.stdout.write('ready\n');
  const deadline = Date.now() + 30_000;
  const worker = async () => {
    for (let k = 0; k < 1_000_000 && Date.now() < deadline; k++) {
      const count = await s.transact(async (tx) => {
        const i = (await tx.get<number>('count')) ?? 0;
        for (const part of ['a', 'b', 'c']) tx.put(`r:${String(i).padStart(8, '0')}:${part}`, { n: i, part });
        tx.put('count', i + 1);
        return i + 1;
      });
      process.stdout.write(`${count}\n`);
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  await s.close();
}
