/**
 * The client's cache levels against a plain Buffer: random writes (held in the write-back
 * cache or written through), reads of any range, stats, fsyncs, truncates and lock losses
 * on one client, with a second client reading now and then, must always give the bytes
 * and the size the model has. Seeded, so a failure names its seed and step.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster } from './helpers/cluster.js';
import type { StriaClient, OpenFile } from '../src/client/client.js';
import { mulberry32 } from './helpers/prng.js';

const root = { uid: 0, gid: 0 };
const MAX = 16 * 1024 * 1024;
const STEPS = 300;
let cluster: TestCluster;
let a: StriaClient;
let b: StriaClient;

before(async () => {
  cluster = await TestCluster.start({ osts: 3 });
  a = await cluster.mount();
  b = await cluster.mount();
}, { timeout: 60_000 });

after(async () => {
  await b?.unmount();
  await a?.unmount();
  await cluster?.stop();
}, { timeout: 60_000 });

test('reads on either client always match a model of the file', { timeout: 240_000 }, async () => {
  const seed = Number(process.env.STRIA_CACHE_SEED ?? Date.now() % 1_000_000_007);
  const rnd = mulberry32(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const f: OpenFile = await a.create(a.root, `model-${seed}`, { mode: 0o644, cred: root, layout: { stripeCount: 3, stripeSize: 65536 } });
  let model = Buffer.alloc(0);
  const fb = await b.open(f.fid, 0);
  for (let step = 0; step < STEPS; step++) {
    const at = `seed ${seed}, step ${step}`;
    const op = int(100);
    if (op < 45) {
      const off = int(MAX - 1);
      // mostly small writes; some larger than an RPC (4 MiB objects' worth over 3 stripes)
      const len = 1 + int(Math.min(int(8) === 0 ? 6_000_000 : 300_000, MAX - off));
      const data = Buffer.alloc(len, 1 + int(250));
      data.writeUInt32LE(step, 0);
      await a.write(f, off, data, { sync: int(10) === 0 });
      if (off + len > model.length) model = Buffer.concat([model, Buffer.alloc(off + len - model.length)]);
      data.copy(model, off);
    } else if (op < 75) {
      const off = int(MAX);
      const len = 1 + int(400_000);
      const got = await a.read(f, off, len);
      const want = model.subarray(Math.min(off, model.length), Math.min(off + len, model.length));
      assert.ok(got.equals(want), `${at}: A read [${off}, +${len}) gave ${got.length} bytes, the model has ${want.length} (size ${model.length})`);
    } else if (op < 82) {
      const attr = await a.getattr(f.fid);
      assert.equal(attr.size, model.length, `${at}: A's stat`);
    } else if (op < 87) {
      await a.fsync(f);
    } else if (op < 91) {
      const size = int(MAX);
      await a.setattr(f.fid, { size }, root);
      model = size <= model.length ? Buffer.from(model.subarray(0, size)) : Buffer.concat([model, Buffer.alloc(size - model.length)]);
    } else if (op < 96) {
      // B reads it all: A's cached writes must reach the OSTs first, and A's locks go
      const got = await b.read(fb, 0, MAX + 1);
      assert.ok(got.equals(model), `${at}: B read ${got.length} bytes, the model has ${model.length}`);
    } else {
      assert.equal((await b.getattr(f.fid)).size, model.length, `${at}: B's stat`);
    }
  }
  await b.close(fb);
  await a.close(f);
});
