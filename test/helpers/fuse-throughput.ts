/**
 * Measures sequential 1 MiB write and read throughput through the native FUSE binding on a
 * fixture that drops written data and reads back zeros, so the figures are the binding's
 * (kernel <-> libfuse <-> JS) and not a storage backend's. Not a test: it prints numbers.
 *
 *   node dist/test/helpers/fuse-throughput.js [MiB=1024] [--writeback]
 */
import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { FUSE_ROOT_ID } from '../../src/fuse/lowlevel.js';
import { NativeFuseSession } from '../../src/fuse/native-session.js';
import { MemFs } from './memfs.js';
import { defaultOptions, makeMountpoint } from './fuse-mount.js';

const MIB = 1 << 20;

function dd(args: string[]): Promise<number> {
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    execFile('dd', [...args, 'status=none'], { timeout: 600_000 }, (e, _out, stderr) => {
      if (e) reject(new Error(`dd ${args.join(' ')}: ${stderr || e.message}`));
      else resolve(Number(process.hrtime.bigint() - t0) / 1e9);
    });
  });
}

function histogram(sizes: number[]): string {
  const m = new Map<number, number>();
  for (const s of sizes) m.set(s, (m.get(s) ?? 0) + 1);
  return [...m].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([s, n]) => `${n}x${s >= 1024 ? `${s / 1024}K` : s}`).join(' ');
}

async function main(): Promise<void> {
  const mib = Number(process.argv.find((a) => /^\d+$/.test(a)) ?? 1024);
  const writeback = process.argv.includes('--writeback');
  const fs = new MemFs({ attrTimeout: 60, entryTimeout: 60 });
  fs.addFile(FUSE_ROOT_ID, 'sink', '', { sink: true });
  fs.addFile(FUSE_ROOT_ID, 'zeros', '', { sink: true, size: mib * MIB });
  const { base, dir } = await makeMountpoint();
  const session = new NativeFuseSession(dir, fs, { ...defaultOptions, writebackCache: writeback, threads: Number(process.env.THREADS ?? 2) });
  await session.mount();
  try {
    const results: string[] = [];
    const report = (what: string, secs: number, sizes: number[]) =>
      results.push(`${what.padEnd(34)} ${(mib / secs).toFixed(0).padStart(6)} MiB/s  (${secs.toFixed(2)} s; requests ${histogram(sizes)})`);

    fs.writeSizes.length = 0;
    report('write bs=1M', await dd(['if=/dev/zero', `of=${dir}/sink`, 'bs=1M', `count=${mib}`, 'conv=fsync']), fs.writeSizes);
    fs.writeSizes.length = 0;
    report('write bs=1M oflag=direct', await dd(['if=/dev/zero', `of=${dir}/sink`, 'bs=1M', `count=${mib}`, 'oflag=direct']), fs.writeSizes);
    fs.readSizes.length = 0;
    report('read bs=1M (page cache, readahead)', await dd([`if=${dir}/zeros`, 'of=/dev/null', 'bs=1M']), fs.readSizes);
    fs.readSizes.length = 0;
    report('read bs=1M iflag=direct', await dd([`if=${dir}/zeros`, 'of=/dev/null', 'bs=1M', 'iflag=direct']), fs.readSizes);
    const st = session.stats();
    console.log(`native FUSE binding, ${mib} MiB per run${writeback ? ', writeback cache' : ''}`);
    for (const line of results) console.log(`  ${line}`);
    console.log(`  zero-copy writes ${st?.zeroCopyWrites}, copied writes ${st?.copiedWrites}, pooled buffers ${st?.pooledBuffers}`);
  } finally {
    await session.unmount();
    await rm(base, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
