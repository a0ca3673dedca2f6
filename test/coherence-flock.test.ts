/**
 * File locks are cluster-wide: POSIX (fcntl) and BSD (flock) locks taken
 * through mount A conflict with, block, and are reported to processes on
 * mount B; deadlocks that span both mounts are refused with EDEADLK; and
 * SQLite, which relies on all of this, stays consistent across the mounts.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { LineChild } from './helpers/child-process.js';
import { sh } from './helpers/mount.js';
import { shOk } from './helpers/shell.js';
import { mountSkip, twoMounts } from './helpers/two-mounts.js';

const TEST_TIMEOUT = 120_000;
const STEP_MS = 30_000;

/**
 * A lock owner: one python process holding one fd, driven line by line.
 *   lock  r|w START LEN   F_SETLK           -> "ok" | "err ERRNO"
 *   lockw r|w START LEN   F_SETLKW          -> "waiting", then "acquired" | "err ERRNO"
 *   unlock START LEN                        -> "ok"
 *   getlk r|w START LEN   F_GETLK           -> "getlk TYPE START LEN"
 */
const AGENT = `
import errno, fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDWR)
FMT = 'hhqqi4x'
TYPES = {'r': fcntl.F_RDLCK, 'w': fcntl.F_WRLCK, 'u': fcntl.F_UNLCK}
NAMES = {fcntl.F_RDLCK: 'F_RDLCK', fcntl.F_WRLCK: 'F_WRLCK', fcntl.F_UNLCK: 'F_UNLCK'}
PREFERRED = {errno.EDEADLK: 'EDEADLK', errno.EAGAIN: 'EAGAIN', errno.EACCES: 'EACCES'}
def say(*words):
    print(*words, flush=True)
say('ready')
for line in sys.stdin:
    cmd = line.split()
    if not cmd:
        continue
    if cmd[0] == 'exit':
        break
    try:
        if cmd[0] == 'unlock':
            fcntl.fcntl(fd, fcntl.F_SETLK, struct.pack(FMT, fcntl.F_UNLCK, os.SEEK_SET, int(cmd[1]), int(cmd[2]), 0))
            say('ok')
            continue
        flock = struct.pack(FMT, TYPES[cmd[1]], os.SEEK_SET, int(cmd[2]), int(cmd[3]), 0)
        if cmd[0] == 'lock':
            fcntl.fcntl(fd, fcntl.F_SETLK, flock)
            say('ok')
        elif cmd[0] == 'lockw':
            say('waiting')
            fcntl.fcntl(fd, fcntl.F_SETLKW, flock)
            say('acquired')
        elif cmd[0] == 'getlk':
            t, _, start, length, _ = struct.unpack(FMT, fcntl.fcntl(fd, fcntl.F_GETLK, flock))
            say('getlk', NAMES.get(t, str(t)), start, length)
        else:
            say('err unknown-command')
    except OSError as e:
        say('err', PREFERRED.get(e.errno) or errno.errorcode.get(e.errno, str(e.errno)))
`;

/** The number of the syscall a process blocked in fcntl/flock shows in /proc/PID/syscall. */
const SYSCALL_NR: Partial<Record<string, { fcntl: number; flock: number }>> = {
  x64: { fcntl: 72, flock: 73 },
  arm64: { fcntl: 25, flock: 32 },
};

