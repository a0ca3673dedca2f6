/**
 * Implicit restore (reference §7.3): read, write and truncate of a released file bring its
 * data back first and block only that access; open and stat do not; accesses of one file
 * share one restore; a restore that fails is EIO. The copytool here is a StriaClient agent
 * of the test's own, keeping archive copies in memory, so nothing depends on stria copytool.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { TestCluster } from './helpers/cluster.js';
import { pseudoRandomBuffer } from './helpers/data.js';
import { StriaError } from '../src/common/errno.js';
import { fidKey, fidToString, type Fid } from '../src/common/fid.js';
import type { OpenFile, StriaClient } from '../src/client/client.js';
import { HS } from '../src/hsm/flags.js';
import type { HsmActionItem } from '../src/hsm/protocol.js';

const root = { uid: 0, gid: 0 };
const STRIPE = 64 * 1024;
const EIO = 5;

/** A copytool for archive 1 that keeps copies in memory; actions wait for `gate` when one is set. */
class MemoryAgent {
  readonly copies = new Map<string, Buffer>();
  readonly pushed: HsmActionItem[] = [];
  readonly errors: unknown[] = [];
  failRestores = false;
  private gate: Promise<void> | undefined;
  private openGate: (() => void) | undefined;

  constructor(readonly c: StriaClient) {}

  async start(): Promise<void> {
    this.c.onHsmActions((hal) => {
      for (const item of hal.items) {
        this.pushed.push(item);
        void this.handle(item).catch((e: unknown) => this.errors.push(e));
      }
    });
    await this.c.hsm.register([1]);
  }

  hold(): void {
    this.gate = new Promise((resolve) => (this.openGate = resolve));
  }

  let(): void {
    this.openGate?.();
    this.gate = undefined;
  }

  restoresOf(fid: Fid): number {
    return this.pushed.filter((i) => i.action === 'RESTORE' && fidKey(i.fid) === fidKey(fid)).length;
  }

  private async handle(item: HsmActionItem): Promise<void> {
    const { cookie, fid } = item;
    await this.c.hsm.progress({ cookie, fid, phase: 'begin' });
    await this.gate;
    if (item.action === 'ARCHIVE') {
      const dataVersion = await this.c.dataVersion(fid);
      const attr = await this.c.getattr(fid);
      const f = await this.c.open(fid);
      const data = await this.c.read(f, 0, attr.size);
      await this.c.close(f);
      this.copies.set(fidKey(fid), data);
      const checksum = `sha256:${createHash('sha256').update(data).digest('hex')}`;
      await this.c.hsm.progress({ cookie, fid, phase: 'end', errval: 0, bytes: data.length, archived: { dataVersion, size: data.length, checksum } });
    } else if (item.action === 'RESTORE') {
      const copy = this.copies.get(fidKey(fid));
      const r = item.restore;
      if (this.failRestores || !copy || !r) {
        await this.c.hsm.progress({ cookie, fid, phase: 'end', errval: EIO });
        return;
      }
      for (let off = 0; off < copy.length; off += 1 << 20) {
        await this.c.writeObjects(fid, r.layout, off, copy.subarray(off, off + (1 << 20)));
        await this.c.hsm.progress({ cookie, fid, phase: 'progress', bytes: Math.min(copy.length, off + (1 << 20)) });
      }
      await this.c.finishObjects(fid, r.layout, { size: r.size, atime: r.atime, mtime: r.mtime });
      // the restored objects' version becomes the archived one: the file may be released again
      const dataVersion = await this.c.dataVersionOf({ ...(await this.c.mdc.getattr(fid)), layout: r.layout });
      const checksum = `sha256:${createHash('sha256').update(copy).digest('hex')}`;
      await this.c.hsm.progress({ cookie, fid, phase: 'end', errval: 0, bytes: copy.length, archived: { dataVersion, size: copy.length, checksum } });
    } else {
      if (item.action === 'REMOVE') this.copies.delete(fidKey(fid));
      await this.c.hsm.progress({ cookie, fid, phase: 'end', errval: 0 });
    }
  }
}

let cluster: TestCluster;
let c: StriaClient;
let agentClient: StriaClient;
let agent: MemoryAgent;
let readers: StriaClient[] = [];
let seed = 100;

before(async () => {
  cluster = await TestCluster.start({ osts: 2 });
  c = await cluster.mount();
  agentClient = await cluster.mount();
  agent = new MemoryAgent(agentClient);
  await agent.start();
  readers = [await cluster.mount(), await cluster.mount()];
});

