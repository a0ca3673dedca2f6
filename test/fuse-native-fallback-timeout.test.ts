/**
 * A handler that does not settle within requestTimeoutMs gets an ETIMEDOUT
 * reply (fuse-native alone would leave the caller hanging), its late result is
 * dropped, and the mount keeps serving.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { FallbackMemFs } from './helpers/fallback-memfs.js';
import { fallbackSkipReason, mountFallback, runFailing, waitFor, type FallbackMount } from './helpers/fallback-mount.js';

const skip = fallbackSkipReason();

/** Requests the test holds until it lets them go. */
class Gate {
  private held: (() => void)[] = [];
  entered = 0;
  readonly stuck = new Set<string>();

  wait(op: string, name?: string): Promise<void> | void {
    if (!this.stuck.has(op) && !(name !== undefined && this.stuck.has(`${op}:${name}`))) return;
    this.entered++;
    return new Promise((resolve) => this.held.push(resolve));
  }

  releaseAll(): void {
    for (const r of this.held.splice(0)) r();
  }
}

describe('fuse-native fallback: request timeouts', { skip }, () => {
  const gate = new Gate();
  const memfs = new FallbackMemFs({ gate: (op, _ino, name) => gate.wait(op, name) });
  let m: FallbackMount;

  before(async () => {
    m = await mountFallback(memfs, { requestTimeoutMs: 400 });
  });

  after(async () => {
    gate.releaseAll();
    await m?.cleanup();
  });

  it('answers a stuck read with ETIMEDOUT, then serves on', async () => {
    await fs.writeFile(m.p('slow'), 'late data');
    const before = m.session.translator.timeouts;
    gate.stuck.add('read');
    try {
      await assert.rejects(fs.readFile(m.p('slow')), { code: 'ETIMEDOUT' });
    } finally {
      gate.stuck.delete('read');
    }
    assert.equal(gate.entered, 1);
    assert.equal(m.session.translator.timeouts, before + 1);
    // the late result arrives after the error reply and is dropped
    gate.releaseAll();
    assert.equal(await fs.readFile(m.p('slow'), 'utf8'), 'late data');
  });

  it('answers a stuck lookup from a child process with ETIMEDOUT', async () => {
    gate.stuck.add('lookup:hang');
    try {
      const stderr = await runFailing('stat', [m.p('hang')]);
      assert.match(stderr, /timed out/i);
    } finally {
      gate.stuck.delete('lookup:hang');
      gate.releaseAll();
    }
    await assert.rejects(fs.stat(m.p('hang')), { code: 'ENOENT' });
  });

  it('releases a handle the filesystem opened after the open timed out', async () => {
    await fs.writeFile(m.p('late-open'), 'x');
    const node = memfs.nodeAt('/late-open')!;
    // the kernel sends RELEASE after close() returned
    assert.ok(await waitFor(() => node.opens === 0), 'the write handle was released');
    gate.stuck.add('open');
    try {
      await assert.rejects(fs.readFile(m.p('late-open')), { code: 'ETIMEDOUT' });
    } finally {
      gate.stuck.delete('open');
    }
    const releasesBefore = memfs.count('release');
    gate.releaseAll();
    assert.ok(await waitFor(() => memfs.count('release') > releasesBefore), 'the orphaned handle was released');
    assert.equal(node.opens, 0);
    assert.equal(m.session.translator.openHandles, 0);
  });
});
