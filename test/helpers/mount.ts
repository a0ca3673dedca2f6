/**
 * A real mount for tests: `stria mount` as its own process against a
 * TestCluster, with kill -9 and remount, and helpers to run ordinary tools.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { formatNid } from '../../src/lnet/nid.js';
import { STRIA_BIN, type TestCluster } from './cluster.js';

const exec = promisify(execFile);

export interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command, optionally as another user (setpriv), never throwing on a non-zero exit. */
export async function sh(cmd: string, opts: { uid?: number; gid?: number; cwd?: string; timeoutMs?: number } = {}): Promise<ToolResult> {
  const argv = opts.uid === undefined
    ? ['bash', '-c', cmd]
    : ['setpriv', `--reuid=${opts.uid}`, `--regid=${opts.gid ?? opts.uid}`, '--clear-groups', 'bash', '-c', cmd];
  try {
    const r = await exec(argv[0]!, argv.slice(1), { cwd: opts.cwd, timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 << 20 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === 'number' ? x.code : 1, stdout: x.stdout ?? '', stderr: x.stderr ?? '' };
  }
}

export class TestMount {
  proc: ChildProcess | undefined;
  output: string[] = [];

  private constructor(
    readonly cluster: TestCluster,
    readonly mountpoint: string,
    readonly options: string,
    private readonly base: string,
    /** more `stria mount` arguments, e.g. --cache-dir DIR */
    readonly extraArgs: string[] = [],
  ) {}

  static async start(cluster: TestCluster, options = 'allow_other,default_permissions', extraArgs: string[] = []): Promise<TestMount> {
    const base = await mkdtemp(join(tmpdir(), 'stria-mnt-'));
    // Other users must be able to reach the mountpoint.
    await chmod(base, 0o755);
    const m = new TestMount(cluster, join(base, 'mnt'), options, base, extraArgs);
    await exec('mkdir', ['-p', m.mountpoint]);
    await m.mount();
    return m;
  }

  get spec(): string {
    return `${formatNid(this.cluster.mgsNid)}:/${this.cluster.fsname}`;
  }

  async mount(timeoutMs = 30_000): Promise<void> {
    const proc = spawn(process.execPath, [STRIA_BIN, 'mount', this.spec, this.mountpoint, '-o', this.options, ...this.extraArgs], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, STRIA_LOG_LEVEL: 'info', STRIA_RUN_DIR: this.cluster.runDir },
    });
    this.proc = proc;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`mount did not come up:\n${this.output.slice(-20).join('\n')}`)), timeoutMs);
      let buf = '';
      proc.stdout!.on('data', (d: Buffer) => {
        buf += d.toString();
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          this.output.push(line);
          if (this.output.length > 300) this.output.shift();
          if (line.includes('"msg":"mounted"')) {
            clearTimeout(timer);
            resolve();
          }
        }
      });
      proc.stderr!.on('data', (d: Buffer) => this.output.push(d.toString().trimEnd()));
      proc.once('exit', (code, sig) => {
        clearTimeout(timer);
        reject(new Error(`stria mount exited (${code ?? sig}):\n${this.output.slice(-20).join('\n')}`));
      });
    });
  }

  path(...parts: string[]): string {
    return join(this.mountpoint, ...parts);
  }

  async kill9(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    await new Promise<void>((r) => {
      p.once('exit', () => r());
      p.kill('SIGKILL');
    });
  }

  /** Clean unmount through the CLI; the mount process exits on its own. */
  async unmount(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    await sh(`node ${STRIA_BIN} umount ${this.mountpoint}`);
    const timer = setTimeout(() => p.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  }

  async stop(): Promise<void> {
    await this.unmount().catch(() => undefined);
    await this.kill9();
    await sh(`umount -l ${this.mountpoint} 2>/dev/null; true`);
    await rm(this.base, { recursive: true, force: true });
  }
}
