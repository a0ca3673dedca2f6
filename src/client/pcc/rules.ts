/**
 * The "RULE PARAMS" string of `lctl pcc add` (reference §6, Lustre's llite/pcc.c parser):
 *
 *   "projid={500,1000}&fname={*.h5},uid=1001 rwid=2 auto_attach=1"
 *
 * The rule is one token of conditions: `&` joins conditions that must all hold, `,` (outside
 * braces) separates alternatives of which one must hold (AND binds tighter than OR).
 * A condition is FIELD OP VALUES with OP `=`, `<` or `>` and VALUES either `{v1,v2,...}`
 * (any of them; commas or spaces separate) or one bare value. Fields:
 *   uid, gid, projid   numbers, `=` only
 *   fname              shell globs (`*`, `?`, `[...]`) on the file's name, `=` only
 *   size               bytes with optional K/M/G/T/P suffix (base 2), `=`, `<`, `>`
 *   mtime              the file's age (now - mtime) in seconds, optional s/m/h/d/w suffix,
 *                      `<`, `>` (`mtime<{1h}`: changed within the last hour)
 * The other tokens are parameters KEY=VALUE (or a bare KEY meaning 1).
 */
import { err } from '../../common/errno.js';
import { parseSize } from '../../common/units.js';

export type RuleField = 'uid' | 'gid' | 'projid' | 'fname' | 'size' | 'mtime';
export type RuleOp = '=' | '<' | '>';

export interface Condition {
  field: RuleField;
  op: RuleOp;
  /** numbers for uid/gid/projid/size/mtime (mtime in seconds), strings (globs) for fname */
  values: Array<number | string>;
}

/** Alternatives (OR) of conjunctions (AND). An empty rule matches nothing. */
export interface Rule {
  text: string;
  anyOf: Condition[][];
}

/** What a rule is matched against. */
export interface RuleSubject {
  uid: number;
  gid: number;
  projid: number;
  /** the file's name (last path component) */
  name: string;
  size: number;
  /** mtime, seconds since the epoch */
  mtimeSec: number;
}

export interface PccParams {
  /** RW-PCC archive id (HSM archive id of this mount's copytool); 0 = no RW */
  rwid: number;
  /** RO-PCC id; 0 = no RO */
  roid: number;
  /** RW rules attach new files at creation */
  autoAttach: boolean;
  /** RO rules attach at O_RDONLY open */
  openAttach: boolean;
  ioAttach: boolean;
  statAttach: boolean;
  mmapConv: boolean;
  projQuota: boolean;
  hsmtool: string | undefined;
  /** the parameters as given, for `lctl pcc list` */
  raw: Record<string, string>;
}

export interface BackendSpec {
  rule: Rule | undefined;
  params: PccParams;
}

const FIELDS = new Set<RuleField>(['uid', 'gid', 'projid', 'fname', 'size', 'mtime']);
const PARAM_KEYS = new Set(['rwid', 'roid', 'auto_attach', 'open_attach', 'io_attach', 'stat_attach', 'pccrw', 'pccro', 'mmap_conv', 'proj_quota', 'hsmtool']);
const MAX_RULE_LEN = 4096;
const MAX_VALUES = 256;
const U32_MAX = 0xffffffff;

/** Splits on whitespace outside braces. */
function tokens(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  let depth = 0;
  for (const ch of text) {
    if (ch === '{') depth++;
    else if (ch === '}') depth = Math.max(0, depth - 1);
    if (/\s/.test(ch) && depth === 0) {
      if (cur) out.push(cur);
      cur = '';
      continue;
    }
    cur += ch;
  }
  if (depth !== 0) throw badRule(text, 'unbalanced braces');
  if (cur) out.push(cur);
  return out;
}

/** Splits `s` on `sep` where it is outside braces. */
function splitOutside(s: string, sep: string): string[] {
  const out: string[] = [];
  let cur = '';
  let depth = 0;
  for (const ch of s) {
    if (ch === '{') depth++;
    else if (ch === '}') depth--;
    if (ch === sep && depth === 0) {
      out.push(cur);
      cur = '';
      continue;
    }
    cur += ch;
  }
  out.push(cur);
  return out;
}

function badRule(text: string, why: string): Error {
  return err('EINVAL', `invalid PCC rule '${text.slice(0, 200)}': ${why}`, 'BAD_PCC_RULE');
}

