/** OST lists as lctl pool_add takes them: OST0003, testfs-OST0003_UUID, OST[0-7/2], plain indexes. */
import { err } from '../common/errno.js';

export function parseOstList(args: string[]): number[] {
  const out: number[] = [];
  for (const a of args) {
    for (const part of a.split(',').filter((s) => s.length > 0)) out.push(...parseOne(part));
  }
  return [...new Set(out)].sort((x, y) => x - y);
}

function parseOne(spec: string): number[] {
  const range = /^(?:[A-Za-z0-9_-]+-)?OST\[([0-9a-fA-F]+)-([0-9a-fA-F]+)(?:\/(\d+))?\](?:_UUID)?$/.exec(spec);
  if (range) {
    const a = parseInt(range[1]!, 16);
    const b = parseInt(range[2]!, 16);
    const step = range[3] ? Number(range[3]) : 1;
    if (b < a || step < 1 || b - a > 65535) throw err('EINVAL', `invalid OST range '${spec}'`, 'BAD_OST_LIST');
    const list: number[] = [];
    for (let i = a; i <= b; i += step) list.push(i);
    return list;
  }
  const one = /^(?:[A-Za-z0-9_-]+-)?OST([0-9a-fA-F]{4})(?:_UUID)?$/.exec(spec);
  if (one) return [parseInt(one[1]!, 16)];
  if (/^\d+$/.test(spec) && Number(spec) <= 0xffff) return [Number(spec)];
  throw err('EINVAL', `'${spec}' is not an OST (examples: OST0003, testfs-OST0003_UUID, OST[0-7/2])`, 'BAD_OST_LIST');
}
