/**
 * Rule evaluation: whether a file's facts meet a rule's conditions at a given time.
 * Conditions split in two: the lasting ones (size, path, name, pool) change only when
 * the file does, the ages only grow with time. A file no rule could ever match until it
 * changes is remembered as such, so cycles skip it without evaluating it again.
 */
import type { RuleConditions } from './config.js';

export interface RuleFacts {
  size: number;
  /** ms */
  mtime: number;
  atime: number;
  pool?: string;
  /** path from the filesystem root, when known */
  path?: string;
}

/** Whether evaluating the rule needs the file's path. */
export function needsPath(c: RuleConditions): boolean {
  return c.path !== undefined || c.fileName !== undefined || c.exclude !== undefined;
}

function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** The conditions that hold until the file changes: size, pool, path and name. */
export function matchesLasting(c: RuleConditions, f: RuleFacts): boolean {
  if (c.minSize !== undefined && f.size < c.minSize) return false;
  if (c.maxSize !== undefined && f.size > c.maxSize) return false;
  if (c.pool !== undefined && f.pool !== c.pool) return false;
  if (needsPath(c)) {
    // unknown path: a rule about paths cannot be said to match
    if (f.path === undefined) return false;
    const path = f.path;
    if (c.path && !c.path.some((g) => g.test(path))) return false;
    if (c.fileName && !c.fileName.some((g) => g.test(baseName(path)))) return false;
    if (c.exclude && c.exclude.some((g) => g.test(path))) return false;
  }
  return true;
}

/** The ages: long enough since the last modification and the last access. */
export function matchesAge(c: RuleConditions, f: RuleFacts, now: number): boolean {
  if (c.olderThanMs !== undefined && now - f.mtime < c.olderThanMs) return false;
  if (c.unusedForMs !== undefined && now - f.atime < c.unusedForMs) return false;
  return true;
}

export function matches(c: RuleConditions, f: RuleFacts, now: number): boolean {
  return matchesLasting(c, f) && matchesAge(c, f, now);
}

export type RuleVerdict<R> = { rule: R } | { rule: undefined; never: boolean };

/**
 * The first rule the file matches now; when none does, `never` says whether none
 * could before the file changes (every rule fails a lasting condition).
 */
export function firstMatch<R extends RuleConditions>(rules: readonly R[], f: RuleFacts, now: number): RuleVerdict<R> {
  let never = true;
  for (const r of rules) {
    if (!matchesLasting(r, f)) continue;
    never = false;
    if (matchesAge(r, f, now)) return { rule: r };
  }
  return { rule: undefined, never };
}

/** Whether any rule needs paths (the engine then resolves them for candidates). */
export function anyNeedsPath(rules: readonly RuleConditions[]): boolean {
  return rules.some(needsPath);
}
