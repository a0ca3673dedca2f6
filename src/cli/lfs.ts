/**
 * `lfs`: Lustre-compatible user commands. Until the FUSE mount lands, a file or
 * directory is named by a filesystem spec: MGSNID:/FSNAME[/PATH].
 */
import { Command } from 'commander';
import { runTool, validated } from './args.js';
import { silentLogger } from '../common/log.js';
import { StriaError, err } from '../common/errno.js';
import { fidToString } from '../common/fid.js';
import { mdtName, ostName } from '../common/targets.js';
import { parseSize } from '../common/units.js';
import { validatePoolName, validateStripeCount, validateStripeSize, type LayoutTemplate } from '../common/layout.js';
import { StriaClient } from '../client/client.js';
import { parseFsSpec, resolvePath, type FsSpec } from './fs-spec.js';
import { formatDf, formatDirDefault, formatFileStripe, type DfRow } from './lfs-format.js';

const print = (s: string) => process.stdout.write(s);

async function withClient<T>(spec: FsSpec, fn: (c: StriaClient) => Promise<T>): Promise<T> {
  const c = await StriaClient.mount({ mgsNids: spec.mgsNids, fsname: spec.fsname, timeoutMs: 10_000, recoveryWaitMs: 10_000 }, silentLogger());
  try {
    return await fn(c);
  } finally {
    await c.unmount();
  }
}

const v = validated;

const countArg = v((s) => {
  const n = Number(s);
  validateStripeCount(n);
  return n;
});
const sizeArg = v((s) => {
  // lfs reads values below 4096 as KiB
  const n = /^\d+$/.test(s) && Number(s) < 4096 ? Number(s) * 1024 : parseSize(s);
  validateStripeSize(n);
  return n;
});
const intArg = v((s) => {
  const n = Number(s);
  if (!Number.isInteger(n) || n < -1 || n > 0xffff) throw err('EINVAL', `invalid OST index '${s}'`);
  return n;
});

