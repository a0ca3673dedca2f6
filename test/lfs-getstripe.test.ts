/** lfs getstripe against a live cluster: every option, directories, links, errors. */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster } from './helpers/cluster.js';
import { runLfs } from '../src/cli/lfs.js';
import { fidToString, type Fid } from '../src/common/fid.js';
import type { Inode } from '../src/common/inode.js';
import type { StriaClient } from '../src/client/client.js';

let cluster: TestCluster;
let c: StriaClient;
const cred = { uid: 0, gid: 0 };
const ino: Record<string, Inode> = {};

async function lfs(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runLfs(args, { stdout: (s) => (out += s), stderr: (s) => (err += s) });
  return { code, out, err };
}

async function ok(...args: string[]): Promise<string> {
  const r = await lfs(...args);
  assert.equal(r.code, 0, `lfs ${args.join(' ')}: ${r.err}`);
  return r.out;
}

/** The object table as Lustre prints it, built from the layout the MDS holds. */
function objectRows(i: Inode): string {
  return i.layout!.objects
    .map((o) => {
      const id = (o.seq - 0x100000000) / 0x10000 === o.ostIdx ? o.oid : NaN;
      return `\t${String(o.ostIdx).padStart(6)}\t${String(id).padStart(14)}\t${`0x${id.toString(16)}`.padStart(13)}\t${'0'.padStart(14)}\n`;
    })
    .join('');
}

function fileBlock(path: string, i: Inode): string {
  const l = i.layout!;
  return (
    `${path}\nlmm_stripe_count:  ${l.objects.length}\nlmm_stripe_size:   ${l.stripeSize}\nlmm_pattern:       raid0\n` +
    `lmm_layout_gen:    0\nlmm_stripe_offset: ${l.objects[0]!.ostIdx}\n\tobdidx\t\t objid\t\t objid\t\t group\n${objectRows(i)}\n`
  );
}

const dirLine = (count: number, size: number) => `stripe_count:  ${count} stripe_size:   ${size} pattern:       raid0 stripe_offset: -1\n`;

async function names(dir: Fid): Promise<string[]> {
  const out: string[] = [];
  for await (const e of c.listDir(dir)) out.push(e.name);
  return out;
}

before(async () => {
  cluster = await TestCluster.start({ osts: 3 });
  c = await cluster.mount();
  const d = await c.mkdir(c.root, 'd', { mode: 0o755, cred });
  await ok('setstripe', '-c', '2', '-S', '1M', cluster.spec('d'));
  await ok('setstripe', cluster.spec('d', 'f1'));
  await ok('setstripe', '-c', '3', cluster.spec('d', 'f3'));
  const sub = await c.mkdir(d.fid, 'sub', { mode: 0o755, cred });
  await ok('setstripe', cluster.spec('d', 'sub', 'g'));
  await c.symlink(d.fid, 'link', 'f1', cred);
  await c.symlink(d.fid, 'dirlink', 'sub', cred);
  await c.symlink(d.fid, 'dangling', 'nowhere', cred);
  await c.symlink(d.fid, 'loop', '../d/loop', cred);
  await c.mknod(d.fid, 'fifo', { type: 'fifo', mode: 0o644, cred });
  for (const [k, parent, name] of [['d', c.root, 'd'], ['f1', d.fid, 'f1'], ['f3', d.fid, 'f3'], ['sub', d.fid, 'sub'], ['g', sub.fid, 'g']] as const) {
    ino[k] = await c.mdc.lookup(parent, name);
  }
});

after(async () => {
  await c?.unmount();
  await cluster?.stop();
});

test('a file: its layout with the object table, as the fixture shows it', async () => {
  assert.equal(await ok('getstripe', cluster.spec('d', 'f1')), fileBlock('/d/f1', ino.f1!));
  assert.equal(ino.f1!.layout!.objects.length, 2, 'the directory default applied');
  assert.equal(await ok('getstripe', cluster.spec('d', 'f1'), cluster.spec('d', 'f3')), fileBlock('/d/f1', ino.f1!) + fileBlock('/d/f3', ino.f3!));
});

test('single-field options print the bare value', async () => {
  const f = cluster.spec('d', 'f3');
  const l = ino.f3!.layout!;
  assert.equal(await ok('getstripe', '-c', f), '3\n\n');
  assert.equal(await ok('getstripe', '--stripe-size', f), `${l.stripeSize}\n\n`);
  assert.equal(await ok('getstripe', '-i', f), `${l.objects[0]!.ostIdx}\n\n`);
  assert.equal(await ok('getstripe', '-g', f), '0\n\n');
  assert.equal(await ok('getstripe', '-L', f), 'raid0\n\n');
  assert.equal(await ok('getstripe', '-F', f), `${fidToString(ino.f3!.fid)}\n\n`);
  assert.equal(await ok('getstripe', '-p', f), '\n');
  assert.equal(await ok('getstripe', '-m', f), '0\n');
  assert.equal(await ok('getstripe', '-cS', f), `lmm_stripe_count:  3\nlmm_stripe_size:   ${l.stripeSize}\n\n`);
  assert.equal(await ok('getstripe', '-c', cluster.spec('d')), '2\n\n', 'a directory: its default only');
});

