/**
 * npm run bench:metadata: create, stat and unlink of N empty files in one directory
 * through the client core, against an MDS on the embedded LMDB store and an MDS on a
 * real redis-server (appendfsync always), measured side by side in the same run, with
 * the same operations on the local disk as the baseline. Prints a table and a JSON line.
 */
import { mkdtemp, open, rm, stat, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestCluster } from '../test/helpers/cluster.js';
import { RedisServer, findRedisServer } from '../test/helpers/redis-server.js';

const N = Number(process.env.STRIA_BENCH_FILES ?? 10_000);
/** creates in flight at once, as several application threads would have */
const PARALLEL = Number(process.env.STRIA_BENCH_PARALLEL ?? 8);
const root = { uid: 0, gid: 0 };

interface Rates {
  create: number;
  stat: number;
  unlink: number;
}

async function inParallel(n: number, fn: (i: number) => Promise<void>): Promise<number> {
  const t = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: PARALLEL }, async () => {
      while (next < n) await fn(next++);
    }),
  );
  return n / ((performance.now() - t) / 1000);
}

async function localDisk(dir: string): Promise<Rates> {
  const create = await inParallel(N, async (i) => (await open(join(dir, `f${i}`), 'wx')).close());
  const st = await inParallel(N, async (i) => void (await stat(join(dir, `f${i}`))));
  const ul = await inParallel(N, (i) => unlink(join(dir, `f${i}`)));
  return { create, stat: st, unlink: ul };
}

async function stria(cluster: TestCluster): Promise<Rates> {
  const c = await cluster.mount();
  try {
    const dir = await c.mkdir(c.root, 'bench', { mode: 0o755, cred: root });
    const create = await inParallel(N, async (i) => c.close(await c.create(dir.fid, `f${i}`, { mode: 0o644, cred: root })));
    const st = await inParallel(N, async (i) => void (await c.lookup(dir.fid, `f${i}`)));
    const ul = await inParallel(N, (i) => c.unlink(dir.fid, `f${i}`));
    return { create, stat: st, unlink: ul };
  } finally {
    await c.unmount();
  }
}

const rows: Array<[string, Rates]> = [];
const scratch = await mkdtemp(join(tmpdir(), 'stria-bench-md-'));
try {
  rows.push(['local disk (baseline)', await localDisk(scratch)]);
  const embedded = await TestCluster.start({ osts: 1 });
  try {
    rows.push(['stria, embedded LMDB store', await stria(embedded)]);
  } finally {
    await embedded.stop();
  }
  if (findRedisServer()) {
    const redis = await RedisServer.start({ appendfsync: 'always' });
    const cluster = await TestCluster.start({ osts: 1, mdsStore: redis.url });
    try {
      rows.push(['stria, Redis (appendfsync always)', await stria(cluster)]);
    } finally {
      await cluster.stop();
      await redis.stop();
    }
  } else {
    console.log('redis-server not installed: the Redis row is skipped');
  }
} finally {
  await rm(scratch, { recursive: true, force: true });
}

const fmt = (n: number) => n.toFixed(0).padStart(9);
console.log(`\n${N} empty files in one directory, ${PARALLEL} operations in flight (ops/s)\n`);
console.log(`${'target'.padEnd(36)}${'create'.padStart(9)}${'stat'.padStart(9)}${'unlink'.padStart(9)}`);
for (const [name, r] of rows) console.log(`${name.padEnd(36)}${fmt(r.create)}${fmt(r.stat)}${fmt(r.unlink)}`);
console.log(JSON.stringify({ bench: 'metadata-stores', files: N, parallel: PARALLEL, results: Object.fromEntries(rows) }));
