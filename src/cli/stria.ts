/** `stria`: the daemons (mgs, mds, oss, copytool) and the all-in-one `up`. */
import { Command, InvalidArgumentError, Option } from 'commander';
import { resolve } from 'node:path';
import { createLogger } from '../common/log.js';
import { DEFAULT_STRIPE_COUNT, DEFAULT_STRIPE_SIZE, validateStripeCount, validateStripeSize } from '../common/layout.js';
import { parseSize } from '../common/units.js';
import { validateFsname, validateTargetIndex } from '../common/targets.js';
import { parseNid, parseNidList, type Nid } from '../lnet/nid.js';
import { startMgs } from '../mgs/mgs.js';
import { startMds } from '../mds/mds.js';
import { startOss } from '../oss/oss.js';
import { fail, runDaemon } from './daemon.js';
import { startUp } from './up.js';
import { unmountPath } from './umount.js';
import { parseFsSpec, type FsSpec } from '../client/fs-spec.js';
import { mountStria } from '../fuse/mount.js';
import { DEFAULT_MOUNT_OPTIONS, diskCacheOptions, parseMountOptions, type FuseImpl, type MountOptions } from '../fuse/mount-options.js';
import { toStriaError } from '../common/errno.js';
import { validated } from './args.js';
import { isStoreUrl } from '../mds/store/open.js';
import { addCopytoolCommand } from './copytool.js';
import { registerPolicyCommand } from './policy.js';
import { addWarmupCommand } from './warmup.js';
import { addStatsCommand } from './cache-stats.js';
import { addBenchCommand } from './bench.js';
import { parseArchiveLocation, type ArchiveTarget } from '../hsm/archive-url.js';

export const DEFAULT_MGS_PORT = 988;
export const DEFAULT_MDS_PORT = 9881;
export const DEFAULT_OSS_PORT = 9882;

const arg = validated;

