/**
 * `stria bench`: the workloads on a directory of a Stria mount and, in the same run, on a
 * local-disk directory and any other directories given, so the figures compare as
 * ratios. Prints a table with one column per target and one ratio column per baseline,
 * then the same figures as one JSON line (and, with --json, to a file).
 */
import { mkdtemp, realpath, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { err, toStriaError } from '../common/errno.js';
import { MountEndpoints } from '../cli/mount-endpoint.js';
import { clearMountLocks, dropKernelCaches } from './caches.js';
import { fioVersion } from './fio.js';
import { createProgress } from './progress.js';
import { Results } from './report.js';
import { BenchInterrupted, GROUPS, runWorkloads, sizesFor, stepCount, type Group, type Target } from './workloads.js';

export interface BenchOptions {
  /** a directory on a Stria mount: the work directory is made inside it */
  dir: string;
  quick: boolean;
  /** the workload groups to run (all by default) */
  only?: Group[];
  /** the local-disk baseline's parent directory (the system's temporary directory by default) */
  local?: string;
  vs: Array<{ dir: string; label: string }>;
  json?: string;
  /** control sockets' directory, to find the mount process ($STRIA_RUN_DIR or /run/stria by default) */
  runDir?: string;
  /** runs after the work directories are removed when SIGINT or SIGTERM stops the run */
  onInterrupt?: () => Promise<void>;
}

/** `DIR[:label]` of --vs; the label defaults to the directory's name. */
export function parseVs(v: string): { dir: string; label: string } {
  const colon = v.lastIndexOf(':');
  const dir = resolve(colon > 0 ? v.slice(0, colon) : v);
  const label = colon > 0 ? v.slice(colon + 1) : basename(dir);
  if (!/^[A-Za-z0-9._-]{1,32}$/.test(label)) throw err('EINVAL', `--vs ${v}: the label must be 1-32 letters, digits, '.', '_' or '-'`, 'BAD_BENCH_LABEL');
  return { dir, label };
}

/** A comma-separated list of workload groups. */
export function parseGroups(v: string): Group[] {
  const out: Group[] = [];
  for (const g of v.split(',').map((s) => s.trim())) {
    if (!(GROUPS as readonly string[]).includes(g)) throw err('EINVAL', `unknown workload group '${g}' (choose from ${GROUPS.join(', ')})`, 'BAD_BENCH_GROUP');
    if (!out.includes(g as Group)) out.push(g as Group);
  }
  return out;
}

async function requireDir(path: string, what: string): Promise<void> {
  const s = await stat(path).catch(() => undefined);
  if (!s?.isDirectory()) throw err('ENOTDIR', `${what} ${path}: not a directory`, 'BAD_BENCH_DIR');
}

/**
 * Runs the suite; resolves to the exit status: 0 when every workload ran and the
 * integrity check passed, 1 otherwise. Bad arguments and an unusable setup throw before
 * anything is written.
 */
export async function runBench(o: BenchOptions, out: NodeJS.WritableStream = process.stdout, errStream: NodeJS.WriteStream = process.stderr): Promise<number> {
  if (process.getuid?.() !== 0) throw err('EPERM', 'must run as root: cold runs drop the kernel caches', 'BENCH_NOT_ROOT');
  const version = await fioVersion();
  if (!version.startsWith('fio')) throw err('ENOENT', 'fio is not installed (apt-get install fio)', 'NO_FIO');
  await requireDir(resolve(o.dir), 'the Stria directory');
  // the mount table names mountpoints without symbolic links
  const striaDir = await realpath(o.dir);
  const { client } = await new MountEndpoints({ runDir: o.runDir }).forPath(striaDir).catch((e: unknown) => {
    const se = toStriaError(e);
    throw err('EINVAL', `${striaDir}: ${se.code === 'NOT_STRIA' ? 'not on a Stria mount' : se.message}`, se.code);
  });
  const localParent = resolve(o.local ?? tmpdir());
  await requireDir(localParent, '--local');
  for (const v of o.vs) await requireDir(v.dir, '--vs');
  const labels = ['stria', 'local', ...o.vs.map((v) => v.label)];
  if (new Set(labels).size !== labels.length) throw err('EINVAL', 'target labels must be unique (give --vs DIR:label)', 'BAD_BENCH_LABEL');
  const groups = o.only && o.only.length > 0 ? o.only : [...GROUPS];
  const sizes = sizesFor(o.quick);
  const mode = o.quick ? 'quick' : 'full';

  const cleanups: Array<() => Promise<void>> = [];
  const cleanup = async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  };
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals) => {
    interrupted = true;
    errStream.write(`stria bench: ${sig}: removing the work directories\n`);
    void cleanup()
      .then(() => o.onInterrupt?.())
      .catch(() => undefined)
      .finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const workDir = async (parent: string, label: string) => {
    if (interrupted) throw new BenchInterrupted();
    const d = await mkdtemp(join(parent, `.stria-bench.${label}.`));
    cleanups.push(() => rm(d, { recursive: true, force: true }));
    return d;
  };

  const t0 = performance.now();
  const startedUtc = new Date().toISOString();
  let ok = true;
  const progress = createProgress(stepCount(groups) * labels.length, errStream, 'stria bench');
  try {
    const striaWork = await workDir(striaDir, 'stria');
    const targets: Target[] = [
      {
        label: 'stria',
        kind: 'stria',
        dir: striaWork,
        dropCaches: async () => {
          // Unused locks first: cancelling them drops the mount's pages and attributes, and
          // the kernel's copies with them; then the kernel drops the rest.
          await clearMountLocks(client.endpoint);
          return `stria locks + ${await dropKernelCaches(striaWork)}`;
        },
      },
    ];
    const localWork = await workDir(localParent, 'local');
    targets.push({ label: 'local', kind: 'baseline', dir: localWork, dropCaches: () => dropKernelCaches(localWork) });
    for (const v of o.vs) {
      const d = await workDir(v.dir, v.label);
      targets.push({ label: v.label, kind: 'baseline', dir: d, dropCaches: () => dropKernelCaches(d) });
    }
    const results = new Results(targets.map(({ label, kind, dir }) => ({ label, kind, dir })));
    for (const t of targets) {
      progress.log(`target ${t.label}: ${t.dir}`);
      if (!(await runWorkloads(t, { interrupted: () => interrupted, sizes, groups, results, progress }))) ok = false;
    }
    progress.stop();

    const doc = results.toJSON({
      bench: 'stria-bench',
      mode,
      groups,
      started_utc: startedUtc,
      duration_s: Math.round((performance.now() - t0) / 1000),
      machine: { kernel: release(), cpus: cpus().length, node: process.version, fio: version, loadavg_end: loadavg().map((x) => x.toFixed(2)).join(' ') },
      stria_mount: client.mount.mountpoint,
      sizes,
      ok,
    });
    if (o.json) await writeFile(o.json, `${JSON.stringify(doc, null, 1)}\n`);
    out.write(`stria bench (${mode}), ratios are ${results.stria.label} / baseline, higher is better for Stria\n`);
    out.write(`${results.table()}\n`);
    out.write(`${JSON.stringify(doc)}\n`);
  } finally {
    progress.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await cleanup();
  }
  return ok ? 0 : 1;
}
