/**
 * A seeded random walk over a small directory through two mounts at once:
 * every operation goes to mount A or B at random, runs to completion before
 * the next starts, and every read, stat and readdir must match an exact
 * in-memory model at once, whichever mount made the last change.
 * STRIA_TEST_SEED=<n> repeats a run.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { constants } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, stat, truncate, unlink } from 'node:fs/promises';
import { mulberry32 } from './helpers/prng.js';
import { mountSkip, twoMounts } from './helpers/two-mounts.js';

const OPS = 2500;
const NAMES = Array.from({ length: 8 }, (_, i) => `f${i}`);
const DIR = 'walk';
/** offsets stay below this, so files stay small enough for 2,500 operations in about a minute */
const MAX_OFFSET = 384 * 1024;

type Outcome = { ok: true; value?: unknown } | { ok: false; code: string };

async function outcome(fn: () => Promise<unknown>): Promise<Outcome> {
  try {
    return { ok: true, value: await fn() };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code !== 'string') throw e;
    return { ok: false, code };
  }
}

function show(o: Outcome): string {
  if (!o.ok) return o.code;
  if (Buffer.isBuffer(o.value)) return `${o.value.length} bytes`;
  return o.value === undefined ? 'ok' : JSON.stringify(o.value);
}

function bufferDiff(expected: Buffer, got: Buffer): string {
  const n = Math.min(expected.length, got.length);
  let first = -1;
  for (let i = 0; i < n; i++) {
    if (expected[i] !== got[i]) {
      first = i;
      break;
    }
  }
  const sizes = expected.length === got.length ? `both ${got.length} bytes` : `read ${got.length} bytes, model has ${expected.length}`;
  return first < 0 ? `${sizes}; the common prefix is identical` : `${sizes}; first difference at offset ${first}`;
}