export function buildLfs(): Command {
  const program = new Command('lfs')
    .description('Stria user commands (Lustre lfs subset); FS = MGSNID:/FSNAME[/PATH]')
    .configureOutput({ outputError: (str, write) => write(`lfs: ${str.replace(/^error: /, '')}`) });

  program
    .command('df')
    .description('space (or inodes) of every MDT and OST')
    .option('-i, --inodes', 'inodes instead of blocks')
    .option('-h, --human-readable', 'sizes in K/M/G/T')
    .argument('<fs>')
    .action(async (fsText: string, o: { inodes?: boolean; humanReadable?: boolean }) => {
      const spec = parseFsSpec(fsText);
      await withClient(spec, async (c) => {
        const mount = `${spec.text.split(':/')[0]}:/${spec.fsname}`;
        const rows: DfRow[] = [];
        const mdt = await c.mdc.statfs();
        const kib = (blocks: number, bsize: number) => Math.floor((blocks * bsize) / 1024);
        rows.push(
          o.inodes
            ? { uuid: `${mdtName(spec.fsname, 0)}_UUID`, total: mdt.files, used: mdt.files - mdt.ffree, avail: mdt.ffree, mount: `${mount}[MDT:0]` }
            : { uuid: `${mdtName(spec.fsname, 0)}_UUID`, total: kib(mdt.blocks, mdt.bsize), used: kib(mdt.blocks - mdt.bfree, mdt.bsize), avail: kib(mdt.bavail, mdt.bsize), mount: `${mount}[MDT:0]` },
        );
        const sum = { total: 0, used: 0, avail: 0 };
        for (const osc of c.ostClients()) {
          const uuid = `${ostName(spec.fsname, osc.index)}_UUID`;
          const s = await osc.statfs().catch(() => undefined);
          if (!s) {
            rows.push({ uuid, total: 0, used: 0, avail: 0, mount: '', inactive: true });
            continue;
          }
          const r = o.inodes
            ? { uuid, total: s.files, used: s.files - s.ffree, avail: s.ffree, mount: `${mount}[OST:${osc.index}]` }
            : { uuid, total: kib(s.blocks, s.bsize), used: kib(s.blocks - s.bfree, s.bsize), avail: kib(s.bavail, s.bsize), mount: `${mount}[OST:${osc.index}]` };
          rows.push(r);
          sum.total += r.total;
          sum.used += r.used;
          sum.avail += r.avail;
        }
        // Inodes come from the MDTs, space from the OSTs (reference §2.7).
        const summary = o.inodes ? { ...rows[0]!, mount } : { uuid: '', ...sum, mount };
        print(formatDf(rows, summary, { inodes: o.inodes, human: o.humanReadable }));
      });
    });

  program
    .command('getstripe')
    .description('show the layout of a file, or the default layout of a directory')
    .option('-d, --directory', 'the directory itself, not its entries')
    .argument('<fs-path>')
    .action(async (fsText: string) => {
      const spec = parseFsSpec(fsText);
      await withClient(spec, async (c) => {
        const { attr } = await resolvePath(c, spec.path);
        const shown = '/' + spec.path.join('/');
        if (attr.type === 'reg') {
          if (!attr.layout) throw err('ENODATA', `${shown} has no layout`, 'NO_LAYOUT');
          print(formatFileStripe(shown, attr.layout));
        } else if (attr.type === 'dir') {
          const fsDefault = c.fsDefault;
          const tpl = attr.dirDefault ?? {};
          print(`${shown}\n${formatDirDefault({ stripeCount: tpl.stripeCount ?? fsDefault.stripeCount, stripeSize: tpl.stripeSize ?? fsDefault.stripeSize, stripeOffset: tpl.stripeOffset, pool: tpl.pool })}\n`);
        } else {
          throw err('ENODATA', `${shown} has no layout`, 'NO_LAYOUT');
        }
      });
    });

  program
    .command('setstripe')
    .description('create a file with a layout, or set (-d: remove) a directory default layout')
    .option('-c, --stripe-count <n>', 'stripe count (-1: all OSTs, 0: default)', countArg)
    .option('-S, --stripe-size <size>', 'stripe size (multiple of 64 KiB)', sizeArg)
    .option('-i, --stripe-index <idx>', 'first OST (-1: any)', intArg)
    .option('-p, --pool <pool>', 'OST pool', v((s) => {
      validatePoolName(s);
      return s;
    }))
    .option('-d, --delete', 'remove the directory default layout')
    .argument('<fs-path>')
    .action(async (fsText: string, o: { stripeCount?: number; stripeSize?: number; stripeIndex?: number; pool?: string; delete?: boolean }) => {
      const spec = parseFsSpec(fsText);
      const tpl: LayoutTemplate = {};
      if (o.stripeCount) tpl.stripeCount = o.stripeCount;
      if (o.stripeSize) tpl.stripeSize = o.stripeSize;
      if (o.stripeIndex !== undefined) tpl.stripeOffset = o.stripeIndex;
      if (o.pool) tpl.pool = o.pool;
      await withClient(spec, async (c) => {
        let existing;
        try {
          existing = await resolvePath(c, spec.path);
        } catch (e) {
          if (!(e instanceof StriaError) || e.code !== 'ENOENT') throw e;
        }
        if (existing?.attr.type === 'dir') {
          await c.setDirStripe(existing.attr.fid, o.delete ? null : tpl);
          return;
        }
        if (o.delete) throw err('ENOTDIR', `${'/' + spec.path.join('/')} is not a directory`, 'NOT_DIR');
        if (existing) throw err('EEXIST', `cannot set the layout of existing file ${'/' + spec.path.join('/')}`, 'FILE_EXISTS');
        const parent = await resolvePath(c, spec.path.slice(0, -1));
        const name = spec.path[spec.path.length - 1];
        if (!name) throw err('EINVAL', 'no file name given', 'NO_NAME');
        const f = await c.create(parent.attr.fid, name, { mode: 0o644, cred: { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 }, layout: tpl });
        await c.close(f);
      });
    });

  program
    .command('path2fid')
    .argument('<fs-path>')
    .action(async (fsText: string) => {
      const spec = parseFsSpec(fsText);
      await withClient(spec, async (c) => print(`${fidToString((await resolvePath(c, spec.path)).attr.fid)}\n`));
    });

  for (const kind of ['osts', 'mdts'] as const) {
    program
      .command(kind)
      .description(`list the ${kind.toUpperCase()} of a filesystem`)
      .argument('<fs>')
      .action(async (fsText: string) => {
        const spec = parseFsSpec(fsText);
        await withClient(spec, async (c) => {
          const cfg = c.configuration;
          print(kind === 'osts' ? 'OBDS:\n' : 'MDTS:\n');
          const list = kind === 'osts' ? cfg.osts : cfg.mdts;
          for (const t of list) {
            const name = kind === 'osts' ? ostName(spec.fsname, t.index) : mdtName(spec.fsname, t.index);
            print(`${t.index}: ${name}_UUID ACTIVE\n`);
          }
        });
      });
  }

  program
    .command('check')
    .description('ping every server: mgts, mdts, osts, all or servers')
    .argument('<which>')
    .argument('<fs>')
    .action(async (which: string, fsText: string) => {
      if (!['mgts', 'mdts', 'osts', 'all', 'servers'].includes(which)) throw err('EINVAL', `unknown target type '${which}'`, 'BAD_ARG');
      const spec = parseFsSpec(fsText);
      await withClient(spec, async (c) => {
        const all = which === 'all' || which === 'servers';
        let inactive = 0;
        const report = async (name: string, ping: () => Promise<void>) => {
          const ok = await ping().then(() => true, () => false);
          if (!ok) inactive++;
          print(`${name} ${ok ? 'active' : 'inactive'}.\n`);
        };
        if (all || which === 'mgts') await report('MGC', () => c.pingMgs());
        if (all || which === 'mdts') await report(`${mdtName(spec.fsname, 0)}-mdc`, () => c.mdc.imp.ping());
        if (all || which === 'osts') for (const o of c.ostClients()) await report(`${ostName(spec.fsname, o.index)}-osc`, () => o.imp.ping());
        if (inactive > 0) process.exitCode = 1;
      });
    });

  return program;
}

export async function main(argv: string[]): Promise<void> {
  await runTool('lfs', buildLfs(), argv);
}
