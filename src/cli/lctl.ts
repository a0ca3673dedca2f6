/**
 * `lctl`: Lustre-compatible administration commands: parameters of the local
 * processes (get_param, set_param, list_param, dl), pools on the MGS, ping, and the
 * changelog users of an MDT (--device FSNAME-MDTxxxx changelog_register|changelog_deregister).
 */
import { Command } from 'commander';
import { randomUUID } from 'node:crypto';
import { silentLogger } from '../common/log.js';
import { err, StriaError, toStriaError } from '../common/errno.js';
import { runTool } from './args.js';
import { ostName, validateFsname } from '../common/targets.js';
import { validatePoolName } from '../common/layout.js';
import { formatNid, parseNid, parseNidList, type Nid } from '../lnet/nid.js';
import { RpcClient } from '../ptlrpc/client.js';
import { MgsClient } from '../mgs/mgc.js';
import type { FsConfig } from '../mgs/protocol.js';
import { parseOstList } from './ost-list.js';
import { getParam, listDevices, listParam, setParam, type Output } from '../ctl/lctl-params.js';
import { LfsSession } from './lfs-session.js';
import { mdtClient } from './lfs-changelog.js';
import { registerLctlPcc } from './lctl-pcc.js';

const DEFAULT_MGS = '127.0.0.1@tcp';

async function withMgs<T>(mgs: string, fn: (mgc: MgsClient) => Promise<T>): Promise<T> {
  const rpc = new RpcClient({ uuid: `lctl-${randomUUID()}` }, silentLogger());
  try {
    const mgc = new MgsClient(rpc, parseNidList(mgs), { timeoutMs: 10_000, recoveryWaitMs: 10_000 });
    await mgc.connect();
    return await fn(mgc);
  } finally {
    await rpc.close();
  }
}

function splitPool(spec: string): { fsname: string; pool?: string } {
  const [fsname, pool, extra] = spec.split('.');
  if (!fsname || extra !== undefined) throw err('EINVAL', `'${spec}' is not FSNAME[.POOL]`, 'BAD_POOL_SPEC');
  validateFsname(fsname);
  if (pool !== undefined) validatePoolName(pool);
  return { fsname, pool };
}

function needPool(spec: string): { fsname: string; pool: string } {
  const s = splitPool(spec);
  if (!s.pool) throw err('EINVAL', `'${spec}' names no pool (expected FSNAME.POOL)`, 'BAD_POOL_SPEC');
  return { fsname: s.fsname, pool: s.pool };
}

export function printPoolList(cfg: FsConfig, pool: string | undefined, out: (s: string) => void): void {
  if (pool === undefined) {
    out(`Pools from ${cfg.fsname}:`);
    for (const name of Object.keys(cfg.pools).sort()) out(`${cfg.fsname}.${name}`);
    return;
  }
  const members = cfg.pools[pool];
  if (!members) throw err('ENOENT', `pool ${cfg.fsname}.${pool} does not exist`, 'NO_SUCH_POOL');
  out(`Pool: ${cfg.fsname}.${pool}`);
  for (const idx of members) out(`${ostName(cfg.fsname, idx)}_UUID`);
}

