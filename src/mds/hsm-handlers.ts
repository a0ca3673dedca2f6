/**
 * HSM inside the MDT (reference §7): the MDS_HSM_* request handlers, the synchronous
 * release, and the host the coordinator calls back into (inodes, restore layouts,
 * completions under EX locks, changelog events).
 */
import { z } from 'zod';
import type { Logger } from '../common/log.js';
import { zFid, zSafeUint, zTimestamp } from '../common/validate.js';
import { err, toStriaError } from '../common/errno.js';
import { fidKey, fidToString, type Fid } from '../common/fid.js';
import type { Inode } from '../common/inode.js';
import type { OstObject, Raid0Layout } from '../common/layout.js';
import { Opc } from '../ptlrpc/opcodes.js';
import type { RequestContext } from '../ptlrpc/types.js';
import { InodeBit } from '../ldlm/inodebits.js';
import { HS } from '../hsm/flags.js';
import {
  HsmCtRegisterBody, HsmFidBody, HsmProgressBody, HsmReleaseBody, HsmRequestBody, HsmStateSetBody, parseBody,
  type HsmActionReply, type HsmReleaseReply, type HsmRequestReply, type HsmStateReply,
} from '../hsm/protocol.js';
import type { Coordinator, CoordinatorHost } from '../hsm/coordinator.js';
import { CLF_HSM_EVENT } from './changelog-types.js';
import type { ObjectAllocator } from './lod.js';
import { CLIENT_CACHE_BITS, requireExport, type MdtTarget } from './mdt-target.js';

/** how long a restore waits for a usable OST (the OSTs reconnect after an MDS restart) */
const RESTORE_ALLOC_WAIT_MS = 20_000;
const RESTORE_ALLOC_RETRY_MS = 250;

const NOOP_ACTION: HsmActionReply = { action: 'NOOP', bytesMoved: 0, extent: { offset: 0, length: 0 } };

export function registerHsmHandlers(mdt: MdtTarget): void {
  const h = mdt.handlers;
  const ns = mdt.namespace;
  h.set(Opc.MDS_HSM_REQUEST, async (ctx) => {
    const action = (ctx.body as { action?: unknown } | undefined)?.action;
    if (action === 'release') return { body: await release(mdt, ctx, parseBody(HsmReleaseBody, ctx.body)) };
    if (action === 'pcc_size') return { body: await pccSize(mdt, ctx, parseBody(PccSizeBody, ctx.body)) };
    const b = parseBody(HsmRequestBody, ctx.body);
    const reply: HsmRequestReply = await coordinatorOf(mdt).request(ctx.export, { uid: ctx.uid, gid: ctx.gid }, b);
    return { body: reply };
  });
  h.set(Opc.MDS_HSM_STATE_GET, async (ctx) => {
    const { fid } = parseBody(HsmFidBody, ctx.body);
    const s = await ns.hsmState(fid);
    return { body: { flags: s.flags, archiveId: s.archiveId } satisfies HsmStateReply };
  });
  h.set(Opc.MDS_HSM_STATE_SET, async (ctx) => {
    const b = parseBody(HsmStateSetBody, ctx.body);
    const cred = { uid: ctx.uid, gid: ctx.gid };
    if (b.rebase) {
      // the version moves only from the recorded one, so any user's utimes may carry it along
      if (b.set !== 0 || b.clear !== 0 || b.archiveId !== undefined) throw err('EINVAL', 'a data version rebase changes no flags', 'BAD_REQUEST');
      const { from, to } = b.rebase;
      await mdt.underLocks([[b.fid, InodeBit.UPDATE]], () => ns.hsmRebaseVersion(b.fid, from, to));
      const h = await ns.hsmState(b.fid);
      return { body: { flags: h.flags, archiveId: h.archiveId } satisfies HsmStateReply };
    }
    const inode = await mdt.underLocks([[b.fid, InodeBit.UPDATE]], () => ns.hsmSetState(b.fid, b.set, b.clear, b.archiveId, cred));
    const s = inode.hsm ?? { flags: 0, archiveId: 0 };
    await mdt.recordHsm(ctx, b.fid, CLF_HSM_EVENT.STATE, 0, (s.flags & HS.DIRTY) !== 0);
    return { body: { flags: s.flags, archiveId: s.archiveId } satisfies HsmStateReply };
  });
  h.set(Opc.MDS_HSM_ACTION, async (ctx) => {
    const { fid } = parseBody(HsmFidBody, ctx.body);
    await ns.getattr(fid); // ENOENT for a file that does not exist
    return { body: mdt.coordinator?.action(fid) ?? NOOP_ACTION };
  });
  h.set(Opc.MDS_HSM_PROGRESS, async (ctx) => {
    requireRoot(ctx, 'report copytool progress');
    const b = parseBody(HsmProgressBody, ctx.body);
    await coordinatorOf(mdt).progress(requireExport(ctx.export), b);
    return { body: {} };
  });
  h.set(Opc.MDS_HSM_CT_REGISTER, (ctx) => {
    requireRoot(ctx, 'register a copytool');
    const { archiveIds } = parseBody(HsmCtRegisterBody, ctx.body);
    coordinatorOf(mdt).registerAgent(requireExport(ctx.export), archiveIds);
    return { body: {} };
  });
  h.set(Opc.MDS_HSM_CT_UNREGISTER, (ctx) => {
    requireRoot(ctx, 'unregister a copytool');
    coordinatorOf(mdt).unregisterAgent(requireExport(ctx.export));
    return { body: {} };
  });
}

