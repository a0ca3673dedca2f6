/**
 * A client that stops answering lock callbacks is evicted after the ldlm
 * timeout, so that it cannot stall the others: A's write to a file that a
 * frozen B has cached completes, and B, once it runs again, recovers on its
 * own (no remount), reads A's data and keeps working.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sh, type ToolResult } from './helpers/mount.js';
import { mountSkip, twoMounts } from './helpers/two-mounts.js';

const LDLM_TIMEOUT_S = 3;
const EIO_RETRIES = 20;

describe('two mounts: eviction of a client that does not answer callbacks', { skip: mountSkip }, () => {
  // The teardown wakes B should a failure leave it stopped.
  const mounts = twoMounts({ osts: 3, ldlmTimeout: LDLM_TIMEOUT_S });
  let scratch: string;

  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'stria-coh-evict-'));
  });

  after(async () => {
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  test(`B frozen with a cached read lock: A's write completes after B's eviction (ldlm timeout ${LDLM_TIMEOUT_S} s); B then reads A's data and works on`, { timeout: 180_000 }, async () => {
    const { cluster, a, b } = mounts;
    const oldData = randomBytes(300_000);
    const newData = randomBytes(400_000);
    const newSrc = join(scratch, 'new');
    await writeFile(newSrc, newData);
    await writeFile(a.path('F'), oldData);
    assert.ok((await readFile(b.path('F'))).equals(oldData), 'B read F (and holds a read lock on it)');

    const bProc = b.proc!;
    let write: ToolResult;
    bProc.kill('SIGSTOP');
    try {
      // A child process, so that a write that never completes fails by its timeout instead of hanging the test.
      write = await sh(`cp ${newSrc} ${a.path('F')}`, { timeoutMs: 120_000 });
    } finally {
      bProc.kill('SIGCONT');
    }
    assert.equal(write.code, 0, `A's write while B does not answer: ${write.stderr}`);
    assert.ok((await readFile(a.path('F'))).equals(newData), 'A reads back what it wrote');

    // B learns it was evicted on its first requests after waking: those may fail with EIO, and only those.
    let read: ToolResult | undefined;
    const errors: string[] = [];
    for (let attempt = 0; attempt < EIO_RETRIES; attempt++) {
      read = await sh(`cmp ${newSrc} ${b.path('F')}`, { timeoutMs: 30_000 });
      if (read.code === 0 || !/Input\/output error/.test(read.stderr)) break;
      errors.push(read.stderr.trim());
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.equal(read!.code, 0, `B's read of F after waking returns A's new data: ${read!.stdout}${read!.stderr} (after ${errors.length} EIO answers)`);

    const note = `written on B after its eviction ${Date.now()}`;
    await writeFile(b.path('after-eviction'), note);
    assert.equal(await readFile(a.path('after-eviction'), 'utf8'), note, 'B works on without a remount: A reads the file B created');
    assert.ok(bProc.exitCode === null && bProc.signalCode === null, 'B is the same mount process as before');

    const logs = [...cluster.roles.values()].filter((r) => r.name === 'mds' || r.name.startsWith('oss'));
    const evictions = logs.flatMap((r) => r.output.filter((l) => /evict/i.test(l)).map((l) => `${r.name}: ${l}`));
    assert.ok(evictions.length > 0, `a server logged the eviction of a client (mds/oss logs hold no line with "evict"; last mds lines:\n${cluster.roles.get('mds')!.output.slice(-5).join('\n')})`);
    console.log(`B answered EIO ${errors.length} times after waking; ${evictions.length} eviction log lines, the first: ${evictions[0]}`);
  });
});
