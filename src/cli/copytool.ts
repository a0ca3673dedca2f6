/**
 * `stria copytool`: the HSM agent daemon.
 *
 *   stria copytool --archive N [--archive M ...] (--s3 URL | --posix DIR) [--workers N]
 *       [--part-size SIZE] [--queue-size N] [--region R] [--access-key K --secret-key S]
 *       [--path-style | --no-path-style] [--create-bucket] MGSNID:/FSNAME
 *
 * Also what `stria up --archive` runs inside the all-in-one process.
 */
import { Command, Option } from 'commander';
import { toStriaError } from '../common/errno.js';
import type { Logger } from '../common/log.js';
import { createLogger } from '../common/log.js';
import { parseSize } from '../common/units.js';
import { formatNid, type Nid } from '../lnet/nid.js';
import { StriaClient } from '../client/client.js';
import { parseFsSpec, type FsSpec } from '../client/fs-spec.js';
import { startClientControl, type ClientControl } from '../ctl/client-params.js';
import { LliteStats } from '../ctl/llite-stats.js';
import type { ArchiveBackend } from '../hsm/archive-backend.js';
import { parsePosixDir, parseS3Url, type ArchiveTarget } from '../hsm/archive-url.js';
import { PosixBackend } from '../hsm/backend-posix.js';
import { S3Backend, validatePartSize } from '../hsm/backend-s3.js';
import { Copytool } from '../hsm/copytool.js';
import { validated } from './args.js';
import { fail, runDaemon } from './daemon.js';

export interface ArchiveBackendOptions {
  /** S3: multipart part size */
  partSize?: number;
  /** S3: parts in flight per file */
  queueSize?: number;
  region?: string;
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** S3: override the URL's default addressing */
  pathStyle?: boolean;
  /** S3: create the bucket when missing; POSIX: create the directory */
  create?: boolean;
}

/** The backend for a target, checked usable (bucket reachable, directory present). */
export async function openArchiveBackend(target: ArchiveTarget, o: ArchiveBackendOptions = {}): Promise<ArchiveBackend> {
  if (target.kind === 'posix') return PosixBackend.open(target.root, { create: o.create });
  const s3 = new S3Backend({
    bucket: target.bucket,
    prefix: target.prefix,
    endpoint: target.endpoint,
    region: o.region,
    credentials: o.credentials,
    forcePathStyle: o.pathStyle ?? target.pathStyle,
    partSize: o.partSize,
    queueSize: o.queueSize,
  });
  try {
    await s3.checkBucket(o.create ?? false);
  } catch (e) {
    await s3.close();
    throw e;
  }
  return s3;
}

export interface CopytoolDaemonOptions extends ArchiveBackendOptions {
  mgsNids: Nid[];
  fsname: string;
  archiveIds: number[];
  target: ArchiveTarget;
  workers?: number;
  /** where the lctl control socket goes (default $STRIA_RUN_DIR or /run/stria) */
  runDir?: string;
}

export interface RunningCopytool {
  copytool: Copytool;
  backend: ArchiveBackend;
  close(): Promise<void>;
}

/**
 * Opens the archive, mounts a client of its own, publishes it to lctl (its imports show in
 * `lctl dl` like any client's) and registers as the agent of the archive ids.
 */
export async function startCopytool(o: CopytoolDaemonOptions, log: Logger): Promise<RunningCopytool> {
  const backend = await openArchiveBackend(o.target, o);
  let client: StriaClient | undefined;
  let ctl: ClientControl | undefined;
  try {
    client = await StriaClient.mount({ mgsNids: o.mgsNids, fsname: o.fsname }, log);
    try {
      ctl = await startClientControl(client, new LliteStats(), { runDir: o.runDir, log });
    } catch (e) {
      const se = toStriaError(e);
      log.warn({ err: se.message, code: se.code }, 'no control socket: lctl will not see this copytool');
    }
    const copytool = await Copytool.start({ client, archiveIds: o.archiveIds, backend, workers: o.workers, log });
    log.info(
      {
        fsname: o.fsname, mgs: o.mgsNids.map(formatNid).join(','), archiveIds: o.archiveIds, archive: backend.describe(), workers: o.workers ?? 4,
        // what lctl get_param mdt.*.hsm.agents lists this agent as
        uuid: client.mdc.imp.clientUuid,
      },
      'copytool started',
    );
    return {
      copytool,
      backend,
      close: async () => {
        await ctl?.close().catch(() => undefined);
        await copytool.stop();
      },
    };
  } catch (e) {
    await ctl?.close().catch(() => undefined);
    await client?.unmount().catch(() => undefined);
    await backend.close().catch(() => undefined);
    throw e;
  }
}