export function buildLctl(): Command {
  const program = new Command('lctl')
    .description('Stria administration (Lustre lctl subset)')
    .option('--mgs <nids>', 'MGS NID(s)', process.env.STRIA_MGS ?? DEFAULT_MGS)
    .option('--device <name>', 'the device the following command acts on (FSNAME-MDTxxxx for changelog_register/deregister)')
    .configureOutput({ outputError: (str, write) => write(`lctl: ${str.replace(/^error: /, '')}`) });
  const mgsOf = () => (program.opts() as { mgs: string }).mgs;
  const print = (s: string) => process.stdout.write(`${s}\n`);

  program.command('pool_new <fsname.pool>').description('create a pool').action(async (spec: string) => {
    const p = needPool(spec);
    await withMgs(mgsOf(), (m) => m.poolOp({ op: 'pool_new', ...p }));
    print(`Pool ${p.fsname}.${p.pool} created`);
  });
  program.command('pool_add <fsname.pool> <osts...>').description('add OSTs to a pool').action(async (spec: string, osts: string[]) => {
    const p = needPool(spec);
    const list = parseOstList(osts);
    await withMgs(mgsOf(), (m) => m.poolOp({ op: 'pool_add', ...p, osts: list }));
    for (const i of list) print(`OST ${ostName(p.fsname, i)}_UUID added to pool ${p.fsname}.${p.pool}`);
  });
  program.command('pool_remove <fsname.pool> <osts...>').description('remove OSTs from a pool').action(async (spec: string, osts: string[]) => {
    const p = needPool(spec);
    const list = parseOstList(osts);
    await withMgs(mgsOf(), (m) => m.poolOp({ op: 'pool_remove', ...p, osts: list }));
    for (const i of list) print(`OST ${ostName(p.fsname, i)}_UUID removed from pool ${p.fsname}.${p.pool}`);
  });
  program.command('pool_destroy <fsname.pool>').description('destroy an empty pool').action(async (spec: string) => {
    const p = needPool(spec);
    await withMgs(mgsOf(), (m) => m.poolOp({ op: 'pool_destroy', ...p }));
    print(`Pool ${p.fsname}.${p.pool} destroyed`);
  });
  program.command('pool_list <fsname[.pool]>').description('list pools or a pool\'s OSTs').action(async (spec: string) => {
    const s = splitPool(spec);
    const cfg = await withMgs(mgsOf(), (m) => m.config(s.fsname));
    printPoolList(cfg, s.pool, print);
  });
  const io: Output = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) };
  const exit = (rc: number) => {
    if (rc !== 0) process.exitCode = rc;
  };
  program
    .command('get_param')
    .description('print parameters of the processes on this node (name=value)')
    .argument('<pattern...>', 'dotted parameter names; each component may use *, ? and [...]')
    .option('-n, --no-name', 'print values only')
    .option('-N, --only-name', 'print names only')
    .option('-F, --classify', "mark directories with '/' and writable parameters with '='")
    .option('-R, --recursive', 'include everything below matching directories')
    .option('-H, --header', 'print the name before every line of multi-line values')
    .action(async (patterns: string[], o: { name: boolean; onlyName?: boolean; classify?: boolean; recursive?: boolean; header?: boolean }) => {
      exit(await getParam(patterns, { noName: !o.name, onlyName: o.onlyName, classify: o.classify, recursive: o.recursive, header: o.header }, io));
    });
  program
    .command('set_param')
    .description('set parameters of the processes on this node')
    .argument('<name=value...>', 'NAME=VALUE (or NAME VALUE) pairs; NAME may use *, ? and [...]')
    .option('-n, --no-name', 'do not print the parameters set')
    .option('-P, --permanent', 'keep the setting on the MGS (not supported yet)')
    .option('-d, --delete', 'delete a permanent setting (not supported yet)')
    .action(async (args: string[], o: { name: boolean; permanent?: boolean; delete?: boolean }) => {
      exit(await setParam(args, { noName: !o.name, permanent: o.permanent, delete: o.delete }, io));
    });
  program
    .command('list_param')
    .description('list parameter names of the processes on this node')
    .argument('<pattern...>', 'dotted parameter names; each component may use *, ? and [...]')
    .option('-F, --classify', "mark directories with '/' and writable parameters with '='")
    .option('-R, --recursive', 'include everything below matching directories')
    .option('-D, --dir-only', 'list directories only')
    .action(async (patterns: string[], o: { classify?: boolean; recursive?: boolean; dirOnly?: boolean }) => {
      exit(await listParam(patterns, { classify: o.classify, recursive: o.recursive, dirOnly: o.dirOnly }, io));
    });
  program
    .command('dl')
    .description('list the devices of this node, or with FSNAME the targets the MGS knows')
    .argument('[fsname]')
    .option('-t, --target', 'also show the NID each client device is connected to')
    .action(async (fsname: string | undefined, o: { target?: boolean }) => {
      if (fsname === undefined) {
        exit(await listDevices({ conn: o.target }, io));
        return;
      }
      validateFsname(fsname);
      const cfg = await withMgs(mgsOf(), (m) => m.config(fsname));
      let n = 0;
      for (const t of cfg.mdts) print(`${String(n++).padStart(3)} UP mdt ${fsname}-MDT${t.index.toString(16).padStart(4, '0')} ${t.uuid} ${t.nids.join(',')}`);
      for (const t of cfg.osts) print(`${String(n++).padStart(3)} UP obdfilter ${ostName(fsname, t.index)} ${t.uuid} ${t.nids.join(',')}`);
    });
  /**
   * Changelog users live on the MDT: reach it through a mount of its filesystem on this
   * node, else through the MGS (--mgs), as root.
   */
  const withMdt = async <T>(command: string, fn: (mdt: string, cl: Awaited<ReturnType<typeof mdtClient>>['changelog']) => Promise<T>): Promise<T> => {
    const o = program.opts() as { mgs: string; device?: string };
    if (!o.device) throw err('EINVAL', `${command}: no device given (lctl --device FSNAME-MDTxxxx ${command} ...)`, 'NO_DEVICE');
    const session = new LfsSession();
    try {
      const { changelog } = await mdtClient(session, o.device, o.mgs);
      return await fn(o.device, changelog);
    } finally {
      await session.close();
    }
  };
  program
    .command('changelog_register')
    .description('register a changelog user on the MDT named by --device')
    .option('-n, --nameonly', 'print only the new user id')
    .action(async (o: { nameonly?: boolean }) => {
      const id = await withMdt('changelog_register', (_, cl) => cl.register());
      const device = (program.opts() as { device: string }).device;
      print(o.nameonly ? id : `${device}: Registered changelog userid '${id}'`);
    });
  program
    .command('changelog_deregister <id>')
    .description('deregister a changelog user of the MDT named by --device (its records are cleared)')
    .action(async (id: string) => {
      await withMdt('changelog_deregister', async (device, cl) => {
        try {
          await cl.deregister(id);
        } catch (e) {
          const se = toStriaError(e);
          if (se.code === 'NO_CHANGELOG_USER' || se.code === 'BAD_REQUEST') throw new StriaError(se.errno, `changelog_deregister: ${id} not found on ${device}`, se.code);
          throw e;
        }
        print(`${device}: Deregistered changelog user '${id}'`);
      });
    });
  registerLctlPcc(program);
  program.command('ping <nid>').description('check that a server answers (OBD_PING)').action(async (nidText: string) => {
    const nid: Nid = parseNid(nidText);
    const rpc = new RpcClient({ uuid: `lctl-${randomUUID()}` }, silentLogger());
    try {
      const t0 = performance.now();
      await rpc.ping(nid, 10_000);
      print(`${formatNid(nid)} answered in ${(performance.now() - t0).toFixed(2)} ms`);
    } finally {
      await rpc.close();
    }
  });
  return program;
}

export async function main(argv: string[]): Promise<void> {
  await runTool('lctl', buildLctl(), argv);
}
