/**
 * Object allocation for new files (Lustre's LOD): picks OSTs round-robin
 * starting at the requested offset, skipping inactive and full OSTs and those
 * outside the requested pool, and takes a precreated object from each.
 */
import { err } from '../common/errno.js';
import type { OstObject } from '../common/layout.js';
import type { OstProxy } from './osp.js';

export interface AllocRequest {
  stripeCount: number; // -1 = all usable OSTs
  stripeOffset: number; // -1 = allocator's choice
  pool?: string;
}

const OBJECT_WAIT_MS = 10_000;

export class ObjectAllocator {
  private readonly osts = new Map<number, OstProxy>();
  private pools: Record<string, number[]> = {};
  private rrNext = 0;

  addOst(osp: OstProxy): void {
    this.osts.set(osp.index, osp);
  }

  getOst(index: number): OstProxy | undefined {
    return this.osts.get(index);
  }

  allOsts(): OstProxy[] {
    return [...this.osts.values()].sort((a, b) => a.index - b.index);
  }

  setPools(pools: Record<string, number[]>): void {
    this.pools = pools;
  }

  /** Chooses the OSTs and takes one object on each; fewer stripes when fewer OSTs are usable. */
  async allocate(req: AllocRequest): Promise<OstObject[]> {
    let candidates = this.allOsts();
    if (req.pool) {
      const members = this.pools[req.pool];
      if (!members) throw err('EINVAL', `pool '${req.pool}' does not exist`, 'NO_SUCH_POOL');
      candidates = candidates.filter((o) => members.includes(o.index));
    }
    const usable = candidates.filter((o) => o.active && !o.full);
    if (usable.length === 0) {
      throw err('ENOSPC', req.pool ? `no usable OST in pool '${req.pool}'` : 'no usable OST: all are inactive or full', 'NO_OST_AVAILABLE');
    }
    const want = req.stripeCount === -1 ? usable.length : Math.min(req.stripeCount, usable.length);
    let start: number;
    if (req.stripeOffset >= 0 && usable.some((o) => o.index === req.stripeOffset)) {
      start = usable.findIndex((o) => o.index === req.stripeOffset);
    } else {
      // An explicit but unusable offset is replaced silently, as Lustre does.
      start = this.rrNext % usable.length;
      this.rrNext = (this.rrNext + 1) % Number.MAX_SAFE_INTEGER;
    }
    const objects: OstObject[] = [];
    for (let i = 0; i < usable.length && objects.length < want; i++) {
      const osp = usable[(start + i) % usable.length]!;
      let oid = await osp.take();
      if (oid === undefined && (await osp.waitForObjects(OBJECT_WAIT_MS))) oid = await osp.take();
      if (oid === undefined) continue;
      objects.push({ ostIdx: osp.index, seq: osp.seq, oid });
    }
    if (objects.length === 0) throw err('ENOSPC', 'no OST could provide an object', 'NO_OST_AVAILABLE');
    return objects;
  }
}
