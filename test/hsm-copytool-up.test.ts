/**
 * `stria up --archive DIR` runs a copytool for archive id 1 with the cluster, archiving into
 * a POSIX directory (created when missing): a file archived through it lands in
 * DIR/<key of its FID> with its checksum beside it, and comes back after a release. SIGTERM
 * stops everything cleanly.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePortRange, STRIA_BIN } from './helpers/cluster.js';
import { LineChild } from './helpers/child-process.js';
import { pseudoRandomBuffer } from './helpers/data.js';
import { StriaClient } from '../src/client/client.js';
import { parseNid } from '../src/lnet/nid.js';
import type { Fid } from '../src/common/fid.js';
import { HS } from '../src/hsm/flags.js';
import { archiveKey } from '../src/hsm/archive-key.js';

const MIB = 1 << 20;
const WAIT_MS = 60_000;

let dir: string;
let up: LineChild;
let client: StriaClient;

async function until<T>(what: string, check: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (let i = 0; i < 100_000; i++) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}: ${up?.lines.slice(-10).join('\n')} ${up?.errors}`);
}

function logged(msg: (m: string) => boolean): Record<string, unknown> | undefined {
  for (const l of up.lines) {
    try {
      const rec = JSON.parse(l) as Record<string, unknown>;
      if (typeof rec.msg === 'string' && msg(rec.msg)) return rec;
    } catch {
      // not a log line
    }
  }
  return undefined;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stria-up-archive-'));
  process.env.STRIA_RUN_DIR = join(dir, 'run');
  const port = await freePortRange(3);
  up = new LineChild([process.execPath, STRIA_BIN, 'up', '--dir', join(dir, 'data'), '--osts', '2', '--mgs-port', String(port), '--archive', join(dir, 'archive')], 'stria up');
  await until('the filesystem to be up', () => logged((m) => m.startsWith('filesystem ready')));
  client = await StriaClient.mount({ mgsNids: [parseNid(`127.0.0.1:${port}@tcp`)], fsname: 'stria', timeoutMs: 20_000 });
});

after(async () => {
  await client?.unmount();
  up?.kill();
  await up?.exited;
  await rm(dir, { recursive: true, force: true });
});

async function flags(fid: Fid): Promise<number> {
  return (await client.hsm.state(fid)).flags;
}

test('the copytool started with the cluster and archives into the directory', async () => {
  const started = logged((m) => m === 'copytool started');
  assert.ok(started, 'a copytool started');
  assert.deepEqual(started.archiveIds, [1]);
  assert.equal(started.archive, `posix:${join(dir, 'archive')}`);
  assert.match(up.errors, /copytool +archive 1 -> posix:/, 'the banner names the archive');

  const data = pseudoRandomBuffer(3 * MIB + 99, 0xb1);
  const f = await client.create(client.root, 'cold', { mode: 0o644, cred: { uid: 0, gid: 0 }, layout: { stripeCount: 2, stripeSize: MIB } });
  await client.write(f, 0, data);
  await client.close(f);
  const fid = f.fid;
  await client.hsm.request({ action: 'archive', fids: [fid] });
  await until('archived', async () => ((await flags(fid)) === (HS.EXISTS | HS.ARCHIVED) ? true : undefined));
  const sha = `sha256:${createHash('sha256').update(data).digest('hex')}`;
  const copy = join(dir, 'archive', archiveKey(fid));
  assert.ok((await readFile(copy)).equals(data), 'the copy is the file data');
  assert.equal((await readFile(`${copy}.sha256`, 'utf8')).trim(), sha);

  const attr = await client.getattr(fid);
  await client.hsm.release({ fid, dataVersion: await client.dataVersion(fid), size: attr.size, atime: attr.atime, mtime: attr.mtime, ctime: attr.ctime });
  assert.equal(await flags(fid), HS.RELEASED | HS.EXISTS | HS.ARCHIVED);
  await client.hsm.request({ action: 'restore', fids: [fid] });
  await until('restored', async () => ((await flags(fid)) === (HS.EXISTS | HS.ARCHIVED) ? true : undefined));
  const g = await client.open(fid, 0);
  const back = await client.read(g, 0, data.length);
  await client.close(g);
  assert.ok(back.equals(data));
});

test('SIGTERM stops the cluster and its copytool cleanly', async () => {
  await client.unmount();
  client = undefined as unknown as StriaClient;
  process.kill(up.pid, 'SIGTERM');
  assert.equal(await up.exited, 0, up.errors);
  assert.ok(logged((m) => m === 'up stopped'));
});
