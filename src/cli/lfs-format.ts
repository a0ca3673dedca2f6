/** Output formats of lfs, as Lustre prints them (reference §2.6, §2.7). */
import type { Raid0Layout, LayoutTemplate } from '../common/layout.js';

export function formatFileStripe(path: string, layout: Raid0Layout): string {
  const lines = [
    path,
    `lmm_stripe_count:  ${layout.objects.length}`,
    `lmm_stripe_size:   ${layout.stripeSize}`,
    `lmm_pattern:       ${layout.pattern === 'released' ? 'released' : 'raid0'}`,
    `lmm_layout_gen:    ${layout.layoutGen}`,
    `lmm_stripe_offset: ${layout.objects[0]?.ostIdx ?? layout.stripeOffset}`,
  ];
  if (layout.pool) lines.push(`lmm_pool:          ${layout.pool}`);
  if (layout.objects.length > 0) {
    lines.push('\tobdidx\t\t objid\t\t objid\t\t group');
    for (const o of layout.objects) {
      // IDIF and legacy sequences print as group 0 with the object id; others as hex sequences.
      const group = o.seq < 0x200000000 ? '0' : `0x${o.seq.toString(16)}`;
      lines.push(`\t${String(o.ostIdx).padStart(6)}\t${String(o.oid).padStart(14)}\t${('0x' + o.oid.toString(16)).padStart(13)}\t${group.padStart(14)}`);
    }
  }
  return lines.join('\n') + '\n';
}

export function formatDirDefault(tpl: Required<Pick<LayoutTemplate, 'stripeCount' | 'stripeSize'>> & LayoutTemplate): string {
  let s = `stripe_count:  ${tpl.stripeCount} stripe_size:   ${tpl.stripeSize} pattern:       raid0 stripe_offset: ${tpl.stripeOffset ?? -1}`;
  if (tpl.pool) s += ` pool:          ${tpl.pool}`;
  return s;
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
  return out.join('\n') + '\n';
}
