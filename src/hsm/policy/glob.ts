/**
 * Path globs of policy rules: `*` matches within one path component, `**` across
 * components (also none), `?` one character other than '/', `[abc]`, `[a-z]`, `[!a]`
 * a class. A pattern without a leading '/' may match at any depth ("*.tmp" is "**\/*.tmp").
 */
import { err } from '../../common/errno.js';

export interface Glob {
  readonly source: string;
  test(text: string): boolean;
}

const SPECIAL = /[\\^$.*+?()[\]{}|/-]/;

function escape(ch: string): string {
  return SPECIAL.test(ch) ? `\\${ch}` : ch;
}

function toRegExpSource(p: string): string {
  let out = '';
  for (let i = 0; i < p.length; i++) {
    const ch = p[i]!;
    if (ch === '*') {
      if (p[i + 1] === '*') {
        // "**/" also matches no directory at all
        if (p[i + 2] === '/') {
          out += '(?:.*/)?';
          i += 2;
        } else {
          out += '.*';
          i += 1;
        }
      } else out += '[^/]*';
    } else if (ch === '?') out += '[^/]';
    else if (ch === '[') {
      const end = p.indexOf(']', i + 2);
      if (end < 0) throw err('EINVAL', `unclosed '[' in glob '${p}'`, 'BAD_GLOB');
      let body = p.slice(i + 1, end);
      const negate = body[0] === '!' || body[0] === '^';
      if (negate) body = body.slice(1);
      out += `[${negate ? '^/' : ''}${body.replace(/[\\\]^]/g, (c) => `\\${c}`)}]`;
      i = end;
    } else out += escape(ch);
  }
  return out;
}

/** A glob for paths from the filesystem root, or file names when it holds no '/'. */
export function compileGlob(pattern: string, opts: { anyDepth?: boolean } = {}): Glob {
  const anchored = pattern.startsWith('/') || opts.anyDepth === false;
  const src = anchored ? toRegExpSource(pattern) : `(?:.*/)?${toRegExpSource(pattern)}`;
  let re: RegExp;
  try {
    re = new RegExp(`^${src}$`, 's');
  } catch (e) {
    throw err('EINVAL', `bad glob '${pattern}': ${(e as Error).message}`, 'BAD_GLOB');
  }
  return { source: pattern, test: (text) => re.test(text) };
}
