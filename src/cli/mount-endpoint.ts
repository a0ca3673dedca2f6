/**
 * From an ordinary path to the control socket of the `stria mount` process serving it:
 * the longest fuse.stria mount holding the path (the kernel's mount table), then the
 * client endpoint whose `mount.info` names that mountpoint.
 */
import { realpath } from 'node:fs/promises';
import { err, StriaError, toStriaError } from '../common/errno.js';
import { parseFsSpec } from '../client/fs-spec.js';
import { call, findEndpoints, type Endpoint } from '../ctl/control-client.js';
import type { MountInfo } from '../ctl/cache-commands.js';
import { strerror } from './lfs-session.js';
import { MOUNTINFO, STRIA_FSTYPE, mountOf, pathInMount, readMountTable, type MountEntry } from './mount-table.js';

/** How long a mount process has to say which mount it serves. */
const INFO_TIMEOUT_MS = 10_000;

export interface MountClient {
  mount: MountEntry;
  endpoint: Endpoint;
  info: MountInfo;
}

export interface MountEndpointOptions {
  /** control sockets' directory (runDir() by default) */
  runDir?: string;
  /** the mount table (STRIA_MOUNTINFO, else /proc/self/mountinfo) */
  mountinfo?: string;
}

async function canonical(path: string): Promise<string> {
  return realpath(path).catch(() => path);
}

export class MountEndpoints {
  private table: Promise<MountEntry[]> | undefined;
  private clients: Promise<Array<{ endpoint: Endpoint; info: MountInfo }>> | undefined;
  private readonly byMount = new Map<number, Promise<MountClient>>();

  constructor(private readonly opts: MountEndpointOptions = {}) {}

  private mounts(): Promise<MountEntry[]> {
    this.table ??= readMountTable(this.opts.mountinfo ?? process.env.STRIA_MOUNTINFO ?? MOUNTINFO);
    return this.table;
  }

  /** Every live client process and the mount it serves (processes that do not answer are left out). */
  private liveClients(): Promise<Array<{ endpoint: Endpoint; info: MountInfo }>> {
    this.clients ??= (async () => {
      const eps = (await findEndpoints(this.opts.runDir)).filter((e) => e.role === 'client');
      const got = await Promise.all(
        eps.map(async (endpoint) => {
          try {
            const info = (await call(endpoint, 'mount.info', undefined, INFO_TIMEOUT_MS)) as MountInfo;
            if (info.mountpoint !== undefined) info.mountpoint = await canonical(info.mountpoint);
            return { endpoint, info };
          } catch {
            return undefined;
          }
        }),
      );
      return got.filter((g): g is { endpoint: Endpoint; info: MountInfo } => g !== undefined);
    })();
    return this.clients;
  }

  private async clientOf(mount: MountEntry): Promise<MountClient> {
    const clients = await this.liveClients();
    const exact = clients.filter((c) => c.info.mountpoint === mount.mountpoint);
    if (exact.length > 0) return { mount, ...exact[exact.length - 1]! };
    // A mount process that does not know its mountpoint: the only one of that filesystem will do.
    let fsname: string | undefined;
    try {
      fsname = parseFsSpec(mount.source).fsname;
    } catch {
      fsname = undefined;
    }
    const unnamed = clients.filter((c) => c.info.mountpoint === undefined && c.info.fsname === fsname);
    if (unnamed.length === 1) return { mount, ...unnamed[0]! };
    throw err(
      'ENODEV',
      `no running stria mount process serves ${mount.mountpoint} (its control socket should be in $STRIA_RUN_DIR or /run/stria)`,
      'NO_MOUNT_CLIENT',
    );
  }

  /** The client serving an absolute, symlink-free path, and the path's components below the mount's root. */
  async forPath(absPath: string): Promise<{ client: MountClient; path: string[] }> {
    const mount = mountOf(await this.mounts(), absPath);
    if (!mount || mount.fstype !== STRIA_FSTYPE) throw err('EINVAL', 'not on a Stria filesystem', 'NOT_STRIA');
    let p = this.byMount.get(mount.mountId);
    if (!p) {
      p = this.clientOf(mount);
      this.byMount.set(mount.mountId, p);
    }
    // A bind mount shows a directory of the filesystem: the components start from its root.
    return { client: await p, path: pathInMount(mount, absPath) };
  }
}

/** `PATH: No such file or directory`, as the tools print a failed file. */
export function fileError(path: string, e: unknown): StriaError {
  const se = toStriaError(e);
  // node's own message ("ENOENT: no such file or directory, lstat '...'") repeats the path
  const text = /^E[A-Z]+: /.test(se.message) ? strerror(se.errno) : se.message;
  return new StriaError(se.errno, `${path}: ${text}`, se.code);
}

/** An argument as an absolute path without symbolic links (they are resolved through the mount, like realpath(1)). */
export async function realPathArg(arg: string): Promise<string> {
  try {
    return await realpath(arg);
  } catch (e) {
    throw fileError(arg, e);
  }
}