describe('two mounts: a random walk checked against a model', { skip: mountSkip }, () => {
  const mounts = twoMounts({ osts: 3 });

  test(`${OPS} operations over ${NAMES.length} files, each on A or B at random: every read, stat and readdir matches the model`, { timeout: 240_000 }, async () => {
    const { a, b } = mounts;
    const seed = Number(process.env.STRIA_TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));
    console.log(`random walk seed ${seed} (STRIA_TEST_SEED=${seed} repeats this run)`);
    const rnd = mulberry32(seed);
    const int = (n: number) => Math.floor(rnd() * n);
    const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
    const bytes = (n: number): Buffer => {
      const out = Buffer.alloc(n);
      let word = 0;
      for (let i = 0; i < n; i++) {
        if ((i & 3) === 0) word = (rnd() * 2 ** 32) >>> 0;
        out[i] = (word >>> ((i & 3) * 8)) & 0xff;
      }
      return out;
    };
    /** Mostly small writes, some that span several stripes. */
    const length = () => (rnd() < 0.85 ? 1 + int(16 * 1024) : 1 + int(160 * 1024));

    await mkdir(a.path(DIR));
    const model = new Map<string, Buffer>();
    const history: string[] = [];
    const counts: Record<string, number> = {};

    const fail = (i: number, what: string, detail: string): never => {
      assert.fail(`seed ${seed}, operation ${i}: ${what}\n  ${detail}\n  the operations before it:\n    ${history.slice(-10).join('\n    ')}`);
    };
    /** A failed operation must fail as the model says, and a successful one succeed. */
    const expectOutcome = (i: number, what: string, got: Outcome, expectedCode: string | undefined): void => {
      const expected = expectedCode ?? 'ok';
      const actual = got.ok ? 'ok' : got.code;
      if (actual !== expected) fail(i, what, `returned ${show(got)}, the model expects ${expected}`);
    };

    for (let i = 0; i < OPS; i++) {
      const [mountName, m] = rnd() < 0.5 ? (['A', a] as const) : (['B', b] as const);
      const name = pick(NAMES);
      const path = m.path(DIR, name);
      const cur = model.get(name);
      const r = rnd();
      let what: string;
      if (r < 0.17) {
        const off = int(Math.min((cur?.length ?? 0) + 8192, MAX_OFFSET) + 1);
        const data = bytes(length());
        what = `${mountName}: pwrite ${data.length} bytes at ${off} into ${name}${cur ? '' : ' (creating it)'}`;
        const got = await outcome(async () => {
          const fh = await open(path, constants.O_WRONLY | constants.O_CREAT, 0o644);
          try {
            const { bytesWritten } = await fh.write(data, 0, data.length, off);
            return bytesWritten;
          } finally {
            await fh.close();
          }
        });
        expectOutcome(i, what, got, undefined);
        const next = Buffer.alloc(Math.max(cur?.length ?? 0, off + data.length));
        cur?.copy(next);
        data.copy(next, off);
        model.set(name, next);
      } else if (r < 0.29) {
        const data = bytes(length());
        what = `${mountName}: append ${data.length} bytes to ${name}${cur ? '' : ' (creating it)'}`;
        const got = await outcome(async () => {
          const fh = await open(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, 0o644);
          try {
            return (await fh.write(data, 0, data.length)).bytesWritten;
          } finally {
            await fh.close();
          }
        });
        expectOutcome(i, what, got, undefined);
        model.set(name, Buffer.concat([cur ?? Buffer.alloc(0), data]));
      } else if (r < 0.37) {
        const size = int(Math.min((cur?.length ?? 0) + 16384, MAX_OFFSET) + 1);
        what = `${mountName}: truncate ${name} to ${size}`;
        expectOutcome(i, what, await outcome(() => truncate(path, size)), cur ? undefined : 'ENOENT');
        if (cur) {
          const next = Buffer.alloc(size);
          cur.copy(next, 0, 0, Math.min(size, cur.length));
          model.set(name, next);
        }
      } else if (r < 0.55) {
        what = `${mountName}: read ${name} whole`;
        const got = await outcome(() => readFile(path));
        expectOutcome(i, what, got, cur ? undefined : 'ENOENT');
        if (cur && got.ok && !cur.equals(got.value as Buffer)) fail(i, what, `contents differ from the model: ${bufferDiff(cur, got.value as Buffer)}`);
      } else if (r < 0.67) {
        what = `${mountName}: stat ${name}`;
        const got = await outcome(async () => (await stat(path)).size);
        expectOutcome(i, what, got, cur ? undefined : 'ENOENT');
        if (cur && got.ok && got.value !== cur.length) fail(i, what, `size ${String(got.value)}, the model has ${cur.length}`);
      } else if (r < 0.75) {
        what = `${mountName}: create ${name} (O_CREAT|O_EXCL)`;
        expectOutcome(i, what, await outcome(async () => (await open(path, 'wx', 0o644)).close()), cur ? 'EEXIST' : undefined);
        if (!cur) model.set(name, Buffer.alloc(0));
      } else if (r < 0.82) {
        what = `${mountName}: unlink ${name}`;
        expectOutcome(i, what, await outcome(() => unlink(path)), cur ? undefined : 'ENOENT');
        model.delete(name);
      } else if (r < 0.9) {
        const to = pick(NAMES.filter((n) => n !== name));
        what = `${mountName}: rename ${name} over ${to}${model.has(to) ? '' : ' (no file there)'}`;
        expectOutcome(i, what, await outcome(() => rename(path, m.path(DIR, to))), cur ? undefined : 'ENOENT');
        if (cur) {
          model.set(to, cur);
          model.delete(name);
        }
      } else {
        what = `${mountName}: readdir`;
        const got = await outcome(async () => (await readdir(m.path(DIR))).sort());
        expectOutcome(i, what, got, undefined);
        const expected = [...model.keys()].sort();
        const names = got.ok ? (got.value as string[]) : [];
        if (JSON.stringify(names) !== JSON.stringify(expected)) {
          const extra = names.filter((n) => !model.has(n));
          const missing = expected.filter((n) => !names.includes(n));
          fail(i, what, `listed [${names.join(' ')}], the model has [${expected.join(' ')}] (extra: ${extra.join(' ') || '-'}; missing: ${missing.join(' ') || '-'})`);
        }
      }
      const kind = what.split(' ')[1]!;
      counts[kind] = (counts[kind] ?? 0) + 1;
      history.push(`${i}: ${what}`);
    }
    console.log(`random walk: ${OPS} operations (${Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(', ')})`);
  });
});
