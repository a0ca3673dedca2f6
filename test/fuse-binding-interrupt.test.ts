/**
 * Native FUSE binding: a request the kernel interrupts is answered EINTR at once, and the
 * handler sees ctx.interrupted. The request deadline is far away and the handler never
 * answers on its own, so only the interrupt can free the callers below.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, test } from 'node:test';
import { FUSE_ROOT_ID, type RequestCtx } from '../src/fuse/lowlevel.js';
import { MemFs } from './helpers/memfs.js';
import { cleanupMounts, waitFor, withMount } from './helpers/fuse-mount.js';

after(cleanupMounts);

/** A fixture whose `slow` file (direct I/O, so reads are synchronous) answers only once interrupted, and late. */
function slowFs(): { fs: MemFs; seen: RequestCtx[]; started: () => number } {
  const fs = new MemFs();
  const slow = fs.addFile(FUSE_ROOT_ID, 'slow', 'never read', { directIo: true });
  const seen: RequestCtx[] = [];
  const read = fs.read.bind(fs);
  fs.read = async (ctx, ino, size, off, fh) => {
    if (ino !== slow) return read(ctx, ino, size, off, fh);
    seen.push(ctx);
    // Without an interrupt this never answers: the caller would hang until the test times out.
    if (!(await waitFor(() => ctx.interrupted, 50_000))) return new Promise<Buffer>(() => {});
    return read(ctx, ino, size, off, fh);
  };
  return { fs, seen, started: () => seen.length };
}

function exited(child: ReturnType<typeof spawn>): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

test('kill -9 of a cat blocked in a slow read: cat goes away, the handler learns of it, its answer is dropped', { timeout: 60_000 }, () => {
  const { fs, seen, started } = slowFs();
  return withMount(fs, { requestTimeoutMs: 120_000 }, async (m) => {
    const cat = spawn('cat', [m.path('slow')], { stdio: 'ignore' });
    const gone = exited(cat);
    assert.ok(await waitFor(() => started() === 1), 'the read reached the handler');
    cat.kill('SIGKILL');
    assert.deepEqual(await gone, { code: null, signal: 'SIGKILL' });
    // recent kernels let a killed task go without waiting for the reply; the interrupt
    // still arrives, maybe just after
    assert.ok(await waitFor(() => seen[0]!.interrupted), 'the handler saw the interrupt');
    assert.ok(m.session.stats()!.interrupts >= 1);
    // the handler's own answer comes later and is dropped
    assert.ok(await waitFor(() => m.session.stats()!.late >= 1));
  });
});

test('a caught signal makes the blocked read(2) fail with EINTR', { timeout: 60_000 }, () => {
  const { fs, seen, started } = slowFs();
  return withMount(fs, { requestTimeoutMs: 120_000 }, async (m) => {
    // python's handlers are installed without SA_RESTART; libc read() shows the raw errno
    const py = [
      'import ctypes, errno, os, signal, sys',
      'signal.signal(signal.SIGUSR1, lambda s, f: None)',
      'libc = ctypes.CDLL(None, use_errno=True)',
      'fd = os.open(sys.argv[1], os.O_RDONLY)',
      'buf = ctypes.create_string_buffer(65536)',
      'n = libc.read(fd, buf, 65536)',
      'print(n, errno.errorcode.get(ctypes.get_errno(), ctypes.get_errno()), flush=True)',
    ].join('\n');
    const child = spawn('python3', ['-c', py, m.path('slow')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const gone = exited(child);
    assert.ok(await waitFor(() => started() === 1), 'the read reached the handler');
    child.kill('SIGUSR1');
    assert.deepEqual(await gone, { code: 0, signal: null });
    assert.equal(out.trim(), '-1 EINTR');
    assert.equal(seen[0]!.interrupted, true);
  });
});
