/** Client FID allocation: oids 1..width from a sequence granted by the MDS, no round trip per file. */
import type { Fid } from '../common/fid.js';

export class FidAllocator {
  private seq = 0;
  private nextOid = 1;
  private width = 0;
  private pending: Promise<void> | undefined;

  constructor(private readonly grant: () => Promise<{ seq: number; width: number }>) {}

  async next(): Promise<Fid> {
    while (this.nextOid > this.width) {
      this.pending ??= this.grant().then(
        (g) => {
          this.seq = g.seq;
          this.width = g.width;
          this.nextOid = 1;
          this.pending = undefined;
        },
        (e) => {
          this.pending = undefined;
          throw e;
        },
      );
      await this.pending;
    }
    return { seq: this.seq, oid: this.nextOid++, ver: 0 };
  }
}