/**
 * Synchronous release (reference §7.2): root only; refused while an HSM action runs on the
 * file or it is open for write (EBUSY). Every client drops its cached layout before the
 * stub replaces it (EX on what clients cache), and only then are the objects destroyed.
 */
async function release(mdt: MdtTarget, ctx: RequestContext, b: HsmReleaseBody): Promise<HsmReleaseReply> {
  requireRoot(ctx, 'release files');
  const notBusy = () => {
    if (mdt.coordinator?.hasActive(b.fid)) throw err('EBUSY', `an HSM action is running on ${fidToString(b.fid)}`, 'HSM_ACTION_ACTIVE');
  };
  notBusy();
  const r = await mdt.underLocks([[b.fid, CLIENT_CACHE_BITS]], async () => {
    notBusy();
    return mdt.namespace.hsmRelease(b.fid, { dataVersion: b.dataVersion, size: b.size, atime: b.atime, mtime: b.mtime, ctime: b.ctime });
  });
  mdt.destroyObjects(r.destroy);
  if (r.released) await mdt.recordHsm(ctx, b.fid, CLF_HSM_EVENT.RELEASE, 0, false);
  return { inode: r.inode };
}

/**
 * PCC's lazy size (reference §6): the client caching a released file read-write (the
 * registered agent of the file's archive id, root) reports the size and mtime its copy has,
 * so other clients see them before they restore the file. Under EX UPDATE: clients drop
 * the attributes they cached.
 */
const PccSizeBody = z.object({ action: z.literal('pcc_size'), fid: zFid, size: zSafeUint, mtime: zTimestamp });

async function pccSize(mdt: MdtTarget, ctx: RequestContext, b: z.infer<typeof PccSizeBody>): Promise<{ inode: Inode }> {
  requireRoot(ctx, 'report the size of a PCC copy');
  const exp = requireExport(ctx.export);
  const h = await mdt.namespace.hsmState(b.fid);
  const agent = coordinatorOf(mdt).listAgents().find((a) => a.uuid === exp.clientUuid);
  if (!agent || !agent.archiveIds.includes(h.archiveId)) {
    throw err('EPERM', `only the agent of archive ${h.archiveId} may report the size of ${fidToString(b.fid)}`, 'NOT_PCC_OWNER');
  }
  const inode = await mdt.underLocks([[b.fid, InodeBit.UPDATE]], () => mdt.namespace.hsmPccSize(b.fid, b.size, b.mtime));
  return { inode };
}

