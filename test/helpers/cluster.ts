/**
 * A real cluster for tests: MGS, MDS and OSS daemons as separate processes
 * (bin/stria.js) on loopback ports, with kill -9 and restart.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatNid, parseNid, type Nid } from '../../src/lnet/nid.js';
import { StriaClient, type ClientOptions } from '../../src/client/client.js';

const here = dirname(fileURLToPath(import.meta.url));
export const STRIA_BIN = join(here, '..', '..', '..', 'bin', 'stria.js');

import { freePort } from './free-port.js';
export { freePort, freePortRange } from './free-port.js';

interface Role {
  name: string;
  args: string[];
  ready: (line: Record<string, unknown>) => boolean;
  proc?: ChildProcess;
  output: string[];
}

export interface ClusterOptions {
  /** the MDS's --store: a Redis URL instead of the embedded store in the cluster directory */
  mdsStore?: string;
  osts?: number;
  fsname?: string;
  stripeSize?: string;
  stripeCount?: number;
  /** seconds a client has to answer a lock callback before the servers evict it (`--ldlm-timeout`) */
  ldlmTimeout?: number;
}

export class TestCluster {
  readonly roles = new Map<string, Role>();
  readonly mgsNid: Nid;
  /** the daemons' control sockets (STRIA_RUN_DIR): what lctl get_param talks to */
  readonly runDir: string;
  private readonly readyOsts = new Set<number>();

  private constructor(
    readonly dir: string,
    readonly fsname: string,
    readonly ostCount: number,
    readonly ports: { mgs: number; mds: number; oss: number[] },
  ) {
    this.mgsNid = parseNid(`127.0.0.1:${ports.mgs}@tcp`);
    this.runDir = join(dir, 'run');
  }

  static async start(opts: ClusterOptions = {}): Promise<TestCluster> {
    const dir = await mkdtemp(join(tmpdir(), 'stria-cluster-'));
    const n = opts.osts ?? 3;
    const ports = { mgs: await freePort(), mds: await freePort(), oss: [] as number[] };
    for (let i = 0; i < n; i++) ports.oss.push(await freePort());
    const c = new TestCluster(dir, opts.fsname ?? 'testfs', n, ports);
    await mkdir(join(dir, 'mgs'));
    await mkdir(join(dir, 'mdt0'));
    for (let i = 0; i < n; i++) await mkdir(join(dir, `ost${i}`));
    const mgs = `127.0.0.1:${ports.mgs}@tcp`;
    c.roles.set('mgs', { name: 'mgs', args: ['mgs', '--dir', join(dir, 'mgs'), '--listen', mgs], ready: (l) => l.msg === 'MGS started', output: [] });
    const ldlmArgs = opts.ldlmTimeout === undefined ? [] : ['--ldlm-timeout', String(opts.ldlmTimeout)];
    for (let i = 0; i < n; i++) {
      c.roles.set(`oss${i}`, {
        name: `oss${i}`,
        args: ['oss', '--fsname', c.fsname, '--mgs', mgs, '--ost', `${i}:${join(dir, `ost${i}`)}`, '--listen', `127.0.0.1:${ports.oss[i]}@tcp`, ...ldlmArgs],
        ready: (l) => l.msg === 'OST started',
        output: [],
      });
    }
    const mdsArgs = ['mds', '--fsname', c.fsname, '--mgs', mgs, '--store', opts.mdsStore ?? join(dir, 'mdt0'), '--listen', `127.0.0.1:${ports.mds}@tcp`];
    if (opts.stripeSize) mdsArgs.push('--stripe-size', opts.stripeSize);
    if (opts.stripeCount) mdsArgs.push('--stripe-count', String(opts.stripeCount));
    mdsArgs.push(...ldlmArgs);
    c.roles.set('mds', { name: 'mds', args: mdsArgs, ready: (l) => l.msg === 'MDT started', output: [] });
    try {
      await c.startRole('mgs');
      for (let i = 0; i < n; i++) await c.startRole(`oss${i}`);
      await c.startRole('mds');
      await c.waitOstsReady();
    } catch (e) {
      await c.stop();
      throw e;
    }
    return c;
  }

  ostDir(index: number): string {
    return join(this.dir, `ost${index}`);
  }

  async startRole(name: string, timeoutMs = 20_000): Promise<void> {
    const role = this.roles.get(name);
    if (!role) throw new Error(`no role ${name}`);
    if (name === 'mds') this.readyOsts.clear();
    const proc = spawn(process.execPath, [STRIA_BIN, ...role.args], {
      env: { ...process.env, STRIA_LOG_LEVEL: 'info', STRIA_RUN_DIR: this.runDir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    role.proc = proc;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name} did not start in ${timeoutMs} ms:\n${role.output.slice(-20).join('\n')}`)), timeoutMs);
      let buf = '';
      proc.stdout!.on('data', (chunk: Buffer) => {
        buf += chunk.toString();
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          role.output.push(line);
          if (role.output.length > 500) role.output.shift();
          try {
            const rec = JSON.parse(line) as Record<string, unknown>;
            if (role.ready(rec)) {
              clearTimeout(timer);
              resolve();
            }
            if (rec.msg === 'OST precreate pool ready' && typeof rec.ost === 'number') this.readyOsts.add(rec.ost);
          } catch {
            // not a log line
          }
        }
      });
      proc.stderr!.on('data', (chunk: Buffer) => role.output.push(chunk.toString().trimEnd()));
      proc.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${name} exited (code ${code}, signal ${signal}):\n${role.output.slice(-20).join('\n')}`));
      });
    });
  }

  /** Waits until the MDS has precreated objects on every OST. */
  async waitOstsReady(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.readyOsts.size < this.ostCount) {
      if (Date.now() > deadline) throw new Error(`MDS saw only OSTs ${[...this.readyOsts]} ready:\n${this.roles.get('mds')!.output.slice(-20).join('\n')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async kill9(name: string): Promise<void> {
    const role = this.roles.get(name);
    const proc = role?.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      proc.once('exit', () => resolve());
      proc.kill('SIGKILL');
    });
  }

  async signal(name: string, sig: NodeJS.Signals): Promise<number | null> {
    const proc = this.roles.get(name)?.proc;
    if (!proc || proc.exitCode !== null) return proc?.exitCode ?? null;
    return new Promise((resolve) => {
      proc.once('exit', (code) => resolve(code));
      proc.kill(sig);
    });
  }

  /** The filesystem spec lfs and mount take, MGSNID:/FSNAME[/PATH]. */
  spec(...path: string[]): string {
    return [`${formatNid(this.mgsNid)}:/${this.fsname}`, ...path].join('/');
  }

  async mount(opts: Partial<ClientOptions> = {}): Promise<StriaClient> {
    return StriaClient.mount({ mgsNids: [this.mgsNid], fsname: this.fsname, timeoutMs: 20_000, ...opts });
  }

  async stop(): Promise<void> {
    for (const name of [...this.roles.keys()].reverse()) await this.kill9(name);
    await rm(this.dir, { recursive: true, force: true });
  }
}
