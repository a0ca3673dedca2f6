/** `stria up`: MGS + MDS + N OSTs (and optionally a copytool and a mount) in one process, data under one directory. */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../common/log.js';
import { parseNid, formatNid } from '../lnet/nid.js';
import { startMgs } from '../mgs/mgs.js';
import { startMds, type RunningMds } from '../mds/mds.js';
import { startOss } from '../oss/oss.js';
import { ostName, mdtName } from '../common/targets.js';
import { clearDeadMount, mountStria } from '../fuse/mount.js';
import type { MountOptions } from '../fuse/mount-options.js';
import { describeStore } from '../mds/store/open.js';
import type { ArchiveTarget } from '../hsm/archive-url.js';
import { startCopytool } from './copytool.js';

export interface UpOptions {
  dir: string;
  fsname: string;
  osts: number;
  listen: string;
  mgsPort: number;
  stripeSize: number;
  stripeCount: number;
  mount?: string;
  mountOptions: MountOptions;
  /** a Redis URL for the MDT's metadata instead of the embedded store under `dir` */
  store?: string;
  /**
   * run a copytool for archive id 1 into this S3 bucket (created when missing; credentials
   * and region from AWS_*) or directory (created when missing)
   */
  archive?: ArchiveTarget;
}

const READY_WAIT_MS = 30_000;
/** the archive `up --archive` serves (lfs hsm_archive's default) */
const UP_ARCHIVE_ID = 1;

async function waitForOsts(mds: RunningMds, count: number): Promise<void> {
  const deadline = Date.now() + READY_WAIT_MS;
  while (mds.allocator.allOsts().filter((o) => o.active).length < count) {
    if (Date.now() > deadline) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

function gib(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(1)} GiB`;
}

export async function startUp(o: UpOptions, log: Logger, print: (s: string) => void): Promise<{ close(): Promise<void> }> {
  const dirs = { mgs: join(o.dir, 'mgs'), mdt: join(o.dir, 'mdt0'), osts: Array.from({ length: o.osts }, (_, i) => join(o.dir, `ost${i}`)) };
  for (const d of [dirs.mgs, dirs.mdt, ...dirs.osts]) await mkdir(d, { recursive: true });
  const nid = (port: number) => parseNid(`${o.listen}:${port}@tcp`);
  const closers: Array<{ close(): Promise<void> }> = [];
  const closeAll = async () => {
    for (const c of closers.reverse()) await c.close().catch(() => undefined);
  };
  try {
    const mgs = await startMgs({ dir: dirs.mgs, listen: nid(o.mgsPort) }, log);
    closers.push(mgs);
    const mgsNids = [mgs.nid];
    const oss = await startOss({ fsname: o.fsname, targets: dirs.osts.map((dir, index) => ({ index, dir })), mgsNids, listen: nid(o.mgsPort + 2) }, log);
    closers.push(oss);
    const mds = await startMds(
      { fsname: o.fsname, index: 0, storeDir: o.store ?? dirs.mdt, mgsNids, listen: nid(o.mgsPort + 1), fsDefault: { stripeSize: o.stripeSize, stripeCount: o.stripeCount } },
      log,
    );
    closers.push(mds);
    await waitForOsts(mds, o.osts);
    const spec = `${formatNid(mgs.nid)}:/${o.fsname}`;
    const lines = [
      `Stria ${o.fsname} is up (data in ${o.dir})`,
      `  MGS                 ${formatNid(mgs.nid)}`,
      `  ${mdtName(o.fsname, 0).padEnd(20)}${formatNid(mds.nid)}  ${describeStore(o.store ?? dirs.mdt)}`,
    ];
    for (const [i, store] of oss.stores.entries()) {
      const s = await store.statfs();
      lines.push(`  ${ostName(o.fsname, i).padEnd(20)}${formatNid(oss.nid)}  ${store.dir}  ${gib(s.bavail * s.bsize)} free of ${gib(s.blocks * s.bsize)}`);
    }
    if (o.archive) {
      const ct = await startCopytool({ mgsNids, fsname: o.fsname, archiveIds: [UP_ARCHIVE_ID], target: o.archive, create: true }, log);
      closers.push(ct);
      lines.push(`  copytool            archive ${UP_ARCHIVE_ID} -> ${ct.backend.describe()}`);
    }
    lines.push(`  mount spec          ${spec}`);
    if (o.mount) {
      await clearDeadMount(o.mount, log);
      await mkdir(o.mount, { recursive: true });
      const m = await mountStria({ mgsNids, fsname: o.fsname, path: [], text: spec }, o.mount, o.mountOptions, log);
      closers.push(m);
      lines.push(`  mounted on          ${o.mount}`);
    } else {
      lines.push(`  mount it with       stria mount ${spec} /mnt/${o.fsname}`);
    }
    print(lines.join('\n'));
    log.info({ fsname: o.fsname, mgs: formatNid(mgs.nid), osts: o.osts, dir: o.dir, mountpoint: o.mount }, `filesystem ready: mount spec ${spec}`);
    return { close: closeAll };
  } catch (e) {
    await closeAll();
    throw e;
  }
}
