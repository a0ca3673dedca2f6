/**
 * A mount with PCC for tests: what `stria mount` does (src/fuse/mount.ts), in this process,
 * plus startPcc, so a test can read the mount's OST counters directly. Everything on the
 * mount itself must go through child processes (sh): this process answers its FUSE requests.
 */
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StriaClient } from '../../src/client/client.js';
import { StriaFs } from '../../src/fuse/stria-fs.js';
import { createSession } from '../../src/fuse/session-factory.js';
import type { FuseSession } from '../../src/fuse/lowlevel.js';
import { LliteStats } from '../../src/ctl/llite-stats.js';
import { startClientControl, type ClientControl } from '../../src/ctl/client-params.js';
import { startPcc, type PccService } from '../../src/client/pcc/index.js';
import { formatNid } from '../../src/lnet/nid.js';
import { createLogger, silentLogger } from '../../src/common/log.js';
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { STRIA_BIN, TestCluster } from './cluster.js';
import { sh, TestMount } from './mount.js';

export const LFS = `node ${join(STRIA_BIN, '..', 'lfs.js')}`;
export const LCTL = `node ${join(STRIA_BIN, '..', 'lctl.js')}`;

export class PccMount {
  private constructor(
    readonly client: StriaClient,
    readonly fs: StriaFs,
    readonly session: FuseSession,
    readonly control: ClientControl,
    readonly pcc: PccService,
    readonly mountpoint: string,
    private readonly base: string,
  ) {}

  static async start(cluster: TestCluster): Promise<PccMount> {
    const base = await mkdtemp(join(tmpdir(), 'stria-pcc-mnt-'));
    await chmod(base, 0o755);
    const mountpoint = join(base, 'mnt');
    await mkdir(mountpoint);
    const log = process.env.STRIA_PCC_TEST_LOG ? createLogger('pcc-test', 'debug') : silentLogger();
    const client = await StriaClient.mount({ mgsNids: [cluster.mgsNid], fsname: cluster.fsname, timeoutMs: 30_000 }, log);
    const llite = new LliteStats();
    const fs = new StriaFs(client, { attrTimeout: 0, entryTimeout: 0, llite }, client.root);
    let session: FuseSession | undefined;
    let control: ClientControl | undefined;
    try {
      session = await createSession('native', mountpoint, fs, {
        fsname: `${formatNid(cluster.mgsNid)}:/${cluster.fsname}`,
        subtype: 'stria',
        allowOther: true,
        defaultPermissions: true,
        maxWrite: 1 << 20,
        maxReadahead: 1 << 20,
        writebackCache: false,
        autoUnmount: true,
        requestTimeoutMs: 330_000,
      });
      fs.attachSession(session);
      await session.mount();
      control = await startClientControl(client, llite, { runDir: cluster.runDir, log, mountpoint });
      const pcc = await startPcc({ client, fs, registry: control.registry, mountpoint, log });
      return new PccMount(client, fs, session, control, pcc, mountpoint, base);
    } catch (e) {
      await session?.unmount().catch(() => undefined);
      await control?.close().catch(() => undefined);
      await client.unmount().catch(() => undefined);
      await rm(base, { recursive: true, force: true });
      throw e;
    }
  }

  path(...parts: string[]): string {
    return join(this.mountpoint, ...parts);
  }

  /** bytes this mount read from / wrote to the OSTs */
  ostBytes(): { read: number; written: number } {
    let read = 0;
    let written = 0;
    for (const o of this.client.ostClients()) {
      read += o.stats.readBytes;
      written += o.stats.writeBytes;
    }
    return { read, written };
  }

  /** As mount.ts should: no FUSE request may reach PCC once it is closed. */
  async stop(): Promise<void> {
    const unmounted = await Promise.race([
      this.session.unmount().then(() => true, () => false),
      new Promise<false>((r) => setTimeout(() => r(false), 20_000).unref()),
    ]);
    if (!unmounted) await sh(`umount -l ${this.mountpoint} 2>/dev/null; true`);
    await this.pcc.close().catch(() => undefined);
    await this.control.close().catch(() => undefined);
    await this.client.unmount().catch(() => undefined);
    await rm(this.base, { recursive: true, force: true });
  }
}

/** Runs an lfs / lctl command line against the cluster's control sockets. */
export function tool(cluster: TestCluster, cmd: string): ReturnType<typeof sh> {
  return sh(`STRIA_RUN_DIR=${cluster.runDir} ${cmd}`);
}

/** What a PCC test works with: a cluster, the PCC mount A, an ordinary mount B, a scratch dir and a PCC dir in it. */
export interface PccTestbed {
  cluster: TestCluster;
  a: PccMount;
  b: TestMount;
  work: string;
  pccdir: string;
  /** runs a shell command against the cluster's daemons; fails the test unless it exits 0 */
  ok(cmd: string): Promise<string>;
  /** sha256 of a file, by sha256sum */
  fileSha(path: string): Promise<string>;
}

/**
 * Registers before/after hooks in the calling describe that start the testbed and stop it;
 * the returned object is filled in by the before hook.
 */
export function pccTestbed(prefix: string): PccTestbed {
  const bed = {} as PccTestbed;
  bed.ok = async (cmd) => {
    const r = await tool(bed.cluster, cmd);
    assert.equal(r.code, 0, `${cmd}: ${r.stderr}`);
    return r.stdout;
  };
  bed.fileSha = async (path) => (await bed.ok(`sha256sum ${path}`)).split(' ')[0]!;
  before(async () => {
    bed.cluster = await TestCluster.start({ osts: 2, stripeCount: 2, stripeSize: '1M' });
    bed.a = await PccMount.start(bed.cluster);
    bed.b = await TestMount.start(bed.cluster);
    bed.work = await mkdtemp(join(tmpdir(), prefix));
    bed.pccdir = join(bed.work, 'pcc');
    await mkdir(bed.pccdir, { recursive: true });
  }, { timeout: 120_000 });
  after(async () => {
    await bed.b?.stop();
    await bed.a?.stop();
    await bed.cluster?.stop();
    if (bed.work) await rm(bed.work, { recursive: true, force: true });
  }, { timeout: 120_000 });
  return bed;
}