function requireRoot(ctx: RequestContext, what: string): void {
  if (ctx.uid !== 0) throw err('EPERM', `only root may ${what}`);
}

function coordinatorOf(mdt: MdtTarget): Coordinator {
  const c = mdt.coordinator;
  // Lustre answers EAGAIN while its coordinator is not running
  if (!c) throw err('EAGAIN', `${mdt.name} has no HSM coordinator running`, 'NO_COORDINATOR');
  return c;
}

/** The MDT side of the coordinator: everything it needs to read or change in the namespace. */
export class MdtHsmHost implements CoordinatorHost {
  constructor(
    private readonly mdt: MdtTarget,
    private readonly lod: ObjectAllocator,
    readonly fsname: string,
    private readonly log: Logger,
  ) {}

  async getInode(fid: Fid): Promise<Inode | undefined> {
    try {
      return await this.mdt.namespace.getattr(fid);
    } catch (e) {
      if (toStriaError(e).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  /** Fresh objects shaped like the released stub (count, offset, pool, stripe size). */
  async allocateRestoreLayout(inode: Inode): Promise<Raid0Layout> {
    const stub = inode.layout;
    if (inode.type !== 'reg' || !stub || stub.pattern !== 'released') {
      throw err('EINVAL', `${fidToString(inode.fid)} is not released: nothing to restore`, 'NOT_RELEASED');
    }
    const req = { stripeCount: Math.max(1, stub.stripeCount), stripeOffset: stub.stripeOffset, pool: stub.pool };
    const deadline = Date.now() + RESTORE_ALLOC_WAIT_MS;
    for (;;) {
      try {
        const objects = await this.lod.allocate(req);
        const layout: Raid0Layout = {
          pattern: 'raid0', stripeSize: stub.stripeSize, stripeCount: objects.length, stripeOffset: stub.stripeOffset, layoutGen: stub.layoutGen, objects,
        };
        if (stub.pool !== undefined) layout.pool = stub.pool;
        return layout;
      } catch (e) {
        if (toStriaError(e).code !== 'NO_OST_AVAILABLE' || Date.now() >= deadline) throw e;
        await new Promise((r) => setTimeout(r, RESTORE_ALLOC_RETRY_MS).unref());
      }
    }
  }

  destroyObjects(objects: OstObject[]): void {
    this.mdt.destroyObjects(objects);
  }

  /** Under EX on the attributes: clients drop the state they cached. */
  async completeArchive(fid: Fid, archiveId: number, result: { dataVersion: string; size: number; checksum: string }): Promise<void> {
    const ns = this.mdt.namespace;
    await this.mdt.underLocks([[fid, InodeBit.UPDATE]], () => ns.hsmCompleteArchive(fid, archiveId, result, ns.isOpenForWrite(fid)));
  }

  /**
   * Under EX on everything clients cache: each drops the released layout and re-reads the
   * restored one. `dataVersion`: the restored objects' version, when the copytool reports it.
   */
  async completeRestore(fid: Fid, layout: Raid0Layout, dataVersion?: string): Promise<void> {
    await this.mdt.underLocks([[fid, CLIENT_CACHE_BITS]], () => this.mdt.namespace.hsmCompleteRestore(fid, layout, dataVersion));
  }

  async completeRemove(fid: Fid): Promise<void> {
    await this.mdt.underLocks([[fid, InodeBit.UPDATE]], () => this.mdt.namespace.hsmCompleteRemove(fid));
  }

  hsmEvent(fid: Fid, event: number, errval: number): void {
    this.mdt.recordHsm(undefined, fid, event, errval).catch((e: unknown) => {
      this.log.warn({ fid: fidKey(fid), event, err: toStriaError(e).message }, 'HSM changelog record failed');
    });
  }
}
