/** `stria`: the daemons (mgs, mds, oss) and the all-in-one `up`. */
import { Command, InvalidArgumentError, Option } from 'commander';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createLogger } from '../common/log.js';
import { DEFAULT_STRIPE_COUNT, DEFAULT_STRIPE_SIZE, validateStripeCount, validateStripeSize } from '../common/layout.js';
import { parseSize } from '../common/units.js';
import { validateFsname, validateTargetIndex } from '../common/targets.js';
import { formatNid, parseNid, parseNidList, type Nid } from '../lnet/nid.js';
import { startMgs } from '../mgs/mgs.js';
import { startMds } from '../mds/mds.js';
import { startOss } from '../oss/oss.js';
import { fail, runDaemon } from './daemon.js';
import { validated } from './args.js';

export const DEFAULT_MGS_PORT = 988;
export const DEFAULT_MDS_PORT = 9881;
export const DEFAULT_OSS_PORT = 9882;

const arg = validated;

const nidArg = (port: number) => arg((v: string) => parseNid(v, port));
const nidListArg = arg((v: string) => parseNidList(v, DEFAULT_MGS_PORT));
const fsnameArg = arg((v: string) => {
  validateFsname(v);
  return v;
});
const indexArg = arg((v: string) => {
  const n = /^(0x[0-9a-f]+|\d+)$/i.test(v) ? Number(v) : NaN;
  validateTargetIndex(n);
  return n;
});
const stripeSizeArg = arg((v: string) => {
  const n = parseSize(v);
  validateStripeSize(n);
  return n;
});
const stripeCountArg = arg((v: string) => {
  const n = Number(v);
  validateStripeCount(n);
  if (n === 0) throw new Error('stripe count 0 means "the default": give a number');
  return n;
});
const ostSpecArg = (v: string, prev: Array<{ index: number; dir: string }> = []) => {
  const m = /^(0x[0-9a-f]+|\d+):(.+)$/i.exec(v);
  if (!m) throw new InvalidArgumentError(`'${v}' is not INDEX:DIR`);
  const index = indexArg(m[1]!);
  return [...prev, { index, dir: resolve(m[2]!) }];
};

