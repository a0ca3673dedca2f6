/**
 * Errors that cross the wire and reach FUSE carry a positive errno, a stable
 * code (the errno's symbolic name unless more specific) and a human message.
 */
import { constants } from 'node:os';

export const Errno = {
  EPERM: constants.errno.EPERM,
  ENOENT: constants.errno.ENOENT,
  EIO: constants.errno.EIO,
  ENXIO: constants.errno.ENXIO,
  E2BIG: constants.errno.E2BIG,
  EBADF: constants.errno.EBADF,
  EAGAIN: constants.errno.EAGAIN,
  EINTR: constants.errno.EINTR,
  ENOMEM: constants.errno.ENOMEM,
  EACCES: constants.errno.EACCES,
  EFAULT: constants.errno.EFAULT,
  EBUSY: constants.errno.EBUSY,
  EEXIST: constants.errno.EEXIST,
  EXDEV: constants.errno.EXDEV,
  ENODEV: constants.errno.ENODEV,
  ENOTDIR: constants.errno.ENOTDIR,
  EISDIR: constants.errno.EISDIR,
  EINVAL: constants.errno.EINVAL,
  EFBIG: constants.errno.EFBIG,
  ENOSPC: constants.errno.ENOSPC,
  ESPIPE: constants.errno.ESPIPE,
  EROFS: constants.errno.EROFS,
  EMLINK: constants.errno.EMLINK,
  ERANGE: constants.errno.ERANGE,
  EDEADLK: constants.errno.EDEADLK,
  ENAMETOOLONG: constants.errno.ENAMETOOLONG,
  ENOSYS: constants.errno.ENOSYS,
  ENOTEMPTY: constants.errno.ENOTEMPTY,
  ELOOP: constants.errno.ELOOP,
  ENODATA: constants.errno.ENODATA ?? 61,
  EPROTO: constants.errno.EPROTO,
  EBADMSG: constants.errno.EBADMSG,
  EOVERFLOW: constants.errno.EOVERFLOW,
  EOPNOTSUPP: constants.errno.EOPNOTSUPP,
  ENOTCONN: constants.errno.ENOTCONN,
  ECONNREFUSED: constants.errno.ECONNREFUSED,
  ETIMEDOUT: constants.errno.ETIMEDOUT,
  ESHUTDOWN: (constants.errno as Record<string, number>).ESHUTDOWN ?? 108,
  ESTALE: constants.errno.ESTALE,
  EDQUOT: constants.errno.EDQUOT,
  ECANCELED: constants.errno.ECANCELED,
  ENOTSUP: constants.errno.ENOTSUP,
} as const;

export type ErrnoName = keyof typeof Errno;

const nameByNumber = new Map<number, string>();
for (const [name, num] of Object.entries(Errno)) if (!nameByNumber.has(num)) nameByNumber.set(num, name);

export function errnoName(errno: number): string {
  return nameByNumber.get(errno) ?? `E${errno}`;
}

export class StriaError extends Error {
  /** positive errno, as FUSE wants it negated */
  readonly errno: number;
  /** stable machine-readable code, e.g. "ENOENT" or "BULK_CHECKSUM" */
  readonly code: string;

  constructor(errno: number, message: string, code?: string) {
    super(message);
    this.name = 'StriaError';
    this.errno = errno;
    this.code = code ?? errnoName(errno);
  }
}

export function err(name: ErrnoName, message: string, code?: string): StriaError {
  return new StriaError(Errno[name], message, code);
}

/** Converts anything thrown into a StriaError (node fs errors keep their errno). */
export function toStriaError(e: unknown): StriaError {
  if (e instanceof StriaError) return e;
  if (e && typeof e === 'object') {
    const ne = e as { errno?: number; code?: string; message?: string };
    if (typeof ne.code === 'string' && ne.code in Errno) {
      return new StriaError(Errno[ne.code as ErrnoName], ne.message ?? ne.code, ne.code);
    }
    if (typeof ne.errno === 'number' && ne.errno !== 0) {
      const n = Math.abs(ne.errno);
      return new StriaError(n, ne.message ?? errnoName(n));
    }
  }
  return new StriaError(Errno.EIO, e instanceof Error ? e.message : String(e), 'EIO');
}