const nidArg = (port: number) => arg((v: string) => parseNid(v, port));
const specArg = arg(parseFsSpec);
const mountOptsArg = (v: string, prev?: MountOptions) => arg((x: string) => parseMountOptions(x, prev))(v);
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
  const ldlmTimeoutArg = arg((v) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 1 || n > 3600) throw new Error('--ldlm-timeout must be 1..3600 seconds');
    return n;
  });
  const positiveInt = (flag: string, max: number) => arg((v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`${flag} must be an integer 1..${max}`);
    return n;
  });
  const hsmControlArg = arg((v) => {
    if (v !== 'enabled' && v !== 'disabled' && v !== 'shutdown') throw new Error('--hsm-control must be enabled, disabled or shutdown');
    return v as 'enabled' | 'disabled' | 'shutdown';
  });
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
    .requiredOption('--store <dir|url>', 'MDT metadata store: a directory (must exist) or redis://[user:pass@]host:port/db, rediss://..., redis+sentinel://host:port[,host:port]/master[/db]')
    .option('--index <n>', 'MDT index', indexArg, 0)
    .option('--listen <nid>', 'address to listen on', nidArg(DEFAULT_MDS_PORT), parseNid(`0.0.0.0:${DEFAULT_MDS_PORT}@tcp`))
    .option('--stripe-size <size>', 'filesystem default stripe size', stripeSizeArg, DEFAULT_STRIPE_SIZE)
    .option('--stripe-count <n>', 'filesystem default stripe count (-1 = all OSTs)', stripeCountArg, DEFAULT_STRIPE_COUNT)
    .option('--ldlm-timeout <seconds>', 'how long a client has to give back a lock before it is evicted', ldlmTimeoutArg, DEFAULT_LDLM_TIMEOUT_S)
    .option('--hsm-control <state>', 'HSM coordinator at start: enabled, disabled (queue only) or shutdown (mdt.*.hsm_control)', hsmControlArg)
    .option('--hsm-max-requests <n>', 'HSM actions running at once (mdt.*.hsm.max_requests, default 3)', positiveInt('--hsm-max-requests', 100_000))
    .option('--hsm-active-request-timeout <seconds>', 'fail an HSM action with no progress this long (default 3600)', positiveInt('--hsm-active-request-timeout', 10 * 86400))
    .option('--hsm-grace-delay <seconds>', 'finished HSM actions stay listed this long (default 60)', positiveInt('--hsm-grace-delay', 86400))
    .option('--hsm-loop-period <seconds>', 'coordinator loop period (default 10)', positiveInt('--hsm-loop-period', 3600))
    .option('--hsm-default-archive-id <n>', 'archive used when a request names none (default 1)', positiveInt('--hsm-default-archive-id', 0xffffffff))
    .option('--hsm-agent-lost <seconds>', 'a copytool disconnected this long loses its running actions to others (default 2 loop periods)', positiveInt('--hsm-agent-lost', 3600))
    .action(async (o: {
      fsname: string; mgs: Nid[]; store: string; index: number; listen: Nid; stripeSize: number; stripeCount: number; ldlmTimeout: number;
      hsmControl?: 'enabled' | 'disabled' | 'shutdown'; hsmMaxRequests?: number; hsmActiveRequestTimeout?: number; hsmGraceDelay?: number;
      hsmLoopPeriod?: number; hsmDefaultArchiveId?: number; hsmAgentLost?: number;
    }) => {
      const log = createLogger('mds');
      const ms = (s: number | undefined) => (s === undefined ? undefined : s * 1000);
      await runDaemon('mds', log, () =>
        startMds(
          {
            fsname: o.fsname, index: o.index, storeDir: isStoreUrl(o.store) ? o.store : resolve(o.store), mgsNids: o.mgs, listen: o.listen,
            fsDefault: { stripeSize: o.stripeSize, stripeCount: o.stripeCount }, ldlmTimeoutMs: o.ldlmTimeout * 1000,
            hsmControl: o.hsmControl, hsmMaxRequests: o.hsmMaxRequests, hsmActiveRequestTimeoutMs: ms(o.hsmActiveRequestTimeout),
            hsmGraceDelayMs: ms(o.hsmGraceDelay), hsmLoopPeriodMs: ms(o.hsmLoopPeriod), hsmDefaultArchiveId: o.hsmDefaultArchiveId,
            hsmAgentLostMs: ms(o.hsmAgentLost),
          },
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
    .option('--ldlm-timeout <seconds>', 'how long a client has to give back a lock before it is evicted', ldlmTimeoutArg, DEFAULT_LDLM_TIMEOUT_S)
    .action(async (o: { fsname: string; mgs: Nid[]; ost: Array<{ index: number; dir: string }>; listen: Nid; ldlmTimeout: number }) => {
      const log = createLogger('oss');
      const seen = new Set<number>();
      for (const t of o.ost) {
        if (seen.has(t.index)) fail(`oss: OST index ${t.index} given twice`);
        seen.add(t.index);
      }
      await runDaemon('oss', log, () => startOss({ fsname: o.fsname, targets: o.ost, mgsNids: o.mgs, listen: o.listen, ldlmTimeoutMs: o.ldlmTimeout * 1000 }, log));
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
    }), 4)
    .option('--listen <addr>', 'address for all services', '127.0.0.1')
    .addOption(new Option('--mgs-port <port>', 'MGS port; MDS and OSS take the next two').default(DEFAULT_MGS_PORT).argParser(arg((v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 65533) throw new Error('port must be 1..65533');
      return n;
    })))
    .option('--stripe-size <size>', 'filesystem default stripe size', stripeSizeArg, DEFAULT_STRIPE_SIZE)
    .option('--stripe-count <n>', 'filesystem default stripe count', stripeCountArg, DEFAULT_STRIPE_COUNT)
    .option('--store <url>', 'keep the metadata in Redis (redis://host:port/db) instead of under --dir')
    .option('--mount <mountpoint>', 'also mount the filesystem here')
    .option('-o, --options <opts>', 'mount options (see stria mount --help)', mountOptsArg)
    .option('--archive <url|dir>', 'also run an HSM copytool for archive id 1: an S3 URL (http(s)://HOST:PORT/BUCKET[/PREFIX], s3://BUCKET[/PREFIX]; credentials from AWS_*) or a directory', arg((v) => parseArchiveLocation(v)))
    .option('--cache-dir <dirs>', 'the mount\'s local disk cache for file data (with --mount; see stria mount --help)')
    .option('--cache-size <size>', 'disk cache size over all its directories (with --cache-dir; default 100G)')
    .option('--free-space-ratio <ratio>', 'keep at least this fraction of each cache disk free (with --cache-dir; default 0.1)')
    .action(async (o: { dir: string; fsname: string; osts: number; listen: string; mgsPort: number; stripeSize: number; stripeCount: number; mount?: string; options?: MountOptions; store?: string; archive?: ArchiveTarget; cacheDir?: string; cacheSize?: string; freeSpaceRatio?: string }) => {
      if (o.store !== undefined && !isStoreUrl(o.store)) fail(`up: --store takes a redis://, rediss:// or redis+sentinel:// URL (the embedded store lives under --dir)`);
      if ((o.cacheDir ?? o.cacheSize ?? o.freeSpaceRatio) !== undefined && o.mount === undefined) fail('up: --cache-dir, --cache-size and --free-space-ratio are for the mount: give --mount too');
      let diskCache: ReturnType<typeof diskCacheOptions>;
      try {
        diskCache = diskCacheOptions(o);
      } catch (e) {
        fail(`up: ${toStriaError(e).message}`);
      }
      const mountOptions = { ...(o.options ?? DEFAULT_MOUNT_OPTIONS), ...(diskCache ? { diskCache: { ...diskCache, dirs: diskCache.dirs.map((d) => resolve(d)) } } : {}) };
      const log = createLogger('up');
      await runDaemon('up', log, () =>
        startUp({ ...o, dir: resolve(o.dir), mount: o.mount ? resolve(o.mount) : undefined, mountOptions }, log, (s) => process.stderr.write(`${s}\n`)),
      );
    });

  addCopytoolCommand(program);
  registerPolicyCommand(program);
  addWarmupCommand(program);
  addStatsCommand(program);
  addBenchCommand(program);

  program
    .command('mount')
    .description('mount a filesystem: stria mount MGSNID:/FSNAME[/SUBDIR] MOUNTPOINT (stays in the foreground)')
    .argument('<spec>', 'MGSNID[,NID][:FAILOVER]:/FSNAME[/SUBDIR]', specArg)
    .argument('<mountpoint>')
    .option('-o, --options <opts>', 'comma-separated: allow_other, default_permissions, ro, attr_timeout=S, entry_timeout=S, checksums, max_rpcs_in_flight=N, max_cached_mb=N, fuse=native|fuse-native', mountOptsArg)
    .option('--fuse <impl>', 'FUSE implementation: native (libfuse3) or fuse-native (fallback)', arg((v) => {
      if (v !== 'native' && v !== 'fuse-native') throw new Error('--fuse takes native or fuse-native');
      return v as FuseImpl;
    }))
    .option('--cache-dir <dirs>', 'local disk cache for file data, in these directories (several: DIR1:DIR2)')
    .option('--cache-size <size>', 'disk cache size over all its directories: MiB, or with a unit (100G); default 100G')
    .option('--free-space-ratio <ratio>', 'keep at least this fraction of each cache disk free (default 0.1)')
    .action(async (spec: FsSpec, mountpoint: string, o: { options?: MountOptions; fuse?: FuseImpl; cacheDir?: string; cacheSize?: string; freeSpaceRatio?: string }) => {
      const log = createLogger('mount');
      const diskCache = diskCacheOptions(o);
      const opts = { ...(o.options ?? DEFAULT_MOUNT_OPTIONS), ...(o.fuse ? { fuse: o.fuse } : {}), ...(diskCache ? { diskCache: { ...diskCache, dirs: diskCache.dirs.map((d) => resolve(d)) } } : {}) };
      await runDaemon('mount', log, async () => {
        const m = await mountStria(spec, resolve(mountpoint), opts, log);
        // Unmounted from outside (stria umount, fusermount3 -u): the client goes too.
        void m.session.done.then(async () => {
          await m.close();
          process.exit(0);
        });
        return m;
      });
    });

  program
    .command('umount')
    .alias('unmount')
    .description('unmount a Stria mountpoint (its stria mount process then exits)')
    .argument('<mountpoint>')
    .option('-l, --lazy', 'detach now even if busy')
    .action(async (mountpoint: string, o: { lazy?: boolean }) => {
      try {
        await unmountPath(resolve(mountpoint), o.lazy ?? false);
      } catch (e) {
        fail(`umount: ${toStriaError(e).message}`);
      }
    });

  return program;
}

/** Lustre's ldlm_timeout default */
const DEFAULT_LDLM_TIMEOUT_S = 20;

export async function main(argv: string[]): Promise<void> {
  await buildProgram().parseAsync(argv);
}
