/**
 * The local control protocol between `lctl` and the processes that own parameters
 * (daemons and mounted clients). Each process listens on a unix socket
 * `<run dir>/<role>-<pid>[-<id>].sock` (dir 0700, socket 0600: root only, like
 * Lustre's parameter files). One connection carries one request line of JSON
 * and gets one response line back.
 */
import { join } from 'node:path';
import { z } from 'zod';
import type { DeviceInfo } from './params.js';

export const DEFAULT_RUN_DIR = '/run/stria';

/** Where control sockets live: $STRIA_RUN_DIR, else /run/stria. */
export function runDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.STRIA_RUN_DIR && env.STRIA_RUN_DIR.length > 0 ? env.STRIA_RUN_DIR : DEFAULT_RUN_DIR;
}

/** Process roles, in the order `lctl dl` lists their devices. */
export const ROLES = ['mgs', 'mds', 'oss', 'client'] as const;
export type Role = (typeof ROLES)[number];

const SOCKET_NAME = /^(mgs|mds|oss|client)-(\d+)(?:-([A-Za-z0-9_]{1,64}))?\.sock$/;

export function socketName(role: Role, pid: number, id?: string): string {
  if (id !== undefined && !/^[A-Za-z0-9_]{1,64}$/.test(id)) throw new Error(`bad control socket id '${id}'`);
  return `${role}-${pid}${id === undefined ? '' : `-${id}`}.sock`;
}

export function socketPath(dir: string, role: Role, pid: number, id?: string): string {
  return join(dir, socketName(role, pid, id));
}

export function parseSocketName(name: string): { role: Role; pid: number; id: string | undefined } | undefined {
  const m = SOCKET_NAME.exec(name);
  if (!m) return undefined;
  return { role: m[1] as Role, pid: Number(m[2]), id: m[3] };
}

/** Largest request line a control server reads. */
export const MAX_REQUEST_BYTES = 64 * 1024;
/** Largest response line lctl reads. */
export const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

const pattern = z.string().min(1).max(4096);

export const ControlRequest = z.discriminatedUnion('op', [
  z.object({ op: z.literal('list'), pattern, recursive: z.boolean().optional() }),
  z.object({ op: z.literal('get'), pattern, recursive: z.boolean().optional() }),
  z.object({ op: z.literal('set'), pattern, value: z.string().max(4096) }),
  z.object({ op: z.literal('devices') }),
  /** a command of the process (e.g. a client mount's `cache.warmup`), with JSON arguments */
  z.object({ op: z.literal('call'), method: z.string().min(1).max(128), args: z.unknown().optional(), timeoutMs: z.number().int().positive().max(86_400_000).optional() }),
]);
export type ControlRequest = z.infer<typeof ControlRequest>;

export interface WireError {
  errno: number;
  code: string;
  message: string;
}

export interface ListedNode {
  name: string;
  dir: boolean;
  writable: boolean;
}

export interface ReadResult {
  name: string;
  writable: boolean;
  value?: string;
  error?: WireError;
}

export interface WriteResult {
  name: string;
  error?: WireError;
}

/** Devices travel as they are listed. */
export type WireDevice = DeviceInfo;

export type ControlResponse =
  | { ok: true; nodes: ListedNode[] }
  /** `matched` counts directories too: a pattern naming only directories is not an error */
  | { ok: true; values: ReadResult[]; matched: number }
  | { ok: true; written: WriteResult[]; matched: number }
  | { ok: true; devices: WireDevice[] }
  | { ok: true; result: unknown }
  | { ok: false; error: WireError };
