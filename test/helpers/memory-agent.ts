/**
 * An HSM copytool for tests of the MDT side: a StriaClient registered for archive 1 that
 * keeps archive copies in memory, runs actions as they are pushed (or holds them while
 * `hold` is set), and registers again whenever its MDT connection comes back.
 */
import { createHash } from 'node:crypto';
import { fidKey } from '../../src/common/fid.js';
import type { HsmActionItem } from '../../src/hsm/protocol.js';
import type { StriaClient } from '../../src/client/client.js';

export class MemoryAgent {
  readonly received: HsmActionItem[] = [];
  readonly held: HsmActionItem[] = [];
  hold = false;

  /** `copies` may be shared by several agents, as one archive behind several copytools */
  constructor(
    readonly client: StriaClient,
    readonly copies = new Map<string, Buffer>(),
  ) {}

  async start(): Promise<void> {
    this.client.onMdtReconnect(() => void this.client.hsm.register([1]).catch(() => undefined));
    this.client.onHsmActions((hal) => {
      for (const item of hal.items) {
        this.received.push(item);
        if (this.hold) this.held.push(item);
        else void this.run(item);
      }
    });
    await this.client.hsm.register([1]);
  }

  release(): void {
    this.hold = false;
    for (const item of this.held.splice(0)) void this.run(item);
  }

  private async run(item: HsmActionItem): Promise<void> {
    const c = this.client;
    const base = { cookie: item.cookie, fid: item.fid };
    if (item.action === 'CANCEL') return;
    try {
      await c.hsm.progress({ ...base, phase: 'begin' });
      if (item.action === 'ARCHIVE') {
        const dataVersion = await c.dataVersion(item.fid);
        const size = (await c.getattr(item.fid)).size;
        const f = await c.open(item.fid);
        const data = size > 0 ? await c.read(f, 0, size) : Buffer.alloc(0);
        await c.close(f);
        this.copies.set(fidKey(item.fid), data);
        const checksum = `sha256:${createHash('sha256').update(data).digest('hex')}`;
        await c.hsm.progress({ ...base, phase: 'end', bytes: size, archived: { dataVersion, size, checksum } });
      } else if (item.action === 'RESTORE') {
        const r = item.restore!;
        const data = this.copies.get(fidKey(item.fid))!;
        if (data.length > 0) await c.writeObjects(item.fid, r.layout, 0, data);
        await c.finishObjects(item.fid, r.layout, { size: r.size, atime: r.atime, mtime: r.mtime });
        await c.hsm.progress({ ...base, phase: 'end', bytes: data.length });
      } else {
        this.copies.delete(fidKey(item.fid));
        await c.hsm.progress({ ...base, phase: 'end' });
      }
    } catch (e) {
      await c.hsm.progress({ ...base, phase: 'end', errval: (e as { errno?: number }).errno ?? 5 }).catch(() => undefined);
    }
  }
}
