/**
 * `stria bench` on a directory of a running mount: the chosen workloads run on the mount
 * and on the local-disk baseline, the table and the JSON carry both with their ratios,
 * the Stria cold runs cancel the mount's locks, and the work directories are gone
 * afterwards. A directory that is not on a Stria mount, and an unknown workload group,
 * are refused before anything runs.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestCluster, STRIA_BIN } from './helpers/cluster.js';
import { TestMount } from './helpers/mount.js';

let cluster: TestCluster;
let mount: TestMount;
let scratch: string;

function stria(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [STRIA_BIN, ...args], { env: { ...process.env, STRIA_RUN_DIR: cluster.runDir }, timeout: 300_000, maxBuffer: 16 << 20 }, (e, stdout, stderr) =>
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, out: stdout, err: stderr }),
    );
  });
}

before(async () => {
  cluster = await TestCluster.start({ osts: 2 });
  mount = await TestMount.start(cluster);
  scratch = mkdtempSync(join(tmpdir(), 'stria-bench-test-'));
});

after(async () => {
  await mount?.stop();
  await cluster?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

interface BenchDoc {
  ok: boolean;
  mode: string;
  groups: string[];
  stria_mount: string;
  targets: Array<{ label: string; kind: string }>;
  results: Array<{ workload: string; unit: string; values: Record<string, number | null>; ratios: Record<string, number | null>; details: Record<string, Record<string, unknown>> }>;
}

test('stria bench runs the chosen workloads on the mount and the local disk, side by side', async () => {
  const dir = mount.path('bench');
  mkdirSync(dir);
  const local = join(scratch, 'local');
  mkdirSync(local);
  const jsonFile = join(scratch, 'out.json');
  const r = await stria('bench', '--quick', '--only', 'integrity,small', '--local', local, '--json', jsonFile, dir);
  assert.equal(r.code, 0, `stria bench failed:\n${r.err.slice(-3000)}`);

  const lines = r.out.trimEnd().split('\n');
  assert.match(lines[0]!, /^stria bench \(quick\), ratios are stria \/ baseline/);
  assert.deepEqual(lines[1]!.trim().split(/\s+/), ['workload', 'unit', 'stria', 'local', 'stria/local']);
  const doc = JSON.parse(lines[lines.length - 1]!) as BenchDoc;
  assert.deepEqual(JSON.parse(readFileSync(jsonFile, 'utf8')), doc, 'the --json file holds the document printed last');
  assert.equal(doc.ok, true);
  assert.deepEqual(doc.groups, ['integrity', 'small']);
  assert.equal(doc.stria_mount, mount.mountpoint);
  assert.deepEqual(doc.targets.map((t) => `${t.label}:${t.kind}`), ['stria:stria', 'local:baseline']);
  assert.deepEqual(doc.results.map((x) => x.workload), ['integrity-crc32c', 'small-files-create', 'small-files-read-cold', 'small-files-read-warm']);
  const row = (w: string) => doc.results.find((x) => x.workload === w)!;
  assert.deepEqual(row('integrity-crc32c').values, { stria: 1, local: 1 });
  for (const w of ['small-files-create', 'small-files-read-cold', 'small-files-read-warm']) {
    const v = row(w).values;
    assert.ok(v.stria! > 0 && v.local! > 0, `${w}: both targets measured`);
    assert.equal(row(w).ratios['stria/local'], Math.round((v.stria! / v.local!) * 100) / 100);
    assert.match(lines.find((l) => l.startsWith(`${w} `))!, /files\/s/);
  }
  assert.equal(row('small-files-read-cold').details.stria!.cold, 'stria locks + drop_caches');
  assert.equal(row('small-files-read-cold').details.local!.cold, 'drop_caches');
  assert.equal(row('integrity-crc32c').details.stria!.verified_MiB, 32);

  assert.deepEqual(readdirSync(dir), [], 'the work directory on the mount is removed');
  assert.deepEqual(readdirSync(local), [], 'the local work directory is removed');
  assert.match(r.err, /stria: small-files-read-warm = \d/, 'each step is reported as it ends');
});

test('a directory off any Stria mount, or an unknown workload group, is refused before anything runs', async () => {
  const plain = mkdtempSync(join(scratch, 'plain-'));
  const off = await stria('bench', '--quick', plain);
  assert.equal(off.code, 2);
  assert.match(off.err, /^stria bench: .*: not on a Stria mount\n$/);
  assert.deepEqual(readdirSync(plain), []);

  const bad = await stria('bench', '--only', 'md,fast', mount.path('.'));
  assert.notEqual(bad.code, 0);
  assert.match(bad.err, /unknown workload group 'fast'/);
  assert.deepEqual(readdirSync(mount.path('.')).filter((n) => n.startsWith('.stria-bench')), []);
});