export function buildProgram(): Command {
  const program = new Command('stria')
    .description('Stria: a Lustre-style parallel filesystem')
    .showHelpAfterError(false)
    .configureOutput({ outputError: (str, write) => write(`stria: ${str.replace(/^error: /, '')}`) });

  program
    .command('mgs')
    .description('run the configuration server (MGS) in the foreground')
    .requiredOption('--dir <path>', 'directory holding the MGS configuration (must exist)')
    .option('--listen <nid>', 'address to listen on', nidArg(DEFAULT_MGS_PORT), parseNid(`0.0.0.0:${DEFAULT_MGS_PORT}@tcp`))
    .action(async (o: { dir: string; listen: Nid }) => {
      const log = createLogger('mgs');
      await runDaemon('mgs', log, () => startMgs({ dir: resolve(o.dir), listen: o.listen }, log));
    });

  program
    .command('mds')
    .description('run a metadata server (one MDT) in the foreground')
    .requiredOption('--fsname <name>', 'filesystem name (1-8 characters)', fsnameArg)
    .requiredOption('--mgs <nids>', 'MGS NID(s), comma-separated', nidListArg)
    .requiredOption('--store <dir>', 'MDT metadata store directory (must exist)')
    .option('--index <n>', 'MDT index', indexArg, 0)
    .option('--listen <nid>', 'address to listen on', nidArg(DEFAULT_MDS_PORT), parseNid(`0.0.0.0:${DEFAULT_MDS_PORT}@tcp`))
    .option('--stripe-size <size>', 'filesystem default stripe size', stripeSizeArg, DEFAULT_STRIPE_SIZE)
    .option('--stripe-count <n>', 'filesystem default stripe count (-1 = all OSTs)', stripeCountArg, DEFAULT_STRIPE_COUNT)
    .action(async (o: { fsname: string; mgs: Nid[]; store: string; index: number; listen: Nid; stripeSize: number; stripeCount: number }) => {
      const log = createLogger('mds');
      await runDaemon('mds', log, () =>
        startMds(
          { fsname: o.fsname, index: o.index, storeDir: resolve(o.store), mgsNids: o.mgs, listen: o.listen, fsDefault: { stripeSize: o.stripeSize, stripeCount: o.stripeCount } },
          log,
        ),
      );
    });

  program
    .command('oss')
    .description('run an object storage server with one or more OSTs in the foreground')
    .requiredOption('--fsname <name>', 'filesystem name', fsnameArg)
    .requiredOption('--mgs <nids>', 'MGS NID(s), comma-separated', nidListArg)
    .requiredOption('--ost <index:dir>', 'an OST: its index and directory (must exist; repeat for more)', ostSpecArg)
    .option('--listen <nid>', 'address to listen on', nidArg(DEFAULT_OSS_PORT), parseNid(`0.0.0.0:${DEFAULT_OSS_PORT}@tcp`))
    .action(async (o: { fsname: string; mgs: Nid[]; ost: Array<{ index: number; dir: string }>; listen: Nid }) => {
      const log = createLogger('oss');
      const seen = new Set<number>();
      for (const t of o.ost) {
        if (seen.has(t.index)) fail(`oss: OST index ${t.index} given twice`);
        seen.add(t.index);
      }
      await runDaemon('oss', log, () => startOss({ fsname: o.fsname, targets: o.ost, mgsNids: o.mgs, listen: o.listen }, log));
    });

  program
    .command('up')
    .description('all-in-one: MGS + MDS + several OSTs in this process, data under one directory')
    .option('--dir <path>', 'data directory (created if missing)', './stria-data')
    .option('--fsname <name>', 'filesystem name', fsnameArg, 'stria')
    .option('--osts <n>', 'number of OSTs', arg((v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 64) throw new Error('--osts must be 1..64');
      return n;
    }), 3)
    .option('--listen <addr>', 'address for all services', '127.0.0.1')
    .addOption(new Option('--mgs-port <port>', 'MGS port; MDS and OSS take the next two').default(DEFAULT_MGS_PORT).argParser(arg((v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 65533) throw new Error('port must be 1..65533');
      return n;
    })))
    .option('--stripe-size <size>', 'filesystem default stripe size', stripeSizeArg, DEFAULT_STRIPE_SIZE)
    .option('--stripe-count <n>', 'filesystem default stripe count', stripeCountArg, DEFAULT_STRIPE_COUNT)
    .action(async (o: { dir: string; fsname: string; osts: number; listen: string; mgsPort: number; stripeSize: number; stripeCount: number }) => {
      const log = createLogger('up');
      const base = resolve(o.dir);
      await runDaemon('up', log, async () => {
        const dirs = { mgs: join(base, 'mgs'), mdt: join(base, 'mdt0'), osts: Array.from({ length: o.osts }, (_, i) => join(base, `ost${i}`)) };
        for (const d of [dirs.mgs, dirs.mdt, ...dirs.osts]) await mkdir(d, { recursive: true });
        const nid = (port: number) => parseNid(`${o.listen}:${port}@tcp`);
        const mgs = await startMgs({ dir: dirs.mgs, listen: nid(o.mgsPort) }, log);
        const closers: Array<{ close(): Promise<void> }> = [mgs];
        try {
          const mgsNids = [mgs.nid];
          closers.push(await startOss({ fsname: o.fsname, targets: dirs.osts.map((dir, index) => ({ index, dir })), mgsNids, listen: nid(o.mgsPort + 2) }, log));
          closers.push(await startMds({ fsname: o.fsname, index: 0, storeDir: dirs.mdt, mgsNids, listen: nid(o.mgsPort + 1), fsDefault: { stripeSize: o.stripeSize, stripeCount: o.stripeCount } }, log));
        } catch (e) {
          for (const c of closers.reverse()) await c.close().catch(() => undefined);
          throw e;
        }
        log.info({ fsname: o.fsname, mgs: formatNid(mgs.nid), osts: o.osts, dir: base }, `filesystem ready: mount spec ${formatNid(mgs.nid)}:/${o.fsname}`);
        return {
          close: async () => {
            for (const c of closers.reverse()) await c.close().catch(() => undefined);
          },
        };
      });
    });

  return program;
}

export async function main(argv: string[]): Promise<void> {
  await buildProgram().parseAsync(argv);
}
