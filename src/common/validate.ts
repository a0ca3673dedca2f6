/** Validation of untrusted request bodies with zod; failures become EINVAL naming the field. */
import { z } from 'zod';
import { err } from './errno.js';

export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body);
  if (!r.success) {
    const issue = r.error.issues[0];
    const where = issue && issue.path.length > 0 ? issue.path.join('.') : 'body';
    throw err('EINVAL', `bad request: ${where}: ${issue?.message ?? 'invalid'}`, 'BAD_REQUEST');
  }
  return r.data;
}

export const zU32 = z.number().int().min(0).max(0xffffffff);
export const zSafeUint = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
export const zFid = z.object({ seq: zSafeUint, oid: zU32, ver: zU32 });
export const zTimestamp = z.object({ sec: z.number().int().min(-(2 ** 52)).max(2 ** 52), nsec: z.number().int().min(0).max(999_999_999) });