/** A lock owner process, which can also be watched blocking inside a lock syscall. */
class LockOwner extends LineChild {
  /**
   * Waits until the process sleeps inside the given syscall, seen twice in a row, so the
   * request is past the kernel and out to the filesystem. Fails if it answers instead.
   */
  async blockedIn(call: 'fcntl' | 'flock', what: string, timeoutMs = STEP_MS): Promise<void> {
    const nr = SYSCALL_NR[process.arch]?.[call];
    const deadline = Date.now() + timeoutMs;
    let seen = 0;
    while (seen < 2) {
      if (this.hasUnread) throw new Error(`${what}: ${this.label} answered "${this.lines.at(-1)}" instead of blocking`);
      if (this.proc.exitCode !== null) throw new Error(`${what}: ${this.label} exited (${this.proc.exitCode}) instead of blocking`);
      if (Date.now() > deadline) throw new Error(`${what}: ${this.label} was never seen blocked in ${call}`);
      const inCall = nr === undefined ? true : await readFile(`/proc/${this.pid}/syscall`, 'utf8').then((s) => s.split(' ')[0] === String(nr), () => false);
      const sleeping = await readFile(`/proc/${this.pid}/stat`, 'utf8').then((s) => s.slice(s.lastIndexOf(')') + 2, s.lastIndexOf(')') + 3) === 'S', () => false);
      seen = inCall && sleeping ? seen + 1 : 0;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

function agent(path: string, label: string): LockOwner {
  return new LockOwner(['python3', '-c', AGENT, path], label);
}

describe('two mounts: file locks', { skip: mountSkip }, () => {
  const children: LockOwner[] = [];
  // Killed before the mounts stop, so that no open file keeps them busy.
  const mounts = twoMounts({ osts: 3, beforeStop: () => children.forEach((c) => c.kill()) });

  /** Starts a lock agent on a mount's path and waits until it has the file open. */
  async function owner(path: string, label: string): Promise<LockOwner> {
    const c = agent(path, label);
    children.push(c);
    assert.equal(await c.next(), 'ready', `${label} opened ${path}`);
    return c;
  }

  test('fcntl: A\'s write lock blocks F_SETLKW on B until released; F_GETLK on B reports it; F_SETLK on B fails', { timeout: TEST_TIMEOUT }, async () => {
    const { a, b } = mounts;
    await writeFile(a.path('posix'), Buffer.alloc(4096));
    const holder = await owner(a.path('posix'), 'holder on A');
    const waiter = await owner(b.path('posix'), 'waiter on B');
    const prober = await owner(b.path('posix'), 'prober on B');

    assert.equal(await holder.ask('lock w 100 50'), 'ok', 'A takes a write lock on bytes [100, 150)');

    assert.equal(await prober.ask('getlk w 0 0'), 'getlk F_WRLCK 100 50', 'F_GETLK on B for the whole file reports A\'s write lock and its range');
    assert.equal(await prober.ask('getlk r 120 1'), 'getlk F_WRLCK 100 50', 'F_GETLK on B for a read lock inside the range reports it too');
    assert.equal(await prober.ask('getlk w 0 100'), 'getlk F_UNLCK 0 100', 'nothing conflicts below the range');
    assert.match(await prober.ask('lock w 0 0'), /^err (EAGAIN|EACCES)$/, 'a non-blocking F_SETLK on B over A\'s range fails while A holds it');
    assert.match(await prober.ask('lock r 140 20'), /^err (EAGAIN|EACCES)$/, 'a read lock on B overlapping A\'s write lock fails too');
    assert.equal(await prober.ask('lock w 150 10'), 'ok', 'a range next to A\'s is free');
    assert.equal(await prober.ask('unlock 150 10'), 'ok');

    waiter.send('lockw w 120 10');
    assert.equal(await waiter.next(), 'waiting');
    await waiter.blockedIn('fcntl', 'F_SETLKW on B while A holds the range');
    // Ask something of the lock server on B's side while the waiter waits: it still waits after.
    assert.match(await prober.ask('lock w 100 1'), /^err (EAGAIN|EACCES)$/);
    assert.equal(waiter.hasUnread, false, `B's F_SETLKW returned (${waiter.lines.at(-1)}) while A still holds the lock`);

    assert.equal(await holder.ask('unlock 100 50'), 'ok', 'A releases');
    assert.equal(await waiter.next(), 'acquired', 'B\'s F_SETLKW is granted once A released');
    assert.equal(await holder.ask('getlk w 0 0'), 'getlk F_WRLCK 120 10', 'now F_GETLK on A reports B\'s lock');
    assert.match(await holder.ask('lock r 125 1'), /^err (EAGAIN|EACCES)$/, 'and A cannot take it');

    for (const c of [holder, waiter, prober]) c.send('exit');
    assert.deepEqual(await Promise.all([holder.exited, waiter.exited, prober.exited]), [0, 0, 0]);
    const free = await owner(a.path('posix'), 'after on A');
    assert.equal(await free.ask('lock w 0 0'), 'ok', 'a lock whose owner exited on B is gone');
    free.send('exit');
  });

  test('BSD flock: flock -x held on A makes flock -n on B fail, and a blocking flock on B wait, until released', { timeout: TEST_TIMEOUT }, async () => {
    const { a, b } = mounts;
    await writeFile(a.path('bsd'), 'x');
    const held = new LockOwner(['flock', '-x', a.path('bsd'), '-c', 'echo held; read line; echo released'], 'flock -x on A');
    children.push(held);
    assert.equal(await held.next(), 'held');

    const tryB = await sh(`flock -n -x ${b.path('bsd')} true`);
    assert.equal(tryB.code, 1, `flock -n -x on B while A holds it: exit ${tryB.code} ${tryB.stderr}`);
    const tryShared = await sh(`flock -n -s ${b.path('bsd')} true`);
    assert.equal(tryShared.code, 1, `flock -n -s on B while A holds it exclusively: exit ${tryShared.code}`);

    const blocked = new LockOwner(['flock', '-x', b.path('bsd'), '-c', 'echo got'], 'flock -x on B');
    children.push(blocked);
    await blocked.blockedIn('flock', 'a blocking flock -x on B while A holds it');

    held.send('go');
    assert.equal(await held.next(), 'released');
    assert.equal(await held.exited, 0);
    assert.equal(await blocked.next(), 'got', 'the waiting flock on B gets the lock once A let go');
    assert.equal(await blocked.exited, 0);
    assert.equal((await sh(`flock -n -x ${b.path('bsd')} true`)).code, 0, 'flock -n -x on B succeeds once nobody holds it');
    assert.equal((await sh(`flock -n -x ${a.path('bsd')} true`)).code, 0, 'and so does flock -n -x on A');
  });

  test('fcntl deadlock across mounts: P2 on B asking for what P1 on A holds, while P1 waits for P2, gets EDEADLK', { timeout: TEST_TIMEOUT }, async () => {
    const { a, b } = mounts;
    await writeFile(a.path('deadlock'), Buffer.alloc(16));
    const p1 = await owner(a.path('deadlock'), 'P1 on A');
    const p2 = await owner(b.path('deadlock'), 'P2 on B');
    assert.equal(await p1.ask('lock w 0 1'), 'ok', 'P1 holds byte 0');
    assert.equal(await p2.ask('lock w 1 1'), 'ok', 'P2 holds byte 1');
    p1.send('lockw w 1 1');
    assert.equal(await p1.next(), 'waiting');
    await p1.blockedIn('fcntl', 'P1 waiting on A for byte 1, which P2 on B holds');
    p2.send('lockw w 0 1');
    assert.equal(await p2.next(), 'waiting');
    const answer = await p2.next();
    assert.equal(answer, 'err EDEADLK', `P2's F_SETLKW on byte 0 closes a cycle and must fail with EDEADLK (35); P1 said ${JSON.stringify(p1.lines.slice(2))}`);
    assert.equal(p1.hasUnread, false, 'P1 still waits');
    p2.send('exit');
    assert.equal(await p2.exited, 0);
    assert.equal(await p1.next(), 'acquired', 'P1 gets byte 1 when P2\'s locks go with its exit');
    p1.send('exit');
    assert.equal(await p1.exited, 0);
  });

  test('SQLite in rollback-journal mode: B sees each of A\'s commits at once, is locked out by A\'s EXCLUSIVE transaction, and concurrent inserts from both mounts stay intact', { timeout: 240_000 }, async () => {
    const { a, b } = mounts;
    const dbA = a.path('app.db');
    const dbB = b.path('app.db');
    assert.equal(await shOk(`sqlite3 -bail ${dbA} "PRAGMA journal_mode=DELETE; CREATE TABLE t(id INTEGER PRIMARY KEY, who TEXT NOT NULL, v TEXT NOT NULL);"`), 'delete');
    const query = `SELECT count(*) || ' ' || coalesce(sum(id * 7 + length(v)), 0) FROM t;`;
    let rows = 0;
    let sum = 0;
    for (let txn = 1; txn <= 12; txn++) {
      // Transactions of different sizes, with values large enough that the database grows by pages.
      const n = 1 + ((txn * 37) % 60);
      const values: string[] = [];
      for (let i = 0; i < n; i++) {
        const id = ++rows;
        const v = 'x'.repeat((id * 131) % 1000);
        sum += id * 7 + v.length;
        values.push(`(${id}, 'A', '${v}')`);
      }
      await shOk(`sqlite3 -bail ${dbA} "BEGIN; INSERT INTO t VALUES ${values.join(',')}; COMMIT;"`);
      assert.equal(await shOk(`sqlite3 -bail ${dbB} "${query}"`), `${rows} ${sum}`, `after A's transaction ${txn}, B reads exactly what A committed`);
    }
    assert.equal(await shOk(`sqlite3 -bail ${dbB} "PRAGMA integrity_check;"`), 'ok');

    // SQLite's own locks (fcntl byte ranges) must hold across the mounts: A's EXCLUSIVE transaction shuts B out.
    const holder = new LockOwner(['sqlite3', dbA], 'sqlite3 on A');
    children.push(holder);
    holder.send('BEGIN EXCLUSIVE;');
    holder.send(`INSERT INTO t(who, v) VALUES ('A', 'uncommitted');`);
    holder.send(`SELECT 'held';`);
    assert.equal(await holder.next(), 'held');
    const write = await sh(`sqlite3 ${dbB} "INSERT INTO t(who, v) VALUES ('B', 'while A is exclusive');"`);
    assert.match(write.stderr, /database is locked/, `an insert through B while A holds an EXCLUSIVE transaction: exit ${write.code} ${write.stderr}`);
    const read = await sh(`sqlite3 ${dbB} "SELECT count(*) FROM t;"`);
    assert.match(read.stderr, /database is locked/, `a read through B while A holds an EXCLUSIVE transaction: exit ${read.code}, read ${read.stdout.trim()} ${read.stderr}`);
    holder.send('ROLLBACK;');
    holder.send(`SELECT 'released';`);
    assert.equal(await holder.next(), 'released');
    holder.send('.quit');
    assert.equal(await holder.exited, 0);
    assert.equal(await shOk(`sqlite3 -bail ${dbB} "${query}"`), `${rows} ${sum}`, 'A\'s rolled-back insert left no trace on B');

    const PER_WRITER = 200;
    const script = (who: string) => ['.timeout 20000', ...Array.from({ length: PER_WRITER }, (_, i) => `INSERT INTO t(who, v) VALUES ('${who}', '${who}-${i}-${'y'.repeat(i % 300)}');`)].join('\n');
    await writeFile(a.path('..', 'insert-A.sql'), script('A'));
    await writeFile(b.path('..', 'insert-B.sql'), script('B'));
    const [ra, rb] = await Promise.all([
      sh(`sqlite3 -bail ${dbA} < ${a.path('..', 'insert-A.sql')}`, { timeoutMs: 180_000 }),
      sh(`sqlite3 -bail ${dbB} < ${b.path('..', 'insert-B.sql')}`, { timeoutMs: 180_000 }),
    ]);
    assert.equal(ra.code, 0, `inserts through A: ${ra.stderr}`);
    assert.equal(rb.code, 0, `inserts through B: ${rb.stderr}`);
    for (const db of [dbA, dbB]) {
      assert.equal(await shOk(`sqlite3 -bail ${db} "PRAGMA integrity_check;"`), 'ok', `integrity_check through ${db === dbA ? 'A' : 'B'}`);
      assert.equal(await shOk(`sqlite3 -bail ${db} "SELECT count(*) FROM t;"`), String(rows + 2 * PER_WRITER), `row count through ${db === dbA ? 'A' : 'B'}`);
      assert.equal(await shOk(`sqlite3 -bail ${db} "SELECT who || count(*) FROM t WHERE id > ${rows} GROUP BY who ORDER BY who;"`), `A${PER_WRITER}\nB${PER_WRITER}`);
    }
  });
});
