/**
 * A real redis-server for tests: a child process on a loopback port with its
 * own data directory, persisting every write (AOF, appendfsync always), that
 * can be killed -9 and restarted on the same port and data.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './free-port.js';

const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;

/** The redis-server binary on PATH (or in the usual places), undefined when it is not installed. */
export function findRedisServer(): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/bin', '/usr/local/bin', '/usr/sbin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const file = path.join(dir, 'redis-server');
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

export const REDIS_MISSING = 'redis-server is not installed (apt-get install redis-server); the Redis store tests need a real server';

export interface RedisServerOptions {
  /** AOF sync policy (default always) */
  appendfsync?: 'always' | 'everysec' | 'no';
  /** more `--name value` arguments */
  args?: string[];
}

/**
 * Servers not stopped yet. A test or bench that ends with kill() (or not at
 * all) still leaves no redis-server running and no data directory behind.
 */
const live = new Set<RedisServer>();
process.once('exit', () => {
  for (const server of live) server.abandon();
});

export class RedisServer {
  private proc: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private output = '';

  private constructor(
    readonly bin: string,
    readonly port: number,
    readonly dir: string,
    private readonly argv: string[],
  ) {}

  /** Starts a server in a new temporary directory on a free port and waits until it answers PING. */
  static async start(opts: RedisServerOptions = {}): Promise<RedisServer> {
    const bin = findRedisServer();
    if (!bin) throw new Error(REDIS_MISSING);
    return RedisServer.startWith(bin, (port, dir) => [
      '--port', String(port),
      '--bind', '127.0.0.1',
      '--save', '',
      '--dir', dir,
      '--daemonize', 'no',
      '--logfile', '',
      '--appendonly', 'yes',
      '--appendfsync', opts.appendfsync ?? 'always',
      ...(opts.args ?? []),
    ]);
  }

  /** Starts a Sentinel that watches `master` under the name `masterName`. */
  static async startSentinel(master: RedisServer, masterName: string): Promise<RedisServer> {
    return RedisServer.startWith(master.bin, (port, dir) => {
      const conf = path.join(dir, 'sentinel.conf');
      // Sentinel rewrites its configuration file, so it must be a file of its own
      fs.writeFileSync(
        conf,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${dir}`,
          'logfile ""',
          `sentinel monitor ${masterName} 127.0.0.1 ${master.port} 1`,
          '',
        ].join('\n'),
      );
      return [conf, '--sentinel'];
    });
  }

  private static async startWith(bin: string, argv: (port: number, dir: string) => string[]): Promise<RedisServer> {
    let lastError: unknown;
    // the port may be taken between choosing and binding it: choose again
    for (let attempt = 0; attempt < 5; attempt++) {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stria-redis-'));
      const port = await freePort();
      const server = new RedisServer(bin, port, dir, argv(port, dir));
      live.add(server);
      try {
        await server.launch();
        return server;
      } catch (e) {
        lastError = e;
        await server.stop();
      }
    }
    throw lastError;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}/0`;
  }

  get running(): boolean {
    return this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /**
   * SIGKILL: no shutdown, no final save; what the AOF holds is what survives.
   * The data directory stays for restart(); stop() (or process exit) removes it.
   */
  async kill(): Promise<void> {
    if (this.running) this.proc!.kill('SIGKILL');
    await this.exited;
  }

  /** Starts the server again on the same port and data directory. */
  async restart(): Promise<void> {
    await this.kill();
    await this.launch();
  }

  /** Stops the server (SIGTERM, then SIGKILL) and removes its data directory. */
  async stop(): Promise<void> {
    if (this.running) {
      this.proc!.kill('SIGTERM');
      const stopped = await Promise.race([this.exited.then(() => true), sleep(STOP_TIMEOUT_MS).then(() => false)]);
      if (!stopped) await this.kill();
    }
    await this.exited;
    fs.rmSync(this.dir, { recursive: true, force: true });
    live.delete(this);
  }

  /** At process exit (synchronous): kill the server if it still runs, remove its directory. */
  abandon(): void {
    if (this.running) this.proc!.kill('SIGKILL');
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  private async launch(): Promise<void> {
    this.output = '';
    const proc = spawn(this.bin, this.argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    this.exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    const keep = (d: Buffer): void => {
      this.output = (this.output + d.toString()).slice(-8000);
    };
    proc.stdout!.on('data', keep);
    proc.stderr!.on('data', keep);
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (let i = 0; i < 10_000; i++) {
      if (!this.running) throw new Error(`redis-server on port ${this.port} exited while starting: ${this.output}`);
      if (await ping(this.port)) return;
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new Error(`redis-server on port ${this.port} did not answer PING within ${START_TIMEOUT_MS} ms: ${this.output}`);
      }
      await sleep(20);
    }
  }
}

/** True when a server on the port answers PING (and is done loading its data). */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let reply = '';
    const finish = (ok: boolean): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), 1000);
    sock.on('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d) => {
      reply += d.toString();
      // NOAUTH: up, and wants a password (--requirepass); LOADING: not ready yet
      if (reply.includes('\r\n')) finish(reply.startsWith('+PONG') || reply.startsWith('-NOAUTH'));
    });
    sock.on('error', () => finish(false));
    sock.on('close', () => finish(false));
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
