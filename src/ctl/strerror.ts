/** strerror(3) texts as glibc prints them, so lctl's messages read like Lustre's. */
import { getSystemErrorMap } from 'node:util';
import { Errno } from '../common/errno.js';

const GLIBC: Record<number, string> = {
  [Errno.EPERM]: 'Operation not permitted',
  [Errno.ENOENT]: 'No such file or directory',
  [Errno.EIO]: 'Input/output error',
  [Errno.E2BIG]: 'Argument list too long',
  [Errno.EAGAIN]: 'Resource temporarily unavailable',
  [Errno.ENOMEM]: 'Cannot allocate memory',
  [Errno.EACCES]: 'Permission denied',
  [Errno.EBUSY]: 'Device or resource busy',
  [Errno.EEXIST]: 'File exists',
  [Errno.ENODEV]: 'No such device',
  [Errno.ENOTDIR]: 'Not a directory',
  [Errno.EINVAL]: 'Invalid argument',
  [Errno.ENOSPC]: 'No space left on device',
  [Errno.ERANGE]: 'Numerical result out of range',
  [Errno.EPROTO]: 'Protocol error',
  [Errno.EOPNOTSUPP]: 'Operation not supported',
  [Errno.ENOTCONN]: 'Transport endpoint is not connected',
  [Errno.ESHUTDOWN]: 'Cannot send after transport endpoint shutdown',
  [Errno.ETIMEDOUT]: 'Connection timed out',
  [Errno.ECONNREFUSED]: 'Connection refused',
};

export function strerror(errno: number): string {
  const known = GLIBC[errno];
  if (known) return known;
  const uv = getSystemErrorMap().get(-errno)?.[1];
  return uv ? uv.charAt(0).toUpperCase() + uv.slice(1) : `Unknown error ${errno}`;
}
