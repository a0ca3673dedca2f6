/** Shell commands that a test expects to succeed. */
import assert from 'node:assert/strict';
import { sh } from './mount.js';

/** Runs cmd in bash, asserts it exits 0 (showing its output if not), and returns its stdout trimmed. */
export async function shOk(cmd: string, timeoutMs = 60_000): Promise<string> {
  const r = await sh(cmd, { timeoutMs });
  assert.equal(r.code, 0, `${cmd}\n${r.stdout}\n${r.stderr}`);
  return r.stdout.trim();
}