after(async () => {
  for (const r of readers) await r.unmount();
  await agentClient?.unmount();
  await c?.unmount();
  await cluster?.stop();
});

async function waitFor(what: string, cond: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A striped file with `size` bytes of data, archived and released: what lfs hsm_archive then hsm_release do. */
async function releasedFile(name: string, size: number): Promise<{ fid: Fid; data: Buffer }> {
  const data = pseudoRandomBuffer(size, seed++);
  const f = await c.create(c.root, name, { mode: 0o644, cred: root, layout: { stripeCount: 2, stripeSize: STRIPE } });
  await c.write(f, 0, data);
  await c.close(f);
  const fid = f.fid;
  await c.hsm.request({ action: 'archive', fids: [fid] }, root);
  await waitFor(`archive of ${name}`, async () => ((await c.hsm.state(fid)).flags & HS.ARCHIVED) !== 0 && (await c.hsm.action(fid)).action === 'NOOP');
  const attr = await c.getattr(fid);
  await c.hsm.release({ fid, dataVersion: await c.dataVersion(fid), size: attr.size, atime: attr.atime, mtime: attr.mtime, ctime: attr.ctime }, root);
  assert.equal((await c.hsm.state(fid)).flags, HS.RELEASED | HS.EXISTS | HS.ARCHIVED);
  return { fid, data };
}

function tracked<T>(p: Promise<T>): { p: Promise<T>; settled: () => boolean } {
  let done = false;
  p.then(() => (done = true), () => (done = true));
  return { p, settled: () => done };
}

test('a read of a released file from another client waits for the restore and returns the archived bytes', async () => {
  const { fid, data } = await releasedFile('one', 3 * STRIPE * 2 + 1234);
  const r = readers[0]!;
  const f = await r.open(fid);
  assert.equal(f.inode.layout?.pattern, 'released');
  agent.hold();
  const read = tracked(r.read(f, 0, data.length, { uid: 1000, gid: 1000 }));
  try {
    await waitFor('the restore to reach the agent', () => agent.restoresOf(fid) === 1);
    assert.equal(read.settled(), false, 'the read waits while the copytool has not written the data back');
    assert.equal((await r.hsm.action(fid)).action, 'RESTORE');
  } finally {
    agent.let();
  }
  assert.ok((await read.p).equals(data), 'identical bytes');
  assert.equal(f.inode.layout?.pattern, 'raid0', 'the open file took the restored layout');
  assert.ok((await r.read(f, STRIPE - 10, 20)).equals(data.subarray(STRIPE - 10, STRIPE + 10)), 'later reads use the restored objects');
  await r.close(f);
  assert.equal((await c.hsm.state(fid)).flags, HS.EXISTS | HS.ARCHIVED, 'released is cleared, the copy is still current');
  assert.equal(agent.restoresOf(fid), 1);
  assert.deepEqual(agent.errors, []);
});

test('concurrent readers in two clients make one restore', async () => {
  const { fid, data } = await releasedFile('many', 5 * STRIPE + 17);
  const [r1, r2] = readers as [StriaClient, StriaClient];
  const opens: Array<{ client: StriaClient; f: OpenFile }> = [
    { client: r1, f: await r1.open(fid) },
    { client: r1, f: await r1.open(fid) },
    { client: r2, f: await r2.open(fid) },
  ];
  agent.hold();
  const reads: Array<Promise<Buffer>> = [];
  try {
    for (const o of opens) {
      reads.push(o.client.read(o.f, 0, data.length));
      reads.push(o.client.read(o.f, STRIPE, STRIPE));
    }
    await waitFor('the restore to reach the agent', () => agent.restoresOf(fid) >= 1);
  } finally {
    agent.let();
  }
  const got = await Promise.all(reads);
  for (let i = 0; i < got.length; i += 2) {
    assert.ok(got[i]!.equals(data));
    assert.ok(got[i + 1]!.equals(data.subarray(STRIPE, 2 * STRIPE)));
  }
  assert.equal(agent.restoresOf(fid), 1, 'one RESTORE action for all of them');
  for (const o of opens) await o.client.close(o.f);
});

test('writes, appends and truncates of a released file restore it first', async () => {
  const r = readers[1]!;
  {
    const { fid, data } = await releasedFile('write', 2 * STRIPE + 100);
    const f = await r.open(fid, 2 /* O_RDWR */);
    const patch = Buffer.alloc(300, 0x5a);
    await r.write(f, STRIPE - 150, patch, { cred: { uid: 1000, gid: 1000 } });
    const expected = Buffer.from(data);
    patch.copy(expected, STRIPE - 150);
    assert.ok((await r.read(f, 0, expected.length + 10)).equals(expected), 'the rest of the file came back around the write');
    await r.close(f);
    assert.equal(agent.restoresOf(fid), 1);
    assert.equal((await c.hsm.state(fid)).flags & HS.RELEASED, 0);
  }
  {
    const { fid, data } = await releasedFile('append', STRIPE + 1);
    const f = await r.open(fid, 2);
    const tail = Buffer.from('appended\n');
    const w = await r.write(f, 0, tail, { append: true });
    assert.equal(w.offset, data.length, 'an append goes after the restored data');
    assert.ok((await r.read(f, 0, data.length + tail.length)).equals(Buffer.concat([data, tail])));
    await r.close(f);
  }
  {
    const { fid, data } = await releasedFile('truncate', 3 * STRIPE);
    const attr = await r.setattr(fid, { size: STRIPE + 5 });
    assert.equal(attr.size, STRIPE + 5);
    assert.equal(agent.restoresOf(fid), 1);
    const f = await r.open(fid);
    assert.ok((await r.read(f, 0, 3 * STRIPE)).equals(data.subarray(0, STRIPE + 5)), 'a truncate keeps the restored head');
    await r.close(f);
  }
});

test('stat and open of a released file do not restore it; it shows its size, times and one block', async () => {
  const { fid, data } = await releasedFile('still', 4 * STRIPE + 3);
  const before = await c.hsm.state(fid);
  const r = readers[0]!;
  const attr = await r.getattr(fid);
  assert.equal(attr.size, data.length);
  assert.equal(attr.blocks, 1, 'st_blocks of a released file is 1 (reference §5)');
  const f = await r.open(fid);
  const again = await r.getattr(fid);
  assert.deepEqual([again.mtime, again.atime, again.ctime], [attr.mtime, attr.atime, attr.ctime]);
  assert.equal((await r.read(f, 0, 0)).length, 0, 'an empty read needs no data');
  await r.close(f);
  assert.equal((await c.hsm.action(fid)).action, 'NOOP', 'no restore was asked for');
  assert.equal(agent.restoresOf(fid), 0);
  assert.deepEqual(await c.hsm.state(fid), before);
});

test('a restore that fails makes the access fail with EIO naming the file; the next one restores', async () => {
  const { fid, data } = await releasedFile('broken', STRIPE + 99);
  const r = readers[0]!;
  const f = await r.open(fid);
  agent.failRestores = true;
  try {
    await assert.rejects(r.read(f, 0, 10), (e: unknown) => {
      assert.ok(e instanceof StriaError);
      assert.equal(e.errno, EIO);
      assert.equal(e.code, 'RESTORE_FAILED');
      assert.ok(e.message.includes(fidToString(fid)), e.message);
      return true;
    });
  } finally {
    agent.failRestores = false;
  }
  assert.equal((await c.hsm.state(fid)).flags & HS.RELEASED, HS.RELEASED, 'still released');
  assert.ok((await r.read(f, 0, data.length)).equals(data));
  assert.equal(agent.restoresOf(fid), 2);
  await r.close(f);
});

test('a file released while open elsewhere is restored on the next read of that open file', async () => {
  const data = pseudoRandomBuffer(2 * STRIPE + 7, seed++);
  const w = await c.create(c.root, 'open-while-released', { mode: 0o644, cred: root, layout: { stripeCount: 2, stripeSize: STRIPE } });
  await c.write(w, 0, data);
  await c.close(w);
  const r = readers[1]!;
  const f = await r.open(w.fid);
  assert.ok((await r.read(f, 0, 100)).equals(data.subarray(0, 100)));
  await c.hsm.request({ action: 'archive', fids: [w.fid] }, root);
  await waitFor('the archive', async () => ((await c.hsm.state(w.fid)).flags & HS.ARCHIVED) !== 0 && (await c.hsm.action(w.fid)).action === 'NOOP');
  const attr = await c.getattr(w.fid);
  await c.hsm.release({ fid: w.fid, dataVersion: await c.dataVersion(w.fid), size: attr.size, atime: attr.atime, mtime: attr.mtime, ctime: attr.ctime }, root);
  assert.ok((await r.read(f, 0, data.length)).equals(data), 'the objects it opened are gone: it restores and reads the new ones');
  assert.equal(agent.restoresOf(w.fid), 1);
  await r.close(f);
});
