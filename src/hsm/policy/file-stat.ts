/**
 * What the policy index keeps of a file, read without taking locks: the MDT's inode,
 * then each object's attributes straight from its OST. Lock-free on purpose: the index
 * only orders candidates, and a cached lock held by the engine on every file it ever
 * looked at would cost each later writer a callback. Before acting on a file the engine
 * reads it again under locks (StriaClient.getattr).
 */
import type { StriaClient } from '../../client/client.js';
import { mergeAttrs } from '../../client/lov.js';
import type { Fid } from '../../common/fid.js';
import type { Inode } from '../../common/inode.js';
import type { ObjAttr } from '../../common/statfs.js';
import { compareTime, type Timestamp } from '../../common/time.js';
import type { ObjectSpace } from './file-index.js';

export interface FileFacts {
  inode: Inode;
  size: number;
  mtime: number;
  atime: number;
  ctime: number;
  objects: ObjectSpace[];
}

export function toMs(t: Timestamp): number {
  return t.sec * 1000 + Math.floor(t.nsec / 1e6);
}

function latest(a: Timestamp, b: Timestamp | undefined): Timestamp {
  return b && compareTime(b, a) > 0 ? b : a;
}

/** Throws ENOENT when the file is gone. */
export async function statFile(client: StriaClient, fid: Fid): Promise<FileFacts> {
  const inode = await client.mdc.getattr(fid);
  const layout = inode.layout;
  if (inode.type !== 'reg' || !layout || layout.pattern !== 'raid0' || layout.objects.length === 0) {
    return { inode, size: inode.size, mtime: toMs(inode.mtime), atime: toMs(inode.atime), ctime: toMs(inode.ctime), objects: [] };
  }
  if (layout.objects.some((o) => !client.ostClients().some((c) => c.index === o.ostIdx))) await client.refreshConfig();
  const oscs = new Map(client.ostClients().map((c) => [c.index, c]));
  const attrs: ObjAttr[] = await Promise.all(
    layout.objects.map(async (o) => {
      const osc = oscs.get(o.ostIdx);
      const zero = { sec: 0, nsec: 0 };
      if (!osc) return { size: 0, blocks: 0, atime: zero, mtime: zero, ctime: zero };
      return osc.getattr(o.seq, o.oid);
    }),
  );
  const m = mergeAttrs(layout, attrs);
  return {
    inode,
    size: m.size,
    mtime: toMs(latest(inode.mtime, m.mtime)),
    atime: toMs(latest(inode.atime, m.atime)),
    ctime: toMs(latest(inode.ctime, m.ctime)),
    objects: layout.objects.map((o, i) => ({ ost: o.ostIdx, bytes: attrs[i]!.blocks * 512 })),
  };
}
