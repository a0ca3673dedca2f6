/**
 * `lfs`: Lustre-compatible user commands. A file or directory is named by an
 * ordinary path on a mounted Stria filesystem, or by a filesystem spec
 * MGSNID:/FSNAME[/PATH], which needs no mount.
 *
 * Exit status as Lustre's lfs: 0 on success; 4 (its CMD_HELP) for a command
 * line that does not parse, after the error and the command's usage; 1 for
 * any other failure, after one `lfs: ...` line. The hsm_* commands print
 * Lustre's own lines and exit with the errno, as lfs does for them.
 */
import { err, StriaError, toStriaError } from '../common/errno.js';
import { mdtName, ostName } from '../common/targets.js';
import { parseSize } from '../common/units.js';
import { validatePoolName, validateStripeCount, validateStripeSize, type LayoutTemplate } from '../common/layout.js';
import { formatNid } from '../lnet/nid.js';
import type { StriaClient } from '../client/client.js';
import { fsKey, parseFsSpec, type FsSpec } from '../client/fs-spec.js';
import { formatDf, type DfRow } from './lfs-format.js';
import { splitArgs, UsageError, type OptSpec } from './lfs-getopt.js';
import { LfsSession } from './lfs-session.js';
import { Output } from './lfs-output.js';
import { GETSTRIPE_USAGE, getstripe, parseGetstripe } from './lfs-getstripe.js';
import { FIND_USAGE, find, parseFind } from './lfs-find.js';
import { FID2PATH_USAGE, PATH2FID_USAGE, fid2path, path2fid } from './lfs-fid.js';
import { describeLookupError } from './lfs-errors.js';
import { mountedImportStates } from './lfs-check.js';
import { HSM_COMMANDS } from './lfs-hsm.js';
import { CHANGELOG_COMMANDS } from './lfs-changelog.js';
import { PCC_COMMANDS } from './lfs-pcc.js';
import { RpcClient } from '../ptlrpc/client.js';
import { silentLogger } from '../common/log.js';
import type { Nid } from '../lnet/nid.js';

/** Lustre's CMD_HELP, which lfs returns as its exit status for bad usage. */
export const EXIT_USAGE = 4;

interface Ctx {
  session: LfsSession;
  out: Output;
  /** one `lfs: ...` line on stderr */
  warn: (s: string) => void;
  /** one line on stderr, as given */
  error: (line: string) => void;
}

interface LfsCommand {
  usage: string;
  /** false: failed, after printing why; a number: the exit status */
  run(ctx: Ctx, argv: string[]): Promise<boolean | number | void>;
}

/** A filesystem to report on: from an argument (path or spec), or every Stria mount. */
interface FsRef {
  spec: FsSpec;
  /** what "Mounted on" shows: the mountpoint, or MGSNID:/FSNAME */
  mount: string;
}

async function filesystems(ctx: Ctx, args: string[]): Promise<FsRef[]> {
  if (args.length > 0) {
    const refs: FsRef[] = [];
    for (const a of args) {
      const t = await ctx.session.target(a, true);
      refs.push({ spec: t.spec, mount: t.mount?.mountpoint ?? `${t.spec.text.split(':/')[0]}:/${t.spec.fsname}` });
    }
    return refs;
  }
  const refs: FsRef[] = [];
  for (const m of await ctx.session.striaMounts()) {
    try {
      refs.push({ spec: parseFsSpec(m.source), mount: m.mountpoint });
    } catch {
      ctx.warn(`warning: ${m.mountpoint}: mount source '${m.source}' is not MGSNID:/FSNAME`);
    }
  }
  if (refs.length === 0) throw err('ENODEV', 'no Stria filesystem is mounted (name one by path or MGSNID:/FSNAME)', 'NO_MOUNTS');
  return refs;
}

function has(opts: Array<{ name: string }>, name: string): boolean {
  return opts.some((o) => o.name === name);
}

const DF_OPTIONS: OptSpec[] = [
  { name: 'i', short: 'i', long: ['inodes'] },
  { name: 'h', short: 'h', long: ['human-readable'] },
  { name: 'help', long: ['help'] },
];

