/** File data through a real mount with ordinary tools: cp/cmp, dd, fio --verify. */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster, STRIA_BIN } from './helpers/cluster.js';
import { TestMount, sh } from './helpers/mount.js';
import { join } from 'node:path';

let cluster: TestCluster;
let m: TestMount;
const lfs = join(STRIA_BIN, '..', 'lfs.js');

before(async () => {
  cluster = await TestCluster.start({ osts: 4 });
  m = await TestMount.start(cluster);
});

after(async () => {
  await m?.stop();
  await cluster?.stop();
});

async function ok(cmd: string, opts: { uid?: number } = {}): Promise<string> {
  const r = await sh(cmd, { ...opts, timeoutMs: 300_000 });
  assert.equal(r.code, 0, `${cmd}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

test('cp and cmp of a 200 MiB file striped over 4 OSTs', async () => {
  await ok(`mkdir ${m.path('wide')}`);
  await ok(`node ${lfs} setstripe -c 4 -S 1M ${m.spec}/wide`);
  const src = join(m.mountpoint, '..', 'src.bin');
  await ok(`head -c 209715200 /dev/urandom > ${src}`);
  const t0 = performance.now();
  await ok(`cp ${src} ${m.path('wide', 'big.bin')}`);
  const cpMs = performance.now() - t0;
  const t1 = performance.now();
  await ok(`cmp ${src} ${m.path('wide', 'big.bin')}`);
  const cmpMs = performance.now() - t1;
  console.log(`# cp 200 MiB into the mount: ${(200 / (cpMs / 1000)).toFixed(1)} MiB/s; cmp (read back): ${(200 / (cmpMs / 1000)).toFixed(1)} MiB/s`);
  const layout = await ok(`node ${lfs} getstripe ${m.spec}/wide/big.bin`);
  assert.match(layout, /lmm_stripe_count:  4\n/);
  assert.equal((await ok(`stat -c %s ${m.path('wide', 'big.bin')}`)).trim(), '209715200');
  await ok(`rm -f ${src}`);
});

test('dd with 1 MiB blocks round-trips, including an offset write into the middle', async () => {
  await ok(`dd if=/dev/urandom of=${m.path('dd.bin')} bs=1M count=16 status=none`);
  await ok(`dd if=/dev/zero of=${m.path('dd.bin')} bs=4k count=3 seek=1001 conv=notrunc status=none`);
  const sum1 = await ok(`dd if=${m.path('dd.bin')} bs=1M status=none | md5sum`);
  const sum2 = await ok(`md5sum < ${m.path('dd.bin')}`);
  assert.equal(sum1, sum2);
  assert.equal((await ok(`dd if=${m.path('dd.bin')} bs=4k skip=1001 count=3 status=none | tr -d '\\0' | wc -c`)).trim(), '0');
  assert.equal((await ok(`stat -c %s ${m.path('dd.bin')}`)).trim(), String(16 << 20));
});

for (const [name, rw, bs] of [
  ['sequential 1 MiB', 'write', '1M'],
  ['random 4 KiB', 'randwrite', '4k'],
  ['random 1 MiB', 'randwrite', '1M'],
] as const) {
  test(`fio --verify=crc32c passes: ${name}`, async () => {
    const out = await ok(
      `fio --name=verify-${rw}-${bs} --directory=${m.mountpoint} --rw=${rw} --bs=${bs} --size=32M --ioengine=psync --verify=crc32c --do_verify=1 --verify_fatal=1 --fallocate=none --output-format=terse --terse-version=3`,
    );
    const fields = out.trim().split('\n').pop()!.split(';');
    assert.equal(fields[4], '0', `fio reported error ${fields[4]}`);
  });
}

test('lctl get_param llite.*.stats counts the I/O done through the mount', async () => {
  const lctl = join(STRIA_BIN, '..', 'lctl.js');
  await ok(`dd if=/dev/zero of=${m.path('counted.bin')} bs=1M count=3 status=none`);
  const r = await sh(`STRIA_RUN_DIR=${cluster.runDir} node ${lctl} get_param llite.*.stats`);
  assert.equal(r.code, 0, r.stderr);
  const wb = /^write_bytes\s+(\d+) samples \[bytes\] \d+ \d+ (\d+)/m.exec(r.stdout);
  assert.ok(wb, r.stdout);
  assert.ok(Number(wb[2]) >= 3 * 1024 * 1024, `write_bytes sum ${wb[2]}`);
  const osc = await sh(`STRIA_RUN_DIR=${cluster.runDir} node ${lctl} get_param -n osc.*.max_rpcs_in_flight`);
  assert.deepEqual(osc.stdout.trim().split('\n'), ['8', '8', '8', '8'], 'one OSC per OST, default 8');
});
