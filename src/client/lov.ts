/**
 * Striped I/O over a file's objects (Lustre's LOV): splits a file range by
 * stripe, talks to every OST at once, and derives the file size from the
 * objects (reference §2.1, §5 "File size").
 */
import { err } from '../common/errno.js';
import { compareTime, type Timestamp } from '../common/time.js';
import { fileSizeFromObject, mapExtent, objectSizeForFileSize, type Raid0Layout } from '../common/layout.js';
import type { ObjAttr, OstClient } from './osc.js';

export interface MergedObjAttrs {
  size: number;
  blocks: number;
  mtime?: Timestamp;
  ctime?: Timestamp;
  atime?: Timestamp;
}

export class StripedIo {
  constructor(private readonly osc: (ostIdx: number) => OstClient) {}

  /** Size, blocks and latest times over all objects (a "glimpse"). */
  async glimpse(layout: Raid0Layout): Promise<MergedObjAttrs> {
    const attrs = await Promise.all(layout.objects.map((o) => this.osc(o.ostIdx).getattr(o.seq, o.oid)));
    return mergeAttrs(layout, attrs);
  }

  /**
   * Reads [offset, offset+length). Bytes no object holds are holes (zero) below the file
   * size; the result is cut at the file size, which is only fetched when some object turned
   * out shorter than the range. A range that one RPC reply covers whole is that reply's
   * bulk, not a copy of it.
   */
  async read(layout: Raid0Layout, offset: number, length: number): Promise<Buffer> {
    if (length === 0 || layout.objects.length === 0) return Buffer.alloc(0);
    const extents = mapExtent(offset, length, layout.stripeSize, layout.objects.length);
    const replies = extents.map(() => [] as Array<{ objOff: number; data: Buffer }>);
    const got = await Promise.all(
      extents.map((ext, i) => {
        const obj = layout.objects[ext.stripe]!;
        return this.osc(obj.ostIdx).read(obj.seq, obj.oid, ext.objStart, ext.objEnd - ext.objStart, (objOff, data) => {
          replies[i]!.push({ objOff, data });
        });
      }),
    );
    const only = replies.length === 1 && extents[0]!.pieces.length === 1 && replies[0]!.length === 1 ? replies[0]![0]! : undefined;
    if (only && only.data.length === length) return only.data;
    const out = Buffer.allocUnsafe(length);
    let anyShort = false;
    extents.forEach((ext, i) => {
      for (const r of replies[i]!) scatter(ext.pieces, r.objOff, r.data, out, offset);
      if (got[i]! < ext.objEnd - ext.objStart) {
        anyShort = true;
        zeroFrom(ext.pieces, ext.objStart + got[i]!, out, offset);
      }
    });
    if (!anyShort) return out;
    const { size } = await this.glimpse(layout);
    return out.subarray(0, Math.max(0, Math.min(length, size - offset)));
  }

  async write(layout: Raid0Layout, offset: number, data: Buffer, sync = false): Promise<void> {
    if (data.length === 0) return;
    if (layout.pattern !== 'raid0' || layout.objects.length === 0) throw err('EIO', 'file has no objects to write to', 'NO_OBJECTS');
    const extents = mapExtent(offset, data.length, layout.stripeSize, layout.objects.length);
    await Promise.all(
      extents.map((ext) => {
        const obj = layout.objects[ext.stripe]!;
        const parts = ext.pieces.map((p) => data.subarray(p.fileOffset - offset, p.fileOffset - offset + p.length));
        return this.osc(obj.ostIdx).write(obj.seq, obj.oid, ext.objStart, parts, sync);
      }),
    );
  }

  /** Sets the file size to `size` by punching every object to its share. */
  async truncate(layout: Raid0Layout, size: number): Promise<void> {
    const n = layout.objects.length;
    await Promise.all(
      layout.objects.map((o, i) => this.osc(o.ostIdx).punch(o.seq, o.oid, objectSizeForFileSize(size, i, layout.stripeSize, n))),
    );
  }

  async sync(layout: Raid0Layout): Promise<void> {
    await Promise.all(layout.objects.map((o) => this.osc(o.ostIdx).sync(o.seq, o.oid)));
  }

  async setTimes(layout: Raid0Layout, attrs: { atime?: Timestamp; mtime?: Timestamp }): Promise<void> {
    await Promise.all(layout.objects.map((o) => this.osc(o.ostIdx).setattr(o.seq, o.oid, attrs)));
  }
}

export function mergeAttrs(layout: Raid0Layout, attrs: ObjAttr[]): MergedObjAttrs {
  const n = layout.objects.length;
  const merged: MergedObjAttrs = { size: 0, blocks: 0 };
  attrs.forEach((a, i) => {
    merged.size = Math.max(merged.size, fileSizeFromObject(a.size, i, layout.stripeSize, n));
    merged.blocks += a.blocks;
    merged.mtime = later(merged.mtime, a.mtime);
    merged.ctime = later(merged.ctime, a.ctime);
    merged.atime = later(merged.atime, a.atime);
  });
  return merged;
}

function later(a: Timestamp | undefined, b: Timestamp): Timestamp {
  return a === undefined || compareTime(b, a) > 0 ? b : a;
}

/** Copies object bytes starting at object offset `objOff` to their places in the file buffer. */
function scatter(pieces: Array<{ fileOffset: number; objectOffset: number; length: number }>, objOff: number, data: Buffer, out: Buffer, base: number): void {
  const objEnd = objOff + data.length;
  for (const p of pieces) {
    const s = Math.max(p.objectOffset, objOff);
    const e = Math.min(p.objectOffset + p.length, objEnd);
    if (s >= e) continue;
    data.copy(out, p.fileOffset - base + (s - p.objectOffset), s - objOff, e - objOff);
  }
}

/** Zero-fills the file-buffer places of object bytes from `objFrom` onward (holes or beyond EOF). */
function zeroFrom(pieces: Array<{ fileOffset: number; objectOffset: number; length: number }>, objFrom: number, out: Buffer, base: number): void {
  for (const p of pieces) {
    const s = Math.max(p.objectOffset, objFrom);
    const e = p.objectOffset + p.length;
    if (s >= e) continue;
    const at = p.fileOffset - base + (s - p.objectOffset);
    out.fill(0, at, at + (e - s));
  }
}
