/**
 * Native FUSE binding: lock requests reach getlk/setlk/flock when the ops object has them;
 * without them the binding does not register the operations and the kernel locks locally.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { err } from '../src/common/errno.js';
import { FUSE_ROOT_ID, type FlockOut, type RequestCtx } from '../src/fuse/lowlevel.js';
import { MemFs } from './helpers/memfs.js';
import { cleanupMounts, run, withMount } from './helpers/fuse-mount.js';

after(cleanupMounts);

const F_WRLCK = 1;
const F_UNLCK = 2;
const LOCK_EX = 2;
const LOCK_UN = 8;

interface Held extends FlockOut {
  ino: bigint;
  owner: bigint;
}

/** The fixture plus a simple lock table, recording every lock request. */
class LockingFs extends MemFs {
  readonly posix: Held[] = [];
  readonly flocks = new Map<bigint, { owner: bigint; exclusive: boolean }[]>();
  readonly lockCalls: string[] = [];

  private conflict(ino: bigint, owner: bigint, l: FlockOut): Held | undefined {
    return this.posix.find((h) => h.ino === ino && h.owner !== owner && h.start <= l.end && l.start <= h.end && (h.type === F_WRLCK || l.type === F_WRLCK));
  }

  private unlockOwner(owner: bigint): void {
    for (let i = this.posix.length - 1; i >= 0; i--) if (this.posix[i]!.owner === owner) this.posix.splice(i, 1);
  }

  override async flush(_ctx: RequestCtx, _ino: bigint, _fh: number, lockOwner?: bigint): Promise<void> {
    if (lockOwner !== undefined) this.unlockOwner(lockOwner);
  }

  override async release(_ctx: RequestCtx, ino: bigint, _fh: number, _flags: number, flockOwner?: bigint): Promise<void> {
    if (flockOwner !== undefined) this.flocks.set(ino, (this.flocks.get(ino) ?? []).filter((h) => h.owner !== flockOwner));
  }

  async getlk(_ctx: RequestCtx, ino: bigint, _fh: number, owner: bigint, lock: FlockOut): Promise<FlockOut> {
    this.lockCalls.push(`getlk ${lock.type} ${lock.start}-${lock.end}`);
    const c = this.conflict(ino, owner, lock);
    return c ? { type: c.type, start: c.start, end: c.end, pid: c.pid } : { ...lock, type: F_UNLCK };
  }

  async setlk(_ctx: RequestCtx, ino: bigint, _fh: number, owner: bigint, lock: FlockOut, sleep: boolean): Promise<void> {
    this.lockCalls.push(`setlk ${lock.type} ${lock.start}-${lock.end}${sleep ? ' wait' : ''}`);
    if (lock.type === F_UNLCK) {
      this.unlockOwner(owner);
      return;
    }
    if (this.conflict(ino, owner, lock)) throw err('EAGAIN', 'conflicting lock');
    this.posix.push({ ...lock, ino, owner });
  }

  async flock(_ctx: RequestCtx, ino: bigint, _fh: number, owner: bigint, op: number): Promise<void> {
    this.lockCalls.push(`flock ${op}`);
    const held = (this.flocks.get(ino) ?? []).filter((h) => h.owner !== owner);
    if (op & LOCK_UN) {
      this.flocks.set(ino, held);
      return;
    }
    const exclusive = (op & LOCK_EX) !== 0;
    if (held.some((h) => h.exclusive || exclusive)) throw err('EAGAIN', 'conflicting flock');
    held.push({ owner, exclusive });
    this.flocks.set(ino, held);
  }
}

// One process holds locks; a forked child tries conflicting ones without waiting.
const script = `
import fcntl, os, struct, sys
p = sys.argv[1]
a = os.open(p, os.O_RDWR)
b = os.open(p, os.O_RDWR)
fcntl.flock(a, fcntl.LOCK_EX)
try:
    fcntl.flock(b, fcntl.LOCK_EX | fcntl.LOCK_NB)
    print('flock: second got it')
except BlockingIOError:
    print('flock: second refused')
fcntl.flock(a, fcntl.LOCK_UN)
fcntl.lockf(a, fcntl.LOCK_EX, 100, 0)
pid = os.fork()
if pid == 0:
    c = os.open(p, os.O_RDWR)
    try:
        fcntl.lockf(c, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 50)
        print('posix: child got it', flush=True)
    except OSError:
        print('posix: child refused', flush=True)
    q = fcntl.fcntl(c, fcntl.F_GETLK, struct.pack('hhqqi', fcntl.F_WRLCK, 0, 0, 0, 0))
    t, w, start, ln, holder = struct.unpack('hhqqi', q)
    print('getlk:', t == fcntl.F_WRLCK, start, ln, holder == os.getppid(), flush=True)
    fcntl.lockf(c, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 200)
    print('posix: child got another range', flush=True)
    os._exit(0)
os.waitpid(pid, 0)
`;

test('without lock handlers the kernel keeps flock and POSIX locks locally', { timeout: 60_000 }, () => {
  const fs = new MemFs();
  fs.addFile(FUSE_ROOT_ID, 'f', 'x');
  return withMount(fs, {}, async (m) => {
    const r = await run(['python3', '-c', script, m.path('f')]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'flock: second refused\nposix: child refused\ngetlk: True 0 100 True\nposix: child got another range\n');
  });
});

test('with lock handlers, getlk/setlk/flock decide and see owners and ranges', { timeout: 60_000 }, () => {
  const fs = new LockingFs();
  fs.addFile(FUSE_ROOT_ID, 'f', 'x');
  return withMount(fs, {}, async (m) => {
    const r = await run(['python3', '-c', script, m.path('f')]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'flock: second refused\nposix: child refused\ngetlk: True 0 100 True\nposix: child got another range\n');
    assert.ok(fs.lockCalls.includes(`flock ${LOCK_EX}`));
    assert.ok(fs.lockCalls.includes(`flock ${LOCK_UN}`));
    assert.ok(fs.lockCalls.includes(`setlk ${F_WRLCK} 0-99 wait`));
    assert.ok(fs.lockCalls.includes(`setlk ${F_WRLCK} 50-59`));
    assert.ok(fs.lockCalls.includes(`getlk ${F_WRLCK} 0-${Number.MAX_SAFE_INTEGER}`));
    // closing the files released everything through flush/release with the owners
    assert.deepEqual(fs.posix, []);
    assert.deepEqual([...fs.flocks.values()].flat(), []);
  });
});
