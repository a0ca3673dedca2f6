/** Runs the real lctl against a node's control sockets, and reads its name=value output. */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { STRIA_BIN } from './cluster.js';

const run = promisify(execFile);

export interface LctlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function lctl(runDir: string, ...args: string[]): Promise<LctlResult> {
  try {
    const r = await run(process.execPath, [join(STRIA_BIN, '..', 'lctl.js'), ...args], { env: { ...process.env, STRIA_RUN_DIR: runDir }, timeout: 60_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number | string; stdout?: string; stderr?: string };
    return { code: typeof x.code === 'number' ? x.code : 1, stdout: x.stdout ?? '', stderr: x.stderr ?? '' };
  }
}

/**
 * Splits get_param output into parameters: "name=value" lines, and "name=" followed
 * by the lines of a multi-line value (up to the next line that starts a parameter).
 */
export function parseParams(stdout: string, names: RegExp = /^[a-z]+\.[^=\s]+=/): Map<string, string> {
  const out = new Map<string, string>();
  let current: string | undefined;
  const text = stdout.endsWith('\n') ? stdout.slice(0, -1) : stdout;
  for (const line of text === '' ? [] : text.split('\n')) {
    const m = names.exec(line);
    if (m) {
      const eq = line.indexOf('=');
      current = line.slice(0, eq);
      out.set(current, line.slice(eq + 1) === '' ? '' : `${line.slice(eq + 1)}\n`);
    } else if (current !== undefined) {
      out.set(current, `${out.get(current)}${line}\n`);
    }
  }
  return out;
}

/** One counter line of a stats value: `name N samples [unit] min max sum sumsq`. */
export function counter(stats: string, name: string): { samples: number; unit: string; min?: number; max?: number; sum?: number } | undefined {
  const m = new RegExp(`^${name} +(\\d+) samples \\[(\\w+)\\](?: (\\d+) (\\d+) (\\d+) (\\d+))?$`, 'm').exec(stats);
  if (!m) return undefined;
  return { samples: Number(m[1]), unit: m[2]!, min: m[3] ? Number(m[3]) : undefined, max: m[4] ? Number(m[4]) : undefined, sum: m[5] ? Number(m[5]) : undefined };
}