function parseArchiveId(v: string): number {
  const n = /^(0x[0-9a-f]+|\d+)$/i.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > 0xffffffff) throw new Error(`archive id '${v}': must be 1..4294967295`);
  return n;
}

function parseWorkers(v: string): number {
  const n = /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new Error(`--workers '${v}': must be 1..256`);
  return n;
}

function parseQueueSize(v: string): number {
  const n = /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new Error(`--queue-size '${v}': must be 1..64`);
  return n;
}

function parsePartSize(v: string): number {
  const n = parseSize(v);
  validatePartSize(n);
  return n;
}

function parseCopytoolSpec(v: string): FsSpec {
  const spec = parseFsSpec(v);
  if (spec.path.length > 0) throw new Error(`'${v}': a copytool serves a whole filesystem: MGSNID:/FSNAME without a path`);
  return spec;
}

interface CopytoolCliOptions {
  archive: number[];
  s3?: ReturnType<typeof parseS3Url>;
  posix?: ReturnType<typeof parsePosixDir>;
  workers: number;
  partSize?: number;
  queueSize?: number;
  region?: string;
  accessKey?: string;
  secretKey?: string;
  pathStyle?: boolean;
  createBucket?: boolean;
}

/** Adds `copytool` to the stria program. */
export function addCopytoolCommand(program: Command): void {
  program
    .command('copytool')
    .description('run an HSM copytool: move file data between the OSTs and an S3 bucket or a directory for the coordinator')
    .argument('<spec>', 'the filesystem: MGSNID[,NID]:/FSNAME', validated(parseCopytoolSpec))
    .requiredOption('--archive <id>', 'archive id to serve (repeat for more)', (v: string, prev: number[] | undefined) => [...(prev ?? []), validated(parseArchiveId)(v)])
    .option('--s3 <url>', 'archive in S3: http(s)://HOST[:PORT]/BUCKET[/PREFIX] (MinIO, Ceph RGW...) or s3://BUCKET[/PREFIX] (AWS)', validated(parseS3Url))
    .option('--posix <dir>', 'archive in a directory (must exist)', validated((v: string) => parsePosixDir(v)))
    .option('--workers <n>', 'actions run in parallel', validated(parseWorkers), 4)
    .option('--part-size <size>', 'S3 multipart part size (>= 5M); smaller files go in one PUT (default 8M)', validated(parsePartSize))
    .option('--queue-size <n>', 'S3 parts uploaded at once per file (default 4)', validated(parseQueueSize))
    .option('--region <region>', 'S3 region (default: AWS_REGION, else us-east-1 for an http(s) endpoint)')
    .option('--access-key <id>', 'S3 access key id (default: AWS_ACCESS_KEY_ID or the AWS profile)')
    .option('--secret-key <key>', 'S3 secret access key (default: AWS_SECRET_ACCESS_KEY; prefer the variable: arguments show in ps)')
    .addOption(new Option('--path-style', 'S3 path-style addressing, http://host/bucket/key (default for http(s):// URLs)'))
    .addOption(new Option('--no-path-style', 'S3 virtual-hosted addressing, http://bucket.host/key (default for s3:// URLs)'))
    .option('--create-bucket', 'create the S3 bucket when it does not exist')
    .action(async (spec: FsSpec, o: CopytoolCliOptions) => {
      if ((o.s3 === undefined) === (o.posix === undefined)) fail('copytool: give one of --s3 URL or --posix DIR');
      if ((o.accessKey === undefined) !== (o.secretKey === undefined)) fail('copytool: --access-key and --secret-key go together');
      if (o.posix && (o.partSize !== undefined || o.queueSize !== undefined || o.region !== undefined || o.accessKey !== undefined || o.pathStyle !== undefined || o.createBucket)) {
        fail('copytool: S3 options given with --posix');
      }
      const archiveIds = [...new Set(o.archive)];
      const log = createLogger('copytool');
      await runDaemon('copytool', log, async () =>
        startCopytool(
          {
            mgsNids: spec.mgsNids, fsname: spec.fsname, archiveIds, target: (o.s3 ?? o.posix)!, workers: o.workers,
            partSize: o.partSize, queueSize: o.queueSize, region: o.region, pathStyle: o.pathStyle, create: o.createBucket,
            credentials: o.accessKey !== undefined && o.secretKey !== undefined ? { accessKeyId: o.accessKey, secretAccessKey: o.secretKey } : undefined,
          },
          log,
        ),
      );
    });
}
