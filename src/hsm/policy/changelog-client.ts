/**
 * Client side of an MDT's changelog (LLOG_CHANGELOG): register and deregister users,
 * read records in order, clear what was consumed. Used by lfs changelog, lctl
 * changelog_register and the policy engine. Replies are checked like any untrusted input.
 */
import { z } from 'zod';
import { err } from '../../common/errno.js';
import { validateFsname } from '../../common/targets.js';
import { parseBody } from '../../common/validate.js';
import type { ChangelogRecord } from '../../mds/changelog-types.js';
import { zChangelogRecord, type ChangelogReadReply, type ChangelogUsersReply } from '../../mds/changelog.js';
import { Opc } from '../../ptlrpc/opcodes.js';
import type { Import } from '../../ptlrpc/import.js';

const RegisterReply = z.object({ id: z.string() });
const ReadReply = z.object({ records: z.array(zChangelogRecord), current: z.number().int().min(0), eof: z.boolean() });
const UsersReply = z.object({
  current: z.number().int().min(0),
  users: z.array(z.object({ id: z.string(), endrec: z.number().int().min(0), idle: z.number().int().min(0) })),
});

export class ChangelogClient {
  constructor(private readonly imp: Import) {}

  private async call(body: unknown): Promise<unknown> {
    return (await this.imp.request(Opc.LLOG_CHANGELOG, body)).body;
  }

  /** a new user ("cl1"); it sees the records appended from now on */
  async register(): Promise<string> {
    return parseBody(RegisterReply, await this.call({ op: 'register' })).id;
  }

  async deregister(id: string): Promise<void> {
    await this.call({ op: 'deregister', id });
  }

  /** records with index > after, oldest first (one reply's worth) */
  async read(after: number, limit?: number): Promise<ChangelogReadReply> {
    const r = parseBody(ReadReply, await this.call(limit === undefined ? { op: 'read', after } : { op: 'read', after, limit }));
    return { records: r.records as ChangelogRecord[], current: r.current, eof: r.eof };
  }

  /** `id` has consumed every record up to `endrec` (0: the newest) */
  async clear(id: string, endrec: number): Promise<void> {
    await this.call({ op: 'clear', id, endrec });
  }

  async users(): Promise<ChangelogUsersReply> {
    return parseBody(UsersReply, await this.call({ op: 'users' }));
  }
}

/** "testfs-MDT0000" -> { fsname: 'testfs', index: 0 } */
export function parseMdtName(name: string): { fsname: string; index: number } {
  const m = /^(.+)-MDT([0-9a-fA-F]{4})$/.exec(name);
  if (!m) throw err('EINVAL', `'${name}' is not an MDT name (FSNAME-MDTxxxx, e.g. testfs-MDT0000)`, 'BAD_MDT_NAME');
  validateFsname(m[1]!);
  return { fsname: m[1]!, index: parseInt(m[2]!, 16) };
}
