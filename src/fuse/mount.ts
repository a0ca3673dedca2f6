/**
 * Mounting: connect a StriaClient, resolve the fileset (subdirectory) to
 * mount, clear a dead mount left on the mountpoint, start a FUSE session.
 */
import { execFile } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { Logger } from '../common/log.js';
import { err, toStriaError } from '../common/errno.js';
import { fidToString } from '../common/fid.js';
import { StriaClient } from '../client/client.js';
import { resolvePath, type FsSpec } from '../client/fs-spec.js';
import { formatNid } from '../lnet/nid.js';
import type { FuseSession } from './lowlevel.js';
import { createSession } from './session-factory.js';
import { StriaFs } from './stria-fs.js';
import { LliteStats } from '../ctl/llite-stats.js';
import { startClientControl } from '../ctl/client-params.js';
import { SsdCache } from '../client/cache/ssd-cache.js';
import { startPcc } from '../client/pcc/index.js';
import type { MountOptions } from './mount-options.js';

const run = promisify(execFile);
/**
 * A request waiting for a lost server must outlast the client's recovery wait (300 s) plus
 * one RPC timeout, or an OST outage of a few minutes would turn waiting reads into ETIMEDOUT.
 */
const REQUEST_TIMEOUT_MS = 330_000;

export interface MountedStria {
  client: StriaClient;
  session: FuseSession;
  fs: StriaFs;
  mountpoint: string;
  source: string;
  close(): Promise<void>;
}

/** The mount source as /proc/mounts shows it: MGS NIDs, fsname and fileset. */
export function mountSource(spec: FsSpec): string {
  return `${spec.mgsNids.map(formatNid).join(',')}:/${[spec.fsname, ...spec.path].join('/')}`;
}

/** A FUSE mount whose process died answers ENOTCONN: lazily unmount it so we can mount again. */
export async function clearDeadMount(mountpoint: string, log: Logger): Promise<void> {
  try {
    await stat(mountpoint);
    return;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOTCONN' && code !== 'ECONNABORTED') return;
  }
  log.warn({ mountpoint }, 'clearing a dead mount left on the mountpoint');
  await run('umount', ['-l', mountpoint]).catch(() => run('fusermount3', ['-u', '-z', mountpoint]));
}

export async function mountStria(spec: FsSpec, mountpoint: string, o: MountOptions, log: Logger): Promise<MountedStria> {
  await clearDeadMount(mountpoint, log);
  const st = await stat(mountpoint).catch(() => undefined);
  if (!st?.isDirectory()) throw err('ENOTDIR', `mountpoint ${mountpoint} is not a directory`, 'BAD_MOUNTPOINT');
  const ssd = o.diskCache
    ? await SsdCache.open({ dirs: o.diskCache.dirs, maxBytes: o.diskCache.sizeBytes, freeSpaceRatio: o.diskCache.freeSpaceRatio, log })
    : undefined;
  let client: StriaClient;
  try {
    client = await StriaClient.mount(
      {
        mgsNids: spec.mgsNids,
        fsname: spec.fsname,
        checksums: o.checksums,
        maxRpcsInFlight: o.maxRpcsInFlight,
        timeoutMs: 30_000,
        cache: { ssd, ...(o.maxCachedBytes !== undefined ? { maxCachedBytes: o.maxCachedBytes } : {}) },
      },
      log,
    );
  } catch (e) {
    await ssd?.close();
    throw e;
  }
  try {
    const root = await resolvePath(client, spec.path);
    if (root.attr.type !== 'dir') throw err('ENOTDIR', `/${spec.path.join('/')} is not a directory of ${spec.fsname}`, 'BAD_FILESET');
    const llite = new LliteStats();
    const fs = new StriaFs(client, { attrTimeout: o.attrTimeout, entryTimeout: o.entryTimeout, llite }, root.attr.fid);
    const source = mountSource(spec);
    const extra = o.readOnly ? ['ro'] : [];
    const session = await createSession(o.fuse, mountpoint, fs, {
      fsname: source,
      subtype: 'stria',
      allowOther: o.allowOther,
      defaultPermissions: o.defaultPermissions,
      maxWrite: 1 << 20,
      maxReadahead: 1 << 20,
      writebackCache: o.writebackCache,
      autoUnmount: true,
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
      extraOptions: extra,
    });
    fs.attachSession(session);
    await session.mount();
    const ctl = await startClientControl(client, llite, { log, mountpoint, fileset: spec.path });
    const pcc = await startPcc({ client, fs, registry: ctl.registry, mountpoint, log });
    log.info({ mountpoint, source, root: fidToString(root.attr.fid), fuse: o.fuse, cacheDirs: o.diskCache?.dirs }, 'mounted');
    let closed = false;
    return {
      client, session, fs, mountpoint, source,
      close: async () => {
        if (closed) return;
        closed = true;
        await session.unmount().catch((e) => log.warn({ err: toStriaError(e).message }, 'unmount failed'));
        // after the session: a late request on a read-write PCC file still finds its agent
        await pcc.close().catch((e) => log.warn({ err: toStriaError(e).message }, 'stopping PCC failed'));
        await ctl.close();
        await client.unmount();
        log.info({ mountpoint }, 'unmounted');
      },
    };
  } catch (e) {
    await client.unmount();
    throw e;
  }
}