async function dfTable(c: StriaClient, fsname: string, mount: string, o: { inodes: boolean; human: boolean }): Promise<string> {
  const rows: DfRow[] = [];
  const kib = (blocks: number, bsize: number) => Math.floor((blocks * bsize) / 1024);
  const mdt = await c.mdc.statfs();
  const mdtUuid = `${mdtName(fsname, 0)}_UUID`;
  rows.push(
    o.inodes
      ? { uuid: mdtUuid, total: mdt.files, used: mdt.files - mdt.ffree, avail: mdt.ffree, mount: `${mount}[MDT:0]` }
      : { uuid: mdtUuid, total: kib(mdt.blocks, mdt.bsize), used: kib(mdt.blocks - mdt.bfree, mdt.bsize), avail: kib(mdt.bavail, mdt.bsize), mount: `${mount}[MDT:0]` },
  );
  const sum = { total: 0, used: 0, avail: 0 };
  for (const osc of c.ostClients()) {
    const uuid = `${ostName(fsname, osc.index)}_UUID`;
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
  return formatDf(rows, summary, { inodes: o.inodes, human: o.human });
}

const countArg = (s: string) => {
  const n = Number(s);
  if (!/^-?\d+$/.test(s)) throw new UsageError(`invalid stripe count '${s}'`);
  validateStripeCount(n);
  return n;
};
const sizeArg = (s: string) => {
  // lfs reads values below 4096 as KiB; 0 is "the default"
  const n = /^\d+$/.test(s) && Number(s) < 4096 ? Number(s) * 1024 : parseSize(s);
  if (n !== 0) validateStripeSize(n);
  return n;
};
const indexArg = (s: string) => {
  const n = Number(s);
  if (!/^-?\d+$/.test(s) || n < -1 || n > 0xffff) throw new UsageError(`invalid OST index '${s}'`);
  return n;
};

/** Option values that fail validation are usage errors, as in Lustre's lfs. */
function usageValue<T>(parse: (s: string) => T, s: string): T {
  try {
    return parse(s);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(toStriaError(e).message);
  }
}

const SETSTRIPE_OPTIONS: OptSpec[] = [
  { name: 'c', short: 'c', long: ['stripe-count', 'stripe_count', 'count'], arg: 'required' },
  { name: 'S', short: 'S', long: ['stripe-size', 'stripe_size', 'size'], arg: 'required' },
  { name: 'i', short: 'i', long: ['stripe-index', 'stripe_index', 'index'], arg: 'required' },
  { name: 'p', short: 'p', long: ['pool'], arg: 'required' },
  { name: 'd', short: 'd', long: ['delete'] },
  { name: 'h', short: 'h', long: ['help'] },
];

const CHECK_KINDS = ['mgts', 'mdts', 'osts', 'all', 'servers'];

export const COMMANDS: Record<string, LfsCommand> = {
  df: {
    usage: 'usage: df [--inodes|-i] [--human-readable|-h] [PATH|MGSNID:/FSNAME]...',
    async run(ctx, argv) {
      const { opts, operands } = splitArgs(argv, DF_OPTIONS);
      if (has(opts, 'help')) return void ctx.out.write(`${this.usage}\n`);
      const o = { inodes: has(opts, 'i'), human: has(opts, 'h') };
      for (const fs of await filesystems(ctx, operands)) {
        ctx.out.write(await dfTable(await ctx.session.client(fs.spec), fs.spec.fsname, fs.mount, o));
      }
    },
  },

  getstripe: {
    usage: GETSTRIPE_USAGE,
    async run(ctx, argv) {
      const { params, paths, help } = parseGetstripe(argv);
      if (help) return void ctx.out.write(`${this.usage}\n`);
      await getstripe(ctx.session, ctx.out, params, paths);
    },
  },

  setstripe: {
    usage: `usage: setstripe [--stripe-count|-c STRIPE_COUNT] [--stripe-size|-S STRIPE_SIZE]
                 [--stripe-index|-i START_OST_IDX] [--pool|-p POOL_NAME]
                 <directory|filename|MGSNID:/FSNAME/PATH>
       setstripe --delete|-d <directory>`,
    async run(ctx, argv) {
      const { opts, operands } = splitArgs(argv, SETSTRIPE_OPTIONS);
      if (has(opts, 'h')) return void ctx.out.write(`${this.usage}\n`);
      const tpl: LayoutTemplate = {};
      for (const o of opts) {
        const v = o.value ?? '';
        if (o.name === 'c') tpl.stripeCount = usageValue(countArg, v) || undefined;
        if (o.name === 'S') tpl.stripeSize = usageValue(sizeArg, v) || undefined;
        if (o.name === 'i') tpl.stripeOffset = usageValue(indexArg, v);
        if (o.name === 'p') tpl.pool = usageValue((s) => (validatePoolName(s), s), v);
      }
      for (const k of Object.keys(tpl) as Array<keyof LayoutTemplate>) if (tpl[k] === undefined) delete tpl[k];
      const del = has(opts, 'd');
      if (del && Object.keys(tpl).length > 0) throw new UsageError('setstripe: --delete cannot be given with layout options');
      if (operands.length === 0) throw new UsageError('setstripe: no file or directory given');
      for (const arg of operands) await setstripe(ctx, arg, tpl, del);
    },
  },

  find: {
    usage: FIND_USAGE,
    async run(ctx, argv) {
      const p = parseFind(argv, Math.floor(Date.now() / 1000));
      if (p.help) return void ctx.out.write(`${this.usage}\n`);
      await find(ctx.session, ctx.out, p, ctx.warn);
    },
  },

  fid2path: {
    usage: FID2PATH_USAGE,
    run: (ctx, argv) => fid2path(ctx.session, ctx.out, argv, ctx.warn),
  },

  path2fid: {
    usage: PATH2FID_USAGE,
    run: (ctx, argv) => path2fid(ctx.session, ctx.out, argv, ctx.warn),
  },

  osts: { usage: 'usage: osts [PATH|MGSNID:/FSNAME]', run: (ctx, argv) => listTargets(ctx, argv, 'osts') },
  mdts: { usage: 'usage: mdts [PATH|MGSNID:/FSNAME]', run: (ctx, argv) => listTargets(ctx, argv, 'mdts') },

  check: {
    usage: 'usage: check {mgts|osts|mdts|all|servers} [PATH|MGSNID:/FSNAME]...',
    async run(ctx, argv) {
      const { opts, operands } = splitArgs(argv, [{ name: 'h', short: 'h', long: ['help'] }]);
      if (has(opts, 'h')) return void ctx.out.write(`${this.usage}\n`);
      const which = operands[0];
      if (!which || !CHECK_KINDS.includes(which)) throw new UsageError(which ? `unknown target type '${which}'` : 'check: which targets (mgts, osts, mdts, all or servers)?');
      const all = which === 'all' || which === 'servers';
      let inactive = 0;
      const seen = new Set<string>();
      for (const fs of await filesystems(ctx, operands.slice(1))) {
        // several mounts of one filesystem share the same servers: ping them once
        if (seen.has(fsKey(fs.spec))) continue;
        seen.add(fsKey(fs.spec));
        const report = async (name: string, ping: () => Promise<void>) => {
          const ok = await ping().then(() => true, () => false);
          if (!ok) inactive++;
          ctx.out.write(`${name} ${ok ? 'active' : 'inactive'}.\n`);
        };
        const mgc = `MGC${formatNid(fs.spec.mgsNids[0]!)}`;
        const mounted = await mountedImportStates(fs.spec.fsname, all ? 'all' : which === 'mdts' ? 'mdts' : 'osts');
        if (mounted && which !== 'mgts') {
          if (all) await report(mgc, () => pingNid(fs.spec.mgsNids[0]!));
          for (const t of mounted) await report(t.name, async () => {
            if (!t.active) throw new Error('not FULL');
          });
          continue;
        }
        const c = await ctx.session.client(fs.spec);
        if (all || which === 'mgts') await report(mgc, () => c.pingMgs());
        if (all || which === 'mdts') await report(`${mdtName(fs.spec.fsname, 0)}-mdc`, () => c.mdc.imp.ping());
        if (all || which === 'osts') for (const o of c.ostClients()) await report(`${ostName(fs.spec.fsname, o.index)}-osc`, () => o.imp.ping());
      }
      return inactive === 0;
    },
  },

  ...HSM_COMMANDS,
  ...CHANGELOG_COMMANDS,
  ...PCC_COMMANDS,
};

/** OBD_PING of a NID from a throwaway connection (the MGC line of `lfs check servers`). */
async function pingNid(nid: Nid): Promise<void> {
  const rpc = new RpcClient({ uuid: `lfs-check-${process.pid}` }, silentLogger());
  try {
    await rpc.ping(nid, 5_000);
  } finally {
    await rpc.close();
  }
}

async function listTargets(ctx: Ctx, argv: string[], kind: 'osts' | 'mdts'): Promise<void> {
  const { opts, operands } = splitArgs(argv, [{ name: 'h', short: 'h', long: ['help'] }]);
  if (has(opts, 'h')) return void ctx.out.write(`${COMMANDS[kind]!.usage}\n`);
  if (operands.length > 1) throw new UsageError(`${kind}: at most one path`);
  for (const fs of await filesystems(ctx, operands)) {
    const c = await ctx.session.client(fs.spec);
    const cfg = c.configuration;
    ctx.out.write(kind === 'osts' ? 'OBDS:\n' : 'MDTS:\n');
    for (const t of kind === 'osts' ? cfg.osts : cfg.mdts) {
      const name = kind === 'osts' ? ostName(fs.spec.fsname, t.index) : mdtName(fs.spec.fsname, t.index);
      ctx.out.write(`${t.index}: ${name}_UUID ACTIVE\n`);
    }
  }
}

async function setstripe(ctx: Ctx, arg: string, tpl: LayoutTemplate, del: boolean): Promise<void> {
  const t = await ctx.session.target(arg, false);
  const c = await ctx.session.client(t.spec);
  const shown = t.display;
  let existing;
  try {
    existing = await ctx.session.lookup(c, t.spec, t.spec.path, true);
  } catch (e) {
    if (!(e instanceof StriaError) || e.code !== 'ENOENT') throw describeLookupError(arg, e);
  }
  if (existing?.inode.type === 'dir') {
    await c.setDirStripe(existing.inode.fid, del ? null : tpl);
    return;
  }
  if (del) throw err('ENOTDIR', `${shown} is not a directory`, 'NOT_DIR');
  if (existing) throw err('EEXIST', `cannot set the layout of existing file ${shown}`, 'FILE_EXISTS');
  const name = t.spec.path[t.spec.path.length - 1];
  if (!name || name === '..') throw err('EINVAL', `${shown}: no file name given`, 'NO_NAME');
  const parent = await ctx.session.lookup(c, t.spec, t.spec.path.slice(0, -1), true).catch((e: unknown) => {
    throw describeLookupError(arg, e);
  });
  if (parent.inode.type !== 'dir') throw err('ENOTDIR', `cannot create ${shown}: not in a directory`, 'NOT_DIR');
  const f = await c.create(parent.inode.fid, name, { mode: 0o644, cred: { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 }, layout: tpl });
  await c.close(f);
}

function listCommands(): string {
  return `usage: lfs <command> [options] <file|directory|MGSNID:/FSNAME[/PATH]>...
commands: ${Object.keys(COMMANDS).sort().join(', ')}
'lfs <command> --help' shows a command's options.
`;
}

/** Runs one lfs command line (argv without node and script); returns the exit status. */
export async function runLfs(
  argv: string[],
  io: { stdout?: (s: string) => void; stderr?: (s: string) => void; session?: LfsSession } = {},
): Promise<number> {
  const stderr = io.stderr ?? ((s: string) => void process.stderr.write(s));
  const out = new Output(io.stdout);
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h' || name === '--list-commands') {
    out.write(listCommands());
    out.flush();
    return name === undefined ? EXIT_USAGE : 0;
  }
  const cmd = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!cmd) {
    stderr(`lfs: '${name}' is not a valid command. See 'lfs --list-commands'.\n`);
    return 1;
  }
  const session = io.session ?? new LfsSession();
  const ctx: Ctx = {
    session,
    out,
    warn: (s) => {
      out.flush();
      stderr(`lfs: ${s}\n`);
    },
    error: (line) => {
      out.flush();
      stderr(`${line}\n`);
    },
  };
  try {
    const r = await cmd.run(ctx, rest);
    if (typeof r === 'number') return r;
    return r === false ? 1 : 0;
  } catch (e) {
    out.flush();
    if (e instanceof UsageError) {
      // an empty message: only the usage, as lfs shows for CMD_HELP
      stderr(`${e.message ? `lfs: ${e.message}\n` : ''}${cmd.usage}\n`);
      return EXIT_USAGE;
    }
    stderr(`lfs: ${toStriaError(e).message}\n`);
    return 1;
  } finally {
    out.flush();
    if (!io.session) await session.close();
  }
}

export async function main(argv: string[]): Promise<void> {
  process.exitCode = await runLfs(argv.slice(2));
}
