/**
 * HSM actions outlive what runs them (reference §7.3): actions queued or running when the
 * MDS is killed are still there after its restart and complete (a restore reuses the
 * objects allocated before the crash), and an action whose agent goes away mid-way is
 * handed to another agent.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster } from './helpers/cluster.js';
import { pseudoRandomBuffer } from './helpers/data.js';
import { fidKey, type Fid } from '../src/common/fid.js';
import { HS } from '../src/hsm/flags.js';
import type { StriaClient } from '../src/client/client.js';
import { MemoryAgent } from './helpers/memory-agent.js';

const ROOT = { uid: 0, gid: 0 };
const SIZE = 200 * 1024 + 5;
const WAIT_MS = 60_000;

/** Polls `check` until it returns something, within WAIT_MS. */
async function until<T>(what: string, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (let i = 0; i < 10_000; i++) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  // the coordinator's last words say where the action is stuck
  const hsmLog = cluster.roles.get('mds')!.output.filter((l) => l.includes('hsm'));
  throw new Error(`timed out waiting for ${what}; the MDS's last HSM log lines:\n${hsmLog.slice(-15).join('\n')}`);
}


let cluster: TestCluster;
let client: StriaClient;
const copies = new Map<string, Buffer>();
const agents: MemoryAgent[] = [];

before(async () => {
  cluster = await TestCluster.start({ osts: 2 });
  client = await cluster.mount();
});

after(async () => {
  for (const a of agents) await a.client.unmount().catch(() => undefined);
  await client?.unmount();
  await cluster?.stop();
});

async function startAgent(hold: boolean): Promise<MemoryAgent> {
  const a = new MemoryAgent(await cluster.mount(), copies);
  a.hold = hold;
  agents.push(a);
  await a.start();
  return a;
}

async function newFile(name: string, data: Buffer): Promise<Fid> {
  const f = await client.create(client.root, name, { mode: 0o644, cred: ROOT, layout: { stripeCount: 2, stripeSize: 64 * 1024 } });
  await client.write(f, 0, data);
  await client.fsync(f);
  await client.close(f);
  return f.fid;
}

async function flags(fid: Fid): Promise<number> {
  return (await client.hsm.state(fid)).flags;
}

async function readAll(fid: Fid): Promise<Buffer> {
  const f = await client.open(fid, 0);
  try {
    return await client.read(f, 0, (await client.getattr(fid)).size);
  } finally {
    await client.close(f);
  }
}

test('actions running when the MDS is killed complete after its restart', async () => {
  const agent = await startAgent(false);
  const dataA = pseudoRandomBuffer(SIZE, 0xa);
  const dataB = pseudoRandomBuffer(SIZE, 0xb);
  const a = await newFile('a', dataA);
  const b = await newFile('b', dataB);
  await client.hsm.request({ action: 'archive', fids: [b] });
  await until('b archived', async () => ((await flags(b)) & HS.ARCHIVED ? true : undefined));
  const attr = await client.getattr(b);
  await client.hsm.release({ fid: b, dataVersion: await client.dataVersion(b), size: attr.size, atime: attr.atime, mtime: attr.mtime, ctime: attr.ctime });

  agent.hold = true;
  const archiveA = (await client.hsm.request({ action: 'archive', fids: [a] })).cookies[0]!;
  const restoreB = (await client.hsm.request({ action: 'restore', fids: [b] })).cookies[0]!;
  await until('both actions on the agent', async () => (agent.held.length === 2 ? true : undefined));
  const firstTarget = agent.held.find((i) => i.cookie === restoreB)!.restore!.layout;

  await cluster.kill9('mds');
  // the work the agent was given dies with the MDS's view of it
  agent.held.splice(0);
  agent.hold = false;
  await cluster.startRole('mds');
  await cluster.waitOstsReady();

  await until('a archived after the restart', async () => ((await flags(a)) & HS.ARCHIVED ? true : undefined));
  await until('b restored after the restart', async () => (!((await flags(b)) & HS.RELEASED) ? true : undefined));
  const again = agent.received.filter((i) => i.cookie === archiveA || i.cookie === restoreB);
  assert.equal(again.length, 4, 'each action was dispatched once before and once after the restart, same cookie');
  const secondTarget = again.filter((i) => i.cookie === restoreB)[1]!.restore!.layout;
  assert.deepEqual(secondTarget.objects, firstTarget.objects, 'the restore kept the objects allocated before the crash');
  assert.deepEqual((await client.getattr(b)).layout?.objects, firstTarget.objects);
  assert.ok((await readAll(b)).equals(dataB), 'b reads back what was archived');
  assert.equal((await flags(a)) & (HS.EXISTS | HS.ARCHIVED | HS.DIRTY), HS.EXISTS | HS.ARCHIVED);
  assert.ok(copies.get(fidKey(a))?.equals(dataA));
  await agent.client.unmount();
  agents.splice(agents.indexOf(agent), 1);
});

test('an action whose agent goes away is dispatched again to another agent', async () => {
  const data = pseudoRandomBuffer(SIZE, 0xc);
  const c = await newFile('c', data);
  const dying = await startAgent(true);
  const cookie = (await client.hsm.request({ action: 'archive', fids: [c] })).cookies[0]!;
  await until('the archive on the first agent', async () => (dying.held.some((i) => i.cookie === cookie) ? true : undefined));
  const survivor = await startAgent(false);
  assert.equal(survivor.received.length, 0, 'the action stays with the agent running it');
  assert.equal((await client.hsm.action(c)).status, 'STARTED');

  await dying.client.unmount();
  agents.splice(agents.indexOf(dying), 1);
  await until('the archive by the other agent', async () => ((await flags(c)) & HS.ARCHIVED ? true : undefined));
  assert.ok(survivor.received.some((i) => i.cookie === cookie && i.action === 'ARCHIVE'), 'same action, other agent');
  assert.ok(copies.get(fidKey(c))?.equals(data));
});
