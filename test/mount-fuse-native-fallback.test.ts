/** The fuse-native fallback mounts Stria too: data and metadata through ordinary tools. */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster } from './helpers/cluster.js';
import { TestMount, sh } from './helpers/mount.js';
import { fuseNativeAvailable } from '../src/fuse/fuse-native-loader.js';

const available = fuseNativeAvailable();
let cluster: TestCluster;
let m: TestMount;

before(async () => {
  if (!available.ok) return;
  cluster = await TestCluster.start({ osts: 2 });
  m = await TestMount.start(cluster, 'allow_other,default_permissions,fuse=fuse-native');
});

after(async () => {
  await m?.stop();
  await cluster?.stop();
});

test('a file written through the fallback mount reads back and stats right', { skip: available.ok ? false : available.reason }, async () => {
  const r = await sh(`dd if=/dev/urandom of=${m.path('f')} bs=1M count=8 status=none && md5sum < ${m.path('f')} && mkdir ${m.path('d')} && mv ${m.path('f')} ${m.path('d', 'g')} && stat -c %s ${m.path('d', 'g')} && md5sum < ${m.path('d', 'g')}`);
  assert.equal(r.code, 0, r.stderr);
  const [sum1, size, sum2] = r.stdout.trim().split('\n');
  assert.equal(size, String(8 << 20));
  assert.equal(sum1, sum2);
  assert.match((await sh(`cat /proc/mounts`)).stdout, new RegExp(`${m.mountpoint} fuse\\.stria `));
});
