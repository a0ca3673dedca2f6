/**
 * Output formats of lfs, as Lustre's liblustreapi prints them (reference
 * §2.6, §2.7): lov_dump_user_lmm_header / _v1v3 for getstripe, showdf for df.
 */
import { fidToString, type Fid } from '../common/fid.js';
import { LOV_USER_MAGIC_V1, LOV_USER_MAGIC_V3, type LayoutTemplate, type OstObject, type Raid0Layout } from '../common/layout.js';

/** What getstripe prints (Lustre's VERBOSE_* bits). */
export const V = {
  COUNT: 0x1,
  SIZE: 0x2,
  OFFSET: 0x4,
  POOL: 0x8,
  DETAIL: 0x10,
  OBJID: 0x20,
  GENERATION: 0x40,
  MDTINDEX: 0x80,
  PATTERN: 0x100,
  DFID: 0x200,
} as const;
export const V_DEFAULT = V.COUNT | V.SIZE | V.OFFSET | V.POOL | V.OBJID | V.GENERATION | V.PATTERN;

/** A layout as getstripe shows it: a file's layout or a directory's default. */
export interface LovView {
  isDir: boolean;
  /** file: its FID (lmm_oi); directory: its own FID (shown by -v and -F) */
  fid: Fid;
  magic: number;
  stripeCount: number;
  stripeSize: number;
  pattern: string;
  layoutGen: number;
  /** files: the OST of stripe 0; directories: the requested first OST or -1 */
  stripeOffset: number;
  pool?: string;
  objects: OstObject[];
  /** a directory without a default layout of its own, showing the one it falls back to */
  inherited?: boolean;
}

export function fileLovView(fid: Fid, layout: Raid0Layout): LovView {
  const released = layout.pattern === 'released';
  return {
    isDir: false,
    fid,
    magic: layout.pool !== undefined ? LOV_USER_MAGIC_V3 : LOV_USER_MAGIC_V1,
    stripeCount: released ? layout.stripeCount : layout.objects.length,
    stripeSize: layout.stripeSize,
    pattern: released ? 'released' : 'raid0',
    layoutGen: layout.layoutGen,
    stripeOffset: layout.objects[0]?.ostIdx ?? layout.stripeOffset,
    pool: layout.pool,
    objects: released ? [] : layout.objects,
  };
}

/**
 * A directory default as getstripe shows it: fields the template leaves
 * unset come from `fallback` (the filesystem default) unless `raw`.
 */
export function dirLovView(
  fid: Fid,
  tpl: LayoutTemplate,
  fallback: { stripeCount: number; stripeSize: number },
  opts: { raw?: boolean; inherited?: boolean } = {},
): LovView {
  return {
    isDir: true,
    fid,
    magic: tpl.pool !== undefined ? LOV_USER_MAGIC_V3 : LOV_USER_MAGIC_V1,
    stripeCount: tpl.stripeCount || (opts.raw ? 0 : fallback.stripeCount),
    stripeSize: tpl.stripeSize || (opts.raw ? 0 : fallback.stripeSize),
    pattern: 'raid0',
    layoutGen: 0,
    stripeOffset: tpl.stripeOffset !== undefined && tpl.stripeOffset >= 0 ? tpl.stripeOffset : -1,
    pool: tpl.pool,
    objects: [],
    inherited: opts.inherited,
  };
}

/** C's "%#x": 0 has no 0x prefix. */
function hexAlt(n: number): string {
  return n === 0 ? '0' : `0x${n.toString(16)}`;
}

function fidNoBrace(f: Fid): string {
  return `0x${f.seq.toString(16)}:0x${f.oid.toString(16)}:0x${f.ver.toString(16)}`;
}

const IDIF_SEQ_FIRST = 0x100000000;
const IDIF_SEQ_LAST = 0x1ffffffff;
/** sequences printed in decimal in the group column: the legacy MDT0 group and the reserved ones */
const FID_SEQ_RSVD = 11;

/** The ost_id view of an object: IDIF objects are group 0 with the OST index bits in the object id. */
function ostId(o: OstObject): { id: number; group: number } {
  if (o.seq >= IDIF_SEQ_FIRST && o.seq <= IDIF_SEQ_LAST) return { id: (o.seq % 0x10000) * 2 ** 32 + o.oid, group: 0 };
  return { id: o.oid, group: o.seq };
}

/**
 * One layout in lov_dump_user_lmm_v1v3 form. `verbose` is the V bits;
 * `depth` is getstripe's maximum depth (0: the path is not printed).
 */
