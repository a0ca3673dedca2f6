/** The suite's results: one row per workload, one value per target, ratios of Stria to each baseline. */
import { round } from './fio.js';

export type Unit = 'MiB/s' | 'IOPS' | 'files/s' | 'ops/s' | 'pass';

export interface Cell {
  /** the headline figure; for 'pass' rows 1 = pass, 0 = fail */
  value?: number;
  error?: string;
  details?: Record<string, unknown>;
}

export interface Row {
  workload: string;
  unit: Unit;
  cells: Map<string, Cell>;
}

export interface TargetInfo {
  label: string;
  kind: 'stria' | 'baseline';
  dir: string;
}

export class Results {
  readonly rows: Row[] = [];

  constructor(readonly targets: TargetInfo[]) {}

  set(workload: string, unit: Unit, target: string, cell: Cell): void {
    let row = this.rows.find((r) => r.workload === workload);
    if (!row) {
      row = { workload, unit, cells: new Map() };
      this.rows.push(row);
    }
    row.cells.set(target, cell);
  }

  get stria(): TargetInfo {
    return this.targets.find((t) => t.kind === 'stria')!;
  }

  get baselines(): TargetInfo[] {
    return this.targets.filter((t) => t.kind === 'baseline');
  }

  ratio(row: Row, baseline: string): number | undefined {
    if (row.unit === 'pass') return undefined;
    const s = row.cells.get(this.stria.label)?.value;
    const b = row.cells.get(baseline)?.value;
    return s === undefined || b === undefined || b === 0 ? undefined : round(s / b, 2);
  }

  table(): string {
    const head = ['workload', 'unit', ...this.targets.map((t) => t.label), ...this.baselines.map((b) => `${this.stria.label}/${b.label}`)];
    const lines = [head];
    for (const row of this.rows) {
      const values = this.targets.map((t) => formatCell(row, row.cells.get(t.label)));
      const ratios = this.baselines.map((b) => {
        const r = this.ratio(row, b.label);
        return r === undefined ? '-' : r.toFixed(2);
      });
      lines.push([row.workload, row.unit, ...values, ...ratios]);
    }
    const widths = head.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)));
    return lines
      .map((l, li) => {
        const text = l.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
        return li === 0 ? `${text}\n${widths.map((w) => '-'.repeat(w)).join('  ')}` : text;
      })
      .join('\n');
  }

  toJSON(meta: Record<string, unknown>): Record<string, unknown> {
    return {
      ...meta,
      targets: this.targets,
      results: this.rows.map((row) => ({
        workload: row.workload,
        unit: row.unit,
        values: Object.fromEntries(this.targets.map((t) => [t.label, row.cells.get(t.label)?.value ?? null])),
        ratios: Object.fromEntries(this.baselines.map((b) => [`${this.stria.label}/${b.label}`, this.ratio(row, b.label) ?? null])),
        details: Object.fromEntries(this.targets.flatMap((t) => {
          const c = row.cells.get(t.label);
          if (!c) return [];
          return [[t.label, c.error === undefined ? (c.details ?? {}) : { ...c.details, error: c.error }]];
        })),
      })),
    };
  }
}

function formatCell(row: Row, c: Cell | undefined): string {
  if (!c) return '-';
  if (c.error !== undefined) return 'ERROR';
  if (c.value === undefined) return '-';
  if (row.unit === 'pass') return c.value === 1 ? 'pass' : 'FAIL';
  return c.value >= 1000 ? Math.round(c.value).toString() : c.value.toFixed(1);
}