test('-v adds lmm_magic, lmm_seq, lmm_object_id, lmm_fid; -q only objects; -y YAML', async () => {
  const f = cluster.spec('d', 'f1');
  const fid = ino.f1!.fid;
  const head = `/d/f1\nlmm_magic:         0x0BD10BD0\nlmm_seq:           0x${fid.seq.toString(16)}\nlmm_object_id:     0x${fid.oid.toString(16)}\nlmm_fid:           ${fidToString(fid)}\n`;
  assert.equal(await ok('getstripe', '-v', f), head + fileBlock('/d/f1', ino.f1!).slice('/d/f1\n'.length));
  assert.equal(await ok('getstripe', '-q', f), `/d/f1\n\tobdidx\t\t objid\t\t objid\t\t group\n${objectRows(ino.f1!)}\n`);
  const l = ino.f1!.layout!;
  const yaml =
    `lmm_stripe_count:  2\nlmm_stripe_size:   1048576\nlmm_pattern:       raid0\nlmm_layout_gen:    0\nlmm_stripe_offset: ${l.objects[0]!.ostIdx}\nlmm_objects:\n` +
    l.objects.map((o) => `      - l_ost_idx: ${o.ostIdx}\n        l_fid:     0x${o.seq.toString(16)}:0x${o.oid.toString(16)}:0x0\n`).join('');
  assert.equal(await ok('getstripe', '-y', f), yaml);
});

test('a directory: its default, then each entry; subdirectories show their default', async () => {
  const expected: Record<string, string> = {
    f1: fileBlock('/d/f1', ino.f1!),
    f3: fileBlock('/d/f3', ino.f3!),
    sub: `/d/sub\n${dirLine(2, 1048576)}\n`,
    link: fileBlock('/d/link', ino.f1!),
    dirlink: `/d/dirlink\n${dirLine(2, 1048576)}\n`,
    dangling: '',
    loop: '',
    fifo: '/d/fifo has no stripe info\n',
  };
  const order = await names(ino.d!.fid);
  assert.deepEqual([...order].sort(), Object.keys(expected).sort());
  const listing = `/d\n${dirLine(2, 1048576)}\n` + order.map((n) => expected[n]).join('');
  assert.equal(await ok('getstripe', cluster.spec('d')), listing);
  assert.equal(await ok('getstripe', '-d', cluster.spec('d')), `${dirLine(2, 1048576)}\n`, '-d: the directory alone, no path');
  assert.equal(await ok('getstripe', '-D', cluster.spec('d')), `${dirLine(2, 1048576)}\n`);
  const recursive = `/d\n${dirLine(2, 1048576)}\n` + order.map((n) => (n === 'sub' ? expected.sub + fileBlock('/d/sub/g', ino.g!) : expected[n])).join('');
  assert.equal(await ok('getstripe', '-r', cluster.spec('d')), recursive, '-r descends into subdirectories');
  const fs = c.fsDefault;
  assert.equal(await ok('getstripe', '-d', cluster.spec()), `${dirLine(fs.stripeCount, fs.stripeSize)}\n`, 'the root without a default shows the filesystem default');
  const verbose = await ok('getstripe', '-d', '-v', cluster.spec());
  assert.ok(
    verbose.startsWith(`(Default) /\nlmm_fid:           ${fidToString(c.root)}\n${dirLine(fs.stripeCount, fs.stripeSize)}\n/d\nlmm_fid:           ${fidToString(ino.d!.fid)}\n`),
    `-v marks an inherited default and, as in Lustre, sets the depth back to 1:\n${verbose}`,
  );
  assert.equal(await ok('getstripe', '-d', '-R', cluster.spec()), 'stripe_count:  0 stripe_size:   0 pattern:       raid0 stripe_offset: -1\n\n');
});

test('symbolic links are followed unless --no-follow', async () => {
  assert.equal(await ok('getstripe', cluster.spec('d', 'link')), fileBlock('/d/link', ino.f1!));
  assert.equal(await ok('getstripe', '--no-follow', cluster.spec('d', 'link')), '/d/link has no stripe info\n');
  assert.equal(await ok('getstripe', cluster.spec('d', 'fifo')), '/d/fifo has no stripe info\n');
});

test('errors: a missing file is one line and status 1; a bad option adds the usage and status 4', async () => {
  const missing = await lfs('getstripe', cluster.spec('d', 'nope'));
  assert.equal(missing.code, 1);
  assert.equal(missing.err, `lfs: cannot access '${cluster.spec('d', 'nope')}': No such file or directory\n`);
  const dangling = await lfs('getstripe', cluster.spec('d', 'dangling'));
  assert.equal(dangling.code, 1);
  assert.match(dangling.err, /No such file or directory/);
  const loop = await lfs('getstripe', cluster.spec('d', 'loop'));
  assert.equal(loop.err, `lfs: cannot access '${cluster.spec('d', 'loop')}': Too many levels of symbolic links\n`);
  const bad = await lfs('getstripe', '--bogus', cluster.spec('d'));
  assert.equal(bad.code, 4);
  assert.match(bad.err, /^lfs: unrecognized option '--bogus'\nusage: getstripe /);
  assert.equal(bad.out, '');
  const none = await lfs('getstripe');
  assert.equal(none.code, 4);
});
