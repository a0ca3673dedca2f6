/**
 * Runs one job file of bench/jobs with fio against a directory and reads the
 * figures the suite reports from fio's JSON output.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** bench/jobs of the package: dist/src/bench/ -> ../../../bench/jobs */
export const JOBS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bench', 'jobs');

export interface FioFigures {
  MiB_s: number;
  iops: number;
  p99_us: number;
  mean_us: number;
  runtime_s: number;
  io_MiB: number;
}

interface FioDirection {
  bw: number;
  iops: number;
  runtime: number;
  io_kbytes: number;
  clat_ns?: { mean?: number; percentile?: Record<string, number> };
}

interface FioJob {
  jobname: string;
  error: number;
  read: FioDirection;
  write: FioDirection;
}

export class FioError extends Error {}

/**
 * `fio --output-format=json --directory=DIR JOB` with `env` for the job file's
 * ${VARS}. Throws FioError when fio exits non-zero or a job reports an error
 * (a verify mismatch does both), or when no `rw` I/O was done.
 */
export async function runFio(job: string, directory: string, rw: 'read' | 'write', env: Record<string, string>, timeoutMs = 15 * 60_000): Promise<FioFigures> {
  // fio writes state/verify files into its cwd: keep them out of the repository.
  const cwd = await mkdtemp(join(tmpdir(), 'stria-fio-'));
  const out = join(cwd, 'out.json');
  try {
    const args = ['--output-format=json', `--output=${out}`, `--directory=${directory}`, join(JOBS_DIR, job)];
    const run = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile('fio', args, { cwd, env: { ...process.env, ...env }, timeout: timeoutMs, maxBuffer: 16 << 20 }, (e, _stdout, stderr) => {
        const code = e ? (typeof (e as { code?: unknown }).code === 'number' ? (e as { code: number }).code : 1) : 0;
        resolve({ code, stderr });
      });
    });
    const text = await readFile(out, 'utf8').catch(() => '');
    if (run.code !== 0) throw new FioError(`fio ${job} exited ${run.code}: ${run.stderr.trim().split('\n').slice(-5).join(' | ')}`);
    return parseFioJson(text, rw, job);
  } finally {
    await rm(cwd, { recursive: true, force: true });
  }
}

/** Sums bandwidth and IOPS over fio's job entries (one with group_reporting). */
export function parseFioJson(text: string, rw: 'read' | 'write', job: string): FioFigures {
  // fio may print warnings before the JSON document
  const start = text.indexOf('{');
  if (start < 0) throw new FioError(`fio ${job}: no JSON output`);
  const doc = JSON.parse(text.slice(start)) as { jobs?: FioJob[] };
  const jobs = doc.jobs ?? [];
  if (jobs.length === 0) throw new FioError(`fio ${job}: no jobs in output`);
  for (const j of jobs) if (j.error) throw new FioError(`fio ${job}: job ${j.jobname} error=${j.error}`);
  const d = jobs.map((j) => j[rw]);
  const ioKiB = d.reduce((s, x) => s + x.io_kbytes, 0);
  if (ioKiB <= 0) throw new FioError(`fio ${job}: no ${rw} I/O done`);
  return {
    MiB_s: round(d.reduce((s, x) => s + x.bw, 0) / 1024, 1),
    iops: Math.round(d.reduce((s, x) => s + x.iops, 0)),
    p99_us: round(Math.max(...d.map((x) => x.clat_ns?.percentile?.['99.000000'] ?? 0)) / 1000, 1),
    mean_us: round(Math.max(...d.map((x) => x.clat_ns?.mean ?? 0)) / 1000, 1),
    runtime_s: round(Math.max(...d.map((x) => x.runtime)) / 1000, 2),
    io_MiB: round(ioKiB / 1024, 0),
  };
}

export function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export async function fioVersion(): Promise<string> {
  return new Promise((resolve) => execFile('fio', ['--version'], (e, stdout) => resolve(e ? 'fio not found' : stdout.trim())));
}
