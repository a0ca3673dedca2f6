/**
 * lctl's side of the control protocol: finds the control sockets of this machine
 * (removing those of dead processes) and sends one request to one of them.
 */
import { connect } from 'node:net';
import { readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { err, StriaError, toStriaError } from '../common/errno.js';
import { MAX_RESPONSE_BYTES, parseSocketName, ROLES, runDir, type ControlRequest, type ControlResponse, type Role } from './protocol.js';

export interface Endpoint {
  path: string;
  role: Role;
  pid: number;
  id: string | undefined;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists but belongs to someone else
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The live control sockets in `dir`, in `lctl dl` order (MGS, MDS, OSS, clients). */
export async function findEndpoints(dir: string = runDir()): Promise<Endpoint[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw toStriaError(e);
  }
  const out: Endpoint[] = [];
  for (const name of names) {
    const p = parseSocketName(name);
    if (!p) continue;
    const path = join(dir, name);
    if (!alive(p.pid)) {
      await unlink(path).catch(() => undefined);
      continue;
    }
    out.push({ path, ...p });
  }
  return out.sort((a, b) => ROLES.indexOf(a.role) - ROLES.indexOf(b.role) || a.pid - b.pid || (a.id ?? '').localeCompare(b.id ?? ''));
}

/**
 * Sends one request; undefined when nobody listens there any more (the socket file
 * is then removed). Rejects on a timeout or a malformed answer.
 */
export function ask(ep: Endpoint, req: ControlRequest, timeoutMs = 60_000): Promise<ControlResponse | undefined> {
  return new Promise((resolve, reject) => {
    const sock = connect(ep.path);
    let buf = '';
    let done = false;
    const finish = (fn: () => void) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      fn();
    };
    const timer = setTimeout(
      () => finish(() => reject(err('ETIMEDOUT', `${ep.role} process ${ep.pid} did not answer within ${timeoutMs} ms`, 'CONTROL_TIMEOUT'))),
      timeoutMs,
    );
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(`${JSON.stringify(req)}\n`));
    sock.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_RESPONSE_BYTES) {
        finish(() => reject(err('E2BIG', `answer of ${ep.role} process ${ep.pid} is larger than ${MAX_RESPONSE_BYTES} bytes`, 'CONTROL_REPLY_TOO_LARGE')));
        return;
      }
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const line = buf.slice(0, nl);
      finish(() => {
        try {
          resolve(JSON.parse(line) as ControlResponse);
        } catch {
          reject(err('EPROTO', `${ep.role} process ${ep.pid} sent a malformed answer`, 'BAD_CONTROL_REPLY'));
        }
      });
    });
    sock.on('end', () => finish(() => reject(err('EPROTO', `${ep.role} process ${ep.pid} closed the connection without answering`, 'BAD_CONTROL_REPLY'))));
    sock.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ECONNREFUSED' || e.code === 'ENOENT') {
        // a socket file nobody listens on: left behind by a process that died
        finish(() => {
          if (e.code === 'ECONNREFUSED') void unlink(ep.path).catch(() => undefined);
          resolve(undefined);
        });
        return;
      }
      finish(() => reject(toStriaError(e)));
    });
  });
}

/** Runs a command of the process behind `ep` (see ParamRegistry.command) and returns its result. */
export async function call(ep: Endpoint, method: string, args: unknown, timeoutMs = 60_000): Promise<unknown> {
  const r = await ask(ep, { op: 'call', method, args, timeoutMs }, timeoutMs + 5_000);
  if (!r) throw err('ENODEV', `${ep.role} process ${ep.pid} is gone`, 'CONTROL_GONE');
  if (!r.ok) throw new StriaError(r.error.errno, r.error.message, r.error.code);
  if (!('result' in r)) throw err('EPROTO', `${ep.role} process ${ep.pid} sent a malformed answer`, 'BAD_CONTROL_REPLY');
  return r.result;
}