const AGE_UNITS: Record<string, number> = { '': 1, s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

function parseValue(field: RuleField, v: string, text: string): number | string {
  if (field === 'fname') {
    if (v.length === 0 || v.includes('/')) throw badRule(text, `bad file name pattern '${v}'`);
    return v;
  }
  if (field === 'size') {
    try {
      return parseSize(v);
    } catch {
      throw badRule(text, `bad size '${v}'`);
    }
  }
  if (field === 'mtime') {
    const m = /^(\d+)([smhdw]?)$/i.exec(v);
    if (!m) throw badRule(text, `bad age '${v}'`);
    return Number(m[1]) * AGE_UNITS[m[2]!.toLowerCase()]!;
  }
  if (!/^\d+$/.test(v) || Number(v) > U32_MAX) throw badRule(text, `bad ${field} '${v}'`);
  return Number(v);
}

function parseCondition(s: string, text: string): Condition {
  const m = /^([a-z]+)([=<>])(.*)$/.exec(s);
  if (!m) throw badRule(text, `'${s}' is not FIELD=VALUE`);
  const field = m[1] as RuleField;
  const op = m[2] as RuleOp;
  if (!FIELDS.has(field)) throw badRule(text, `unknown field '${m[1]}'`);
  if (op !== '=' && field !== 'size' && field !== 'mtime') throw badRule(text, `${field} only compares with '='`);
  if (op === '=' && field === 'mtime') throw badRule(text, `mtime compares with '<' or '>'`);
  let raw = m[3]!;
  if (raw.startsWith('{')) {
    if (!raw.endsWith('}')) throw badRule(text, `'${s}': missing '}'`);
    raw = raw.slice(1, -1);
  } else if (raw.includes('{') || raw.includes('}')) {
    throw badRule(text, `'${s}': misplaced brace`);
  }
  const parts = raw.split(/[\s,]+/).filter((p) => p.length > 0);
  if (parts.length === 0) throw badRule(text, `'${s}' has no value`);
  if (parts.length > MAX_VALUES) throw badRule(text, `'${s}' has more than ${MAX_VALUES} values`);
  if (op !== '=' && parts.length > 1) throw badRule(text, `'${s}': '${op}' takes one value`);
  return { field, op, values: parts.map((p) => parseValue(field, p, text)) };
}

export function parseRule(text: string): Rule {
  if (text.length > MAX_RULE_LEN) throw badRule(text, 'too long');
  const anyOf = splitOutside(text, ',').map((alt) => {
    if (alt.length === 0) throw badRule(text, 'empty alternative');
    return splitOutside(alt, '&').map((c) => {
      if (c.length === 0) throw badRule(text, 'empty condition');
      return parseCondition(c, text);
    });
  });
  return { text, anyOf };
}

function parseBoolParam(key: string, v: string): boolean {
  if (v === '1' || v === 'yes' || v === 'on' || v === 'true') return true;
  if (v === '0' || v === 'no' || v === 'off' || v === 'false') return false;
  throw err('EINVAL', `invalid value '${v}' for PCC parameter ${key}`, 'BAD_PCC_PARAM');
}

function parseId(key: string, v: string): number {
  if (!/^\d+$/.test(v) || Number(v) === 0 || Number(v) > U32_MAX) throw err('EINVAL', `invalid ${key} '${v}': must be 1..${U32_MAX}`, 'BAD_PCC_PARAM');
  return Number(v);
}

/**
 * Parses "RULE PARAMS". As in Lustre, a backend is read-write when it has `rwid` (unless
 * `pccrw=0`) and read-only when it has `roid` or `pccro=1` (its id then `roid`, else `rwid`).
 * `open_attach` defaults to on; `auto_attach` (attach at creation by RW rules) too.
 */
export function parseBackendSpec(text: string): BackendSpec {
  let rule: Rule | undefined;
  const raw: Record<string, string> = {};
  for (const tok of tokens(text)) {
    const eq = tok.indexOf('=');
    const key = eq < 0 ? tok : tok.slice(0, eq);
    if (PARAM_KEYS.has(key)) {
      if (Object.hasOwn(raw, key)) throw err('EINVAL', `PCC parameter ${key} given twice`, 'BAD_PCC_PARAM');
      raw[key] = eq < 0 ? '1' : tok.slice(eq + 1);
      continue;
    }
    if (rule) throw badRule(text, `a backend has one rule; '${tok}' is a second one`);
    rule = parseRule(tok);
  }
  const bool = (key: string, dflt: boolean) => (raw[key] === undefined ? dflt : parseBoolParam(key, raw[key]!));
  let rwid = raw.rwid === undefined ? 0 : parseId('rwid', raw.rwid);
  let roid = raw.roid === undefined ? 0 : parseId('roid', raw.roid);
  if (!bool('pccrw', true)) rwid = 0;
  if (roid === 0 && bool('pccro', false)) roid = rwid;
  if (raw.pccro !== undefined && !bool('pccro', true)) roid = 0;
  if (rwid === 0 && roid === 0) throw err('EINVAL', 'a PCC backend needs rwid=N (read-write) or roid=N (read-only)', 'BAD_PCC_PARAM');
  return {
    rule,
    params: {
      rwid,
      roid,
      autoAttach: bool('auto_attach', true),
      openAttach: bool('open_attach', true),
      ioAttach: bool('io_attach', false),
      statAttach: bool('stat_attach', false),
      mmapConv: bool('mmap_conv', false),
      projQuota: bool('proj_quota', false),
      hsmtool: raw.hsmtool,
      raw,
    },
  };
}

/** Shell-style glob over one name: `*`, `?`, `[abc]`, `[!a-z]`, `\x`. */
export function globMatch(pattern: string, name: string): boolean {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '\\' && i + 1 < pattern.length) re += escapeRe(pattern[++i]!);
    else if (c === '[') {
      const close = pattern.indexOf(']', i + 2);
      if (close < 0) {
        re += '\\[';
        continue;
      }
      let body = pattern.slice(i + 1, close);
      if (body.startsWith('!')) body = `^${body.slice(1)}`;
      re += `[${body.replace(/\\/g, '\\\\')}]`;
      i = close;
    } else re += escapeRe(c);
  }
  return new RegExp(`${re}$`, 's').test(name);
}

function escapeRe(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

function holds(c: Condition, s: RuleSubject, nowSec: number): boolean {
  let have: number | string;
  switch (c.field) {
    case 'fname':
      return c.values.some((g) => globMatch(g as string, s.name));
    case 'uid':
      have = s.uid;
      break;
    case 'gid':
      have = s.gid;
      break;
    case 'projid':
      have = s.projid;
      break;
    case 'size':
      have = s.size;
      break;
    case 'mtime':
      have = Math.max(0, nowSec - s.mtimeSec);
      break;
  }
  const v = c.values[0] as number;
  if (c.op === '<') return have < v;
  if (c.op === '>') return have > v;
  return c.values.includes(have);
}

export function ruleMatches(rule: Rule, s: RuleSubject, nowSec = Math.floor(Date.now() / 1000)): boolean {
  return rule.anyOf.some((all) => all.every((c) => holds(c, s, nowSec)));
}