export function formatLov(view: LovView, path: string | undefined, verbose: number, opts: { depth: number; yaml?: boolean }): string {
  const { isDir } = view;
  const yaml = opts.yaml === true;
  const prefix = isDir ? '' : 'lmm_';
  const label = (bit: number, name: string) => (verbose & ~bit ? `${prefix}${name}` : '');
  const fieldSep = !yaml && isDir ? ' ' : '\n';
  let out = '';
  let sep = '';
  if (isDir && view.inherited && verbose & V.DETAIL) out += '(Default) ';
  if (!yaml && opts.depth !== 0 && path !== undefined && (verbose !== V.OBJID || !isDir)) out += `${path}\n`;
  if (verbose & V.DETAIL && !isDir) {
    out += `lmm_magic:         0x${view.magic.toString(16).toUpperCase().padStart(8, '0')}\n`;
    out += `lmm_seq:           ${hexAlt(view.fid.seq)}\n`;
    out += `lmm_object_id:     ${hexAlt(view.fid.oid)}\n`;
  }
  if (verbose & (V.DETAIL | V.DFID)) {
    if (verbose & ~V.DFID) out += 'lmm_fid:           ';
    out += `${yaml ? fidNoBrace(view.fid) : fidToString(view.fid)}\n`;
  }
  if (verbose & V.COUNT) {
    out += `${label(V.COUNT, 'stripe_count:  ')}${view.stripeCount}`;
    sep = fieldSep;
  }
  if (verbose & V.SIZE) {
    out += `${sep}${label(V.SIZE, 'stripe_size:   ')}${view.stripeSize}`;
    sep = fieldSep;
  }
  if (verbose & V.PATTERN) {
    out += `${sep}${label(V.PATTERN, 'pattern:       ')}${view.pattern}`;
    sep = fieldSep;
  }
  if (verbose & V.GENERATION && !isDir) {
    out += `${sep}${label(V.GENERATION, 'layout_gen:    ')}${view.layoutGen}`;
    sep = '\n';
  }
  if (verbose & V.OFFSET) {
    out += `${sep}${label(V.OFFSET, 'stripe_offset: ')}${view.stripeOffset}`;
    sep = fieldSep;
  }
  if (verbose & V.POOL && view.pool) {
    out += `${sep}${label(V.POOL, 'pool:          ')}${view.pool}`;
    sep = fieldSep;
  }
  if (sep !== '') out += '\n';
  if (verbose & V.OBJID && !isDir && view.pattern !== 'released') {
    if (yaml) {
      out += 'lmm_objects:\n';
      for (const o of view.objects) out += `      - l_ost_idx: ${o.ostIdx}\n        l_fid:     ${fidNoBrace({ seq: o.seq, oid: o.oid, ver: 0 })}\n`;
    } else {
      out += '\tobdidx\t\t objid\t\t objid\t\t group\n';
      for (const o of view.objects) {
        const { id, group } = ostId(o);
        const g = group <= FID_SEQ_RSVD ? String(group) : hexAlt(group);
        out += `\t${String(o.ostIdx).padStart(6)}\t${String(id).padStart(14)}\t${hexAlt(id).padStart(13)}\t${g.padStart(14)}\n`;
      }
    }
  }
  if (!yaml) out += '\n';
  return out;
}

/** `lfs getstripe -m`: the MDT index, with -v under the path. */
export function formatMdtIndex(index: number, path: string, detail: boolean): string {
  return detail ? `${path}\nmdt_index:\t${index}\n` : `${index}\n`;
}

export interface DfRow {
  uuid: string;
  total: number;
  used: number;
  avail: number;
  mount: string;
  inactive?: boolean;
}

function usePct(used: number, avail: number): string {
  return used + avail === 0 ? '-' : `${Math.ceil((used / (used + avail)) * 100)}%`;
}

function human(kib: number): string {
  const units = ['K', 'M', 'G', 'T', 'P', 'E'];
  let v = kib;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(1)}${units[u]}`;
}

/** One filesystem's table; like Lustre, a blank line before and after the summary. */
export function formatDf(rows: DfRow[], summary: DfRow, opts: { inodes?: boolean; human?: boolean }): string {
  const head = opts.inodes ? ['Inodes', 'IUsed', 'IFree', 'IUse%'] : [opts.human ? 'bytes' : '1K-blocks', 'Used', 'Available', 'Use%'];
  const out = [`${'UUID'.padEnd(20)} ${head[0]!.padStart(11)} ${head[1]!.padStart(11)} ${head[2]!.padStart(11)} ${head[3]} Mounted on`];
  const num = (n: number) => (opts.human && !opts.inodes ? human(n) : String(n)).padStart(11);
  const row = (r: DfRow) =>
    r.inactive
      ? `${r.uuid.replace(/_UUID$/, '').padEnd(20)}: inactive device`
      : `${r.uuid.padEnd(20)} ${num(r.total)} ${num(r.used)} ${num(r.avail)} ${usePct(r.used, r.avail).padStart(4)} ${r.mount}`;
  for (const r of rows) out.push(row(r));
  out.push('');
  out.push(row({ ...summary, uuid: 'filesystem_summary:' }));
  out.push('');
  return out.join('\n') + '\n';
}
