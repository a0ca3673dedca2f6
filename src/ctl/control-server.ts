/**
 * Serves a process's parameter registry to `lctl` on a unix socket (see
 * protocol.ts). Requests are validated, each parameter read or write is bounded
 * in time, and the socket is removed on close.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { chmod, lstat, mkdir, stat, unlink } from 'node:fs/promises';
import { err, StriaError, toStriaError } from '../common/errno.js';
import { silentLogger, type Logger } from '../common/log.js';
import type { ParamRegistry } from './params.js';
import {
  ControlRequest,
  MAX_REQUEST_BYTES,
  runDir,
  socketPath,
  type ControlResponse,
  type ReadResult,
  type Role,
  type WireError,
  type WriteResult,
} from './protocol.js';

export interface ControlServerOptions {
  role: Role;
  /** distinguishes several servers of one role in one process (client mounts) */
  id?: string;
  /** default: runDir() */
  dir?: string;
  log?: Logger;
  /** longest a single parameter read or write may take (default 10 s) */
  opTimeoutMs?: number;
}

const IDLE_CONNECTION_MS = 10_000;
const servedHere = new Set<string>();

export class ControlServer {
  private readonly sockets = new Set<Socket>();
  private closing: Promise<void> | undefined;

  private constructor(
    readonly path: string,
    private readonly server: Server,
    private readonly registry: ParamRegistry,
    private readonly log: Logger,
    private readonly opTimeoutMs: number,
  ) {}

  static async start(registry: ParamRegistry, opts: ControlServerOptions): Promise<ControlServer> {
    const dir = opts.dir ?? runDir();
    const log = opts.log ?? silentLogger();
    await prepareDir(dir);
    const path = socketPath(dir, opts.role, process.pid, opts.id);
    if (servedHere.has(path)) throw err('EEXIST', `control socket ${path} is already served by this process`, 'CONTROL_SOCKET_IN_USE');
    // Same pid means the previous owner is gone (pid reuse after a crash): the file is stale.
    await unlink(path).catch(() => undefined);
    const server = createServer();
    const cs = new ControlServer(path, server, registry, log, opts.opTimeoutMs ?? 10_000);
    server.on('connection', (s) => cs.accept(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    }).catch((e: unknown) => {
      const se = toStriaError(e);
      throw new StriaError(se.errno, `cannot listen on control socket ${path}: ${se.message}`, se.code);
    });
    server.on('error', (e) => log.error({ err: e, path }, 'control socket error'));
    servedHere.add(path);
    await chmod(path, 0o600);
    log.info({ path }, 'control socket ready');
    return cs;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const s of this.sockets) s.destroy();
      await new Promise<void>((resolve) => this.server.close(() => resolve()));
      servedHere.delete(this.path);
      await unlink(this.path).catch(() => undefined);
    })();
    return this.closing;
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket);
    socket.setTimeout(IDLE_CONNECTION_MS, () => socket.destroy());
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', (e) => this.log.debug({ err: e.message }, 'control connection error'));
    let buf = '';
    let handled = false;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      if (handled) return;
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl < 0) {
        if (buf.length > MAX_REQUEST_BYTES) {
          handled = true;
          this.reply(socket, failure(err('E2BIG', `request longer than ${MAX_REQUEST_BYTES} bytes`, 'REQUEST_TOO_LARGE')));
        }
        return;
      }
      handled = true;
      void this.handle(buf.slice(0, nl)).then((r) => this.reply(socket, r));
    });
  }

  private reply(socket: Socket, r: ControlResponse): void {
    if (socket.destroyed) return;
    socket.end(`${JSON.stringify(r)}\n`);
  }

  private async handle(line: string): Promise<ControlResponse> {
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch {
      return failure(err('EINVAL', 'request is not JSON', 'BAD_REQUEST'));
    }
    const parsed = ControlRequest.safeParse(raw);
    if (!parsed.success) return failure(err('EINVAL', `bad request: ${parsed.error.issues[0]?.message ?? 'invalid'}`, 'BAD_REQUEST'));
    const req = parsed.data;
    try {
      switch (req.op) {
        case 'list':
          return {
            ok: true,
            nodes: this.registry.match(req.pattern, req.recursive).map((n) => ({ name: n.name, dir: n.param === undefined, writable: n.param?.set !== undefined })),
          };
        case 'get': {
          const nodes = this.registry.match(req.pattern, req.recursive);
          // Reads run side by side: one unreachable target must not hold up the others.
          const values = await Promise.all(
            nodes.flatMap((n): Array<Promise<ReadResult>> => {
              const p = n.param;
              if (!p) return [];
              const writable = p.set !== undefined;
              return [
                this.bounded(() => p.get(), `reading ${n.name}`).then(
                  (value) => ({ name: n.name, writable, value }),
                  (e: unknown) => ({ name: n.name, writable, error: wireError(e) }),
                ),
              ];
            }),
          );
          return { ok: true, values, matched: nodes.length };
        }
        case 'set': {
          const written: WriteResult[] = [];
          const nodes = this.registry.match(req.pattern);
          for (const n of nodes) {
            if (!n.param) continue;
            const setter = n.param.set;
            if (!setter) {
              written.push({ name: n.name, error: wireError(err('EACCES', `${n.name} is read-only`, 'READ_ONLY_PARAM')) });
              continue;
            }
            try {
              await this.bounded(() => setter.call(n.param, req.value), `setting ${n.name}`);
              this.log.info({ param: n.name, value: req.value }, 'parameter set');
              written.push({ name: n.name });
            } catch (e) {
              written.push({ name: n.name, error: wireError(e) });
            }
          }
          return { ok: true, written, matched: nodes.length };
        }
        case 'devices':
          return { ok: true, devices: this.registry.devices() };
        case 'call': {
          const fn = this.registry.commandNamed(req.method);
          if (!fn) return failure(err('EOPNOTSUPP', `this process has no command ${req.method}`, 'NO_SUCH_COMMAND'));
          const result = await this.bounded(() => fn(req.args), `running ${req.method}`, req.timeoutMs);
          return { ok: true, result: result ?? null };
        }
      }
    } catch (e) {
      return failure(e);
    }
  }

  private async bounded<T>(fn: () => T | Promise<T>, what: string, limitMs = this.opTimeoutMs): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(err('ETIMEDOUT', `${what} took longer than ${limitMs} ms`, 'PARAM_TIMEOUT')), limitMs);
    });
    try {
      return await Promise.race([Promise.resolve().then(fn), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}

function wireError(e: unknown): WireError {
  const se = toStriaError(e);
  return { errno: se.errno, code: se.code, message: se.message };
}

function failure(e: unknown): ControlResponse {
  return { ok: false, error: wireError(e) };
}

/** Creates the run directory 0700, and refuses one that is not a directory or is a symlink. */
async function prepareDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await lstat(dir);
  if (!st.isDirectory()) throw err('ENOTDIR', `control directory ${dir} is not a directory`, 'BAD_RUN_DIR');
  const uid = process.getuid?.();
  if ((st.mode & 0o077) !== 0 && (uid === undefined || st.uid === uid)) await chmod(dir, 0o700);
  const after = await stat(dir);
  if ((after.mode & 0o077) !== 0) throw err('EPERM', `control directory ${dir} is open to other users (mode ${(after.mode & 0o777).toString(8)})`, 'BAD_RUN_DIR');
}
