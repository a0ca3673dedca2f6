/** Error messages as Lustre's tools word them: "cannot access 'x': No such file or directory". */
import { Errno, StriaError, toStriaError } from '../common/errno.js';
import { strerror } from './lfs-session.js';

const PATH_ERRNOS: ReadonlySet<number> = new Set([Errno.ENOENT, Errno.ENOTDIR, Errno.ELOOP, Errno.EACCES, Errno.ENAMETOOLONG]);

/** A failed lookup of an argument, named by the argument. */
export function describeLookupError(arg: string, e: unknown): StriaError {
  const se = toStriaError(e);
  if (PATH_ERRNOS.has(se.errno)) return new StriaError(se.errno, `cannot access '${arg}': ${strerror(se.errno)}`, se.code);
  if (se.message.includes(arg)) return se;
  return new StriaError(se.errno, `${arg}: ${se.message}`, se.code);
}
