/**
 * Parameter paths and their patterns, as lctl sees them: dotted components where
 * a NID inside a device name (`mgc.MGC192.168.1.1@tcp.import`,
 * `obdfilter.*.exports.10.0.0.5@tcp.uuid`) keeps its dots (lctl's clean_path()),
 * and each component is matched like a shell glob: `*`, `?`, `[abc]`, `[a-z]`, `[!a]`.
 */

/** Splits "a.b.c" into components; the NID after ".MGC" or ".exports." stays whole. */
export function splitParamPath(path: string): string[] {
  let nidStart = -1;
  let nidEnd = -1;
  if (path.includes('@')) {
    const exp = path.indexOf('.exports.');
    const mgc = path.indexOf('.MGC');
    if (exp >= 0) nidStart = exp + '.exports.'.length;
    else if (mgc >= 0) nidStart = mgc + 1;
    if (nidStart >= 0) {
      const at = path.indexOf('@', nidStart);
      if (at < 0) nidStart = -1;
      else {
        const dot = path.indexOf('.', at);
        nidEnd = dot < 0 ? path.length : dot;
      }
    }
  }
  const parts: string[] = [];
  let cur = '';
  for (let i = 0; i < path.length; i++) {
    const ch = path[i]!;
    if (ch === '.' && !(i >= nidStart && i < nidEnd)) {
      parts.push(cur);
      cur = '';
    } else {
      cur += ch;
    }
  }
  parts.push(cur);
  return parts;
}

export function joinParamPath(parts: readonly string[]): string {
  return parts.join('.');
}

const cache = new Map<string, RegExp>();

/** fnmatch(3) of one component, without FNM_PERIOD: `*` also matches a leading dot. */
export function globMatch(pattern: string, text: string): boolean {
  let re = cache.get(pattern);
  if (!re) {
    re = new RegExp(`^${globToRegExpSource(pattern)}$`, 's');
    if (cache.size > 1000) cache.clear();
    cache.set(pattern, re);
  }
  return re.test(text);
}

export function hasGlob(pattern: string): boolean {
  return /[*?[]/.test(pattern);
}

function escapeRe(ch: string): string {
  return /[\\^$.*+?()[\]{}|/-]/.test(ch) ? `\\${ch}` : ch;
}

function globToRegExpSource(p: string): string {
  let out = '';
  for (let i = 0; i < p.length; i++) {
    const ch = p[i]!;
    if (ch === '*') out += '.*';
    else if (ch === '?') out += '.';
    else if (ch === '[') {
      const cls = bracket(p, i);
      if (cls) {
        out += cls.source;
        i = cls.end;
      } else {
        out += '\\[';
      }
    } else out += escapeRe(ch);
  }
  return out;
}

/** A bracket expression starting at p[start] === '['; undefined when it is not closed (then '[' is literal). */
function bracket(p: string, start: number): { source: string; end: number } | undefined {
  let i = start + 1;
  let negate = false;
  if (p[i] === '!' || p[i] === '^') {
    negate = true;
    i++;
  }
  let body = '';
  let first = true;
  for (; i < p.length; i++) {
    const ch = p[i]!;
    if (ch === ']' && !first) return { source: `[${negate ? '^' : ''}${body}]`, end: i };
    first = false;
    if (ch === '-' && body.length > 0 && p[i + 1] !== undefined && p[i + 1] !== ']') body += '-';
    else body += escapeRe(ch);
  }
  return undefined;
}
