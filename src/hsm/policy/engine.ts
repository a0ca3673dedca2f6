/**
 * The HSM policy engine (Robinhood-like, reference §7.5). Each cycle:
 *
 *   1. reads the MDT changelog from where it left off into its index (ingest.ts) and
 *      clears what it consumed: the namespace is never scanned per cycle;
 *   2. removes the archive copies of files deleted at least remove.after ago;
 *   3. asks for the archive of files that need one and match an archive rule, oldest
 *      change first (the index keeps them ordered by modification time);
 *   4. for every OST above release.high_watermark (its statfs, as lfs df), releases
 *      archived clean files with objects on it, least recently accessed first, each read
 *      again under locks first, until the projected usage is below release.low_watermark.
 *
 * Archive and remove go to the coordinator (MDS_HSM_REQUEST) in batches; release is
 * synchronous (data version + MDS_HSM_REQUEST release) and needs root. With dryRun the
 * engine only reports what it would do.
 */
import { createHash } from 'node:crypto';
import type { StriaClient } from '../../client/client.js';
import { err, toStriaError } from '../../common/errno.js';
import { fidFromKey, fidKey, fidToString, type Fid } from '../../common/fid.js';
import type { Logger } from '../../common/log.js';
import { mdtName, ostName } from '../../common/targets.js';
import { HS } from '../flags.js';
import { ChangelogClient } from './changelog-client.js';
import type { PolicyConfig, ReleaseRule, RuleConditions } from './config.js';
import { FileIndex, releasable, type FileEntry, type RelKey } from './file-index.js';
import { statFile, toMs, type FileFacts } from './file-stat.js';
import { entryFromFacts, ingest, META_LAST_RECORD } from './ingest.js';
import { anyNeedsPath, firstMatch, type RuleFacts } from './rules.js';
import { scanNamespace } from './scan.js';

export interface PolicyEngineOptions {
  client: StriaClient;
  config: PolicyConfig;
  /** the index and the changelog user id live here */
  stateDir: string;
  log: Logger;
  /** report what would be done, do nothing to files (the changelog is read, not cleared) */
  dryRun?: boolean;
  /** where dry-run lines go */
  report?: (line: string) => void;
  /** the clock, ms (tests move it forward instead of waiting) */
  now?: () => number;
}

export interface OstUsage {
  ost: number;
  /** percent used per statfs */
  used: number;
  /** percent used once this cycle's releases are done */
  projected: number;
}

export interface CycleReport {
  records: number;
  refreshed: number;
  deleted: number;
  archived: number;
  released: number;
  releasedBytes: number;
  removed: number;
  failed: number;
  osts: OstUsage[];
}

const META_USER = 'changelogUser';
const META_MDT = 'mdt';
const META_NS_GEN = 'namespaceGeneration';
const META_SCANNED = 'scanned';
/** records one cycle ingests at most (a backlog is worked off over several cycles) */
const MAX_RECORDS_PER_CYCLE = 200_000;
/** release candidates read again and ordered together */
const RELEASE_CHUNK = 32;
/** attempts at removing a deleted file's archive copy before giving up on it */
const REMOVE_ATTEMPTS = 5;
const MAX_PATH_DEPTH = 4096;

export class PolicyEngine {
  private readonly client: StriaClient;
  private readonly cfg: PolicyConfig;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly report: (line: string) => void;
  private readonly dryRun: boolean;
  private readonly changelog: ChangelogClient;
  readonly mdt: string;
  private readonly rootKey: string;
  private readonly rulesFingerprint: string;
  private stopping = false;

  private constructor(
    opts: PolicyEngineOptions,
    readonly index: FileIndex,
    readonly userId: string,
  ) {
    this.client = opts.client;
    this.cfg = opts.config;
    this.log = opts.log;
    this.now = opts.now ?? Date.now;
    this.dryRun = opts.dryRun ?? false;
    this.report = opts.report ?? ((line) => void process.stdout.write(`${line}\n`));
    this.changelog = new ChangelogClient(this.client.mdc.imp);
    this.mdt = mdtName(this.client.fsname, 0);
    this.rootKey = fidKey(this.client.root);
    this.rulesFingerprint = fingerprint(this.cfg);
  }

  /**
   * Opens the state directory and makes sure a changelog user is registered: the one
   * recorded there when the MDT still has it, else a new one.
   */
  static async open(opts: PolicyEngineOptions): Promise<PolicyEngine> {
    const index = FileIndex.open(opts.stateDir);
    try {
      const mdt = mdtName(opts.client.fsname, 0);
      const owner = index.getMeta<string>(META_MDT);
      if (owner !== undefined && owner !== mdt) {
        throw err('EINVAL', `state directory ${opts.stateDir} belongs to ${owner}, not ${mdt}`, 'FOREIGN_STATE_DIR');
      }
      const cl = new ChangelogClient(opts.client.mdc.imp);
      const known = index.getMeta<string>(META_USER);
      const users = await cl.users();
      let user = known !== undefined ? users.users.find((u) => u.id === known) : undefined;
      if (!user) {
        if (known !== undefined) {
          opts.log.warn({ mdt, user: known }, 'changelog user of this state directory is gone (deregistered?): changes made meanwhile were missed; rebuild with --scan on an empty state directory if that matters');
        }
        const id = await cl.register();
        user = (await cl.users()).users.find((u) => u.id === id) ?? { id, endrec: 0, idle: 0 };
        opts.log.info({ mdt, user: id }, 'registered changelog user');
      }
      const last = Math.max(index.getMeta<number>(META_LAST_RECORD) ?? 0, user.endrec);
      index.batch(() => {
        index.setMeta(META_MDT, mdt);
        index.setMeta(META_USER, user.id);
        index.setMeta(META_LAST_RECORD, last);
      });
      return new PolicyEngine(opts, index, user.id);
    } catch (e) {
      await index.close();
      throw e;
    }
  }

  /** Makes a running cycle stop at its next step. */
  stop(): void {
    this.stopping = true;
  }

  async close(): Promise<void> {
    await this.index.close();
  }

  /**
   * Seeds an empty index by walking the namespace once (for a filesystem that existed
   * before the engine). Does nothing when the index already holds files.
   */
  async scan(): Promise<{ scanned: boolean; files: number; dirs: number }> {
    if (!this.index.isEmpty() || this.index.getMeta(META_SCANNED) !== undefined) {
      this.log.info({ files: this.index.fileCount() }, 'index not empty: initial scan skipped');
      return { scanned: false, files: 0, dirs: 0 };
    }
    const r = await scanNamespace({
      client: this.client,
      index: this.index,
      stat: (fid) => statFile(this.client, fid),
      now: this.now,
      log: this.log,
      stopped: () => this.stopping,
    });
    if (!this.stopping) this.index.batch(() => this.index.setMeta(META_SCANNED, this.now()));
    return { scanned: true, ...r };
  }

  async cycle(): Promise<CycleReport> {
    const report: CycleReport = { records: 0, refreshed: 0, deleted: 0, archived: 0, released: 0, releasedBytes: 0, removed: 0, failed: 0, osts: [] };
    await this.consume(report);
    if (!this.stopping) await this.removePhase(report);
    if (!this.stopping) await this.archivePhase(report);
    if (!this.stopping) await this.releasePhase(report);
    this.log.info({ ...report, osts: report.osts.map((o) => `${o.ost}:${o.used.toFixed(1)}%->${o.projected.toFixed(1)}%`).join(' ') }, 'policy cycle done');
    return report;
  }

  // --- 1. changelog ---------------------------------------------------------------------

  private async consume(report: CycleReport): Promise<void> {
    let after = this.index.getMeta<number>(META_LAST_RECORD) ?? 0;
    while (report.records < MAX_RECORDS_PER_CYCLE && !this.stopping) {
      const page = await this.changelog.read(after);
      if (page.records.length === 0) break;
      const r = await ingest(page.records, {
        index: this.index,
        stat: (fid) => statFile(this.client, fid),
        log: this.log,
        removeAfterMs: this.cfg.remove?.afterMs,
        defaultArchiveId: this.cfg.archiveId,
        now: this.now,
      });
      if (r.dirRenamed) this.index.batch(() => this.index.setMeta(META_NS_GEN, (this.index.getMeta<number>(META_NS_GEN) ?? 0) + 1));
      report.records += r.records;
      report.refreshed += r.refreshed;
      report.deleted += r.deleted;
      after = page.records[page.records.length - 1]!.index;
      // the index holds the page durably: the MDT may forget it
      if (!this.dryRun) await this.changelog.clear(this.userId, after);
      if (page.eof) break;
    }
  }

  // --- paths ----------------------------------------------------------------------------

  /** The file's path from the root ("/a/b"), learning unknown names from the MDT. */
  async pathOf(e: FileEntry): Promise<string | undefined> {
    let parent = e.parent;
    let name = e.name;
    if (parent === undefined || name === undefined) {
      const link = await this.firstLink(e.fid);
      if (!link) return undefined;
      parent = link.parent;
      name = link.name;
      const cur = this.index.get(e.fid);
      if (cur) this.index.batch(() => this.index.put({ ...cur, parent: link.parent, name: link.name }));
    }
    const parts = [name];
    let key = parent;
    for (let depth = 0; depth < MAX_PATH_DEPTH; depth++) {
      if (key === this.rootKey) return `/${parts.reverse().join('/')}`;
      let d = this.index.getDir(key);
      if (!d) {
        d = await this.firstLink(fidFromKey(key));
        if (!d) return undefined;
        const learnt = d;
        this.index.batch(() => this.index.setDir(key, learnt));
      }
      parts.push(d.name);
      key = d.parent;
    }
    return undefined;
  }

  private async firstLink(fid: Fid): Promise<{ parent: string; name: string } | undefined> {
    try {
      const links = await this.client.parents(fid);
      return links[0] ? { parent: fidKey(links[0].parent), name: links[0].name } : undefined;
    } catch {
      return undefined;
    }
  }

  private async facts(e: FileEntry, rules: readonly RuleConditions[]): Promise<RuleFacts> {
    const f: RuleFacts = { size: e.size, mtime: e.mtime, atime: e.atime, pool: e.pool };
    if (anyNeedsPath(rules)) f.path = await this.pathOf(e);
    return f;
  }

  /** Marks under which "no rule can match until the file changes" stays true. */
  private mark(kind: string, rules: readonly RuleConditions[]): string {
    const gen = anyNeedsPath(rules) ? `:${this.index.getMeta<number>(META_NS_GEN) ?? 0}` : '';
    return `${kind}:${this.rulesFingerprint}${gen}`;
  }

  // --- 2. remove ------------------------------------------------------------------------

  private async removePhase(report: CycleReport): Promise<void> {
    const now = this.now();
    const due = [...take(this.index.dueRemovals(now), this.cfg.maxActions)];
    const byArchive = groupBy(due, (d) => d.removal.archiveId);
    for (const [archiveId, items] of byArchive) {
      for (const batch of chunks(items, this.cfg.batch)) {
        if (this.stopping) return;
        if (this.dryRun) {
          for (const d of batch) this.report(`would remove ${fidToString(d.removal.fid)} from archive ${archiveId} (deleted ${new Date(d.removal.deleted).toISOString()})`);
          continue;
        }
        const failed = await this.request('remove', archiveId, batch.map((d) => d.removal.fid));
        this.index.batch(() => {
          for (const d of batch) {
            this.index.dropRemoval(d.due, d.removal.fid);
            const f = failed.get(fidKey(d.removal.fid));
            if (!f) {
              report.removed++;
              continue;
            }
            report.failed++;
            const attempts = d.removal.attempts + 1;
            if (attempts >= REMOVE_ATTEMPTS) {
              this.log.error({ fid: fidKey(d.removal.fid), archiveId, err: f.message }, 'giving up removing the archive copy of a deleted file');
            } else {
              this.index.addRemoval(now + this.cfg.cycleMs * 2 ** attempts, { ...d.removal, attempts });
            }
          }
        });
      }
    }
  }

  /**
   * One HSM request for a batch; when the coordinator refuses it, each file alone, so
   * one bad file does not hold the others back. Answers the files that failed.
   */
  private async request(action: 'archive' | 'remove', archiveId: number, fids: Fid[]): Promise<Map<string, Error>> {
    const failed = new Map<string, Error>();
    try {
      await this.client.hsm.request({ action, archiveId, fids });
      return failed;
    } catch (e) {
      if (fids.length === 1) {
        failed.set(fidKey(fids[0]!), toStriaError(e));
        this.log.warn({ action, fid: fidKey(fids[0]!), archiveId, err: toStriaError(e).message }, 'HSM request refused');
        return failed;
      }
    }
    for (const fid of fids) {
      for (const [k, e] of await this.request(action, archiveId, [fid])) failed.set(k, e);
    }
    return failed;
  }

  // --- 3. archive -----------------------------------------------------------------------

  private async archivePhase(report: CycleReport): Promise<void> {
    const a = this.cfg.archive;
    if (!a || a.rules.length === 0) return;
    const now = this.now();
    const minAge = Math.min(...a.rules.map((r) => r.olderThanMs ?? 0));
    const skip = this.mark('archive', a.rules);
    const candidates = this.index.archiveCandidates(now - minAge, skip, now - a.retryAfterMs, this.cfg.maxActions * 4);
    const chosen = new Map<number, Array<{ e: FileEntry; rule: string; path?: string }>>();
    const never: FileEntry[] = [];
    let count = 0;
    for (const e of candidates) {
      if (count >= this.cfg.maxActions || this.stopping) break;
      const f = await this.facts(e, a.rules);
      const v = firstMatch(a.rules, f, now);
      if (!v.rule) {
        if (v.never) never.push(e);
        continue;
      }
      const list = chosen.get(v.rule.archiveId) ?? [];
      list.push({ e, rule: v.rule.name, path: f.path });
      chosen.set(v.rule.archiveId, list);
      count++;
    }
    if (never.length > 0) this.index.batch(() => never.forEach((e) => this.index.skipArchive(e, skip)));
    for (const [archiveId, items] of chosen) {
      for (const batch of chunks(items, this.cfg.batch)) {
        if (this.stopping) return;
        if (this.dryRun) {
          for (const c of batch) this.report(`would archive ${fidToString(c.e.fid)}${c.path ? ` ${c.path}` : ''} (${c.e.size} bytes, rule ${c.rule}, archive ${archiveId})`);
          continue;
        }
        const failed = await this.request('archive', archiveId, batch.map((c) => c.e.fid));
        const asked = this.now();
        this.index.batch(() => {
          for (const c of batch) {
            const err = failed.get(fidKey(c.e.fid));
            const cur = this.index.get(c.e.fid);
            if (err && toStriaError(err).code === 'ENOENT') {
              this.index.delete(c.e.fid);
              continue;
            }
            if (err) report.failed++;
            else report.archived++;
            // refused or not, wait retry_after before asking again
            if (cur) this.index.put({ ...cur, archiveAsked: asked });
          }
        });
        if (failed.size < batch.length) this.log.info({ archiveId, files: batch.length - failed.size }, 'archive requested');
      }
    }
  }

  // --- 4. release -----------------------------------------------------------------------

  private async releasePhase(report: CycleReport): Promise<void> {
    const rel = this.cfg.release;
    if (!rel) return;
    const rules: readonly ReleaseRule[] = rel.rules.length > 0 ? rel.rules : [{ name: 'any' }];
    const usage = new Map<number, { used: number; total: number; projectedUsed: number }>();
    for (const osc of this.client.ostClients()) {
      if (rel.osts && !rel.osts.includes(osc.index)) continue;
      try {
        const s = await osc.statfs();
        const used = (s.blocks - s.bfree) * s.bsize;
        const total = used + s.bavail * s.bsize;
        if (total > 0) usage.set(osc.index, { used, total, projectedUsed: used });
      } catch (e) {
        this.log.warn({ ost: ostName(this.client.fsname, osc.index), err: toStriaError(e).message }, 'OST statfs failed: not considered for release');
      }
    }
    const pct = (u: { total: number }, bytes: number) => (bytes / u.total) * 100;
    const skip = this.mark('release', rules);
    let budget = this.cfg.maxActions;
    for (const [ost, u] of usage) {
      if (pct(u, u.used) <= rel.high) continue;
      this.log.info({ ost: ostName(this.client.fsname, ost), used: pct(u, u.used).toFixed(1), high: rel.high, low: rel.low }, 'OST above the high watermark: releasing coldest files');
      const seen = new Set<string>();
      let from: RelKey | undefined;
      while (pct(u, u.projectedUsed) >= rel.low && budget > 0 && !this.stopping) {
        const { files, next } = this.index.releaseCandidates(ost, skip, RELEASE_CHUNK, from);
        if (!next) break;
        from = next;
        const fresh = await this.refreshCandidates(files.filter((e) => !seen.has(fidKey(e.fid))));
        files.forEach((e) => seen.add(fidKey(e.fid)));
        const never: FileEntry[] = [];
        for (const e of fresh.sort((a, b) => a.atime - b.atime)) {
          if (pct(u, u.projectedUsed) < rel.low || budget <= 0 || this.stopping) break;
          const f = await this.facts(e, rules);
          const v = firstMatch(rules, f, this.now());
          if (!v.rule) {
            if (v.never) never.push(e);
            continue;
          }
          const freed = await this.release(e, f.path, v.rule.name, ost);
          if (freed === undefined) {
            report.failed++;
            continue;
          }
          budget--;
          report.released++;
          report.releasedBytes += freed.total;
          for (const o of e.objects) {
            const ou = usage.get(o.ost);
            if (ou) ou.projectedUsed -= o.bytes;
          }
        }
        if (never.length > 0) this.index.batch(() => never.forEach((e) => this.index.skipRelease(e, skip)));
      }
      if (pct(u, u.projectedUsed) >= rel.low) {
        this.log.warn({ ost: ostName(this.client.fsname, ost), projected: pct(u, u.projectedUsed).toFixed(1), low: rel.low }, 'not enough releasable files to reach the low watermark');
      }
    }
    report.osts = [...usage].map(([ost, u]) => ({ ost, used: pct(u, u.used), projected: pct(u, u.projectedUsed) }));
  }

  /** Reads candidates again (their atime above all); the index follows what was read. */
  private async refreshCandidates(files: FileEntry[]): Promise<FileEntry[]> {
    const now = this.now();
    type Read = { e: FileEntry; f: FileFacts } | { e: FileEntry; error: ReturnType<typeof toStriaError> };
    const read = await Promise.all(
      files.map(async (e): Promise<Read> => {
        try {
          return { e, f: await statFile(this.client, e.fid) };
        } catch (x) {
          return { e, error: toStriaError(x) };
        }
      }),
    );
    const out: FileEntry[] = [];
    this.index.batch(() => {
      for (const r of read) {
        if ('error' in r) {
          if (r.error.code === 'ENOENT') this.index.delete(r.e.fid);
          continue;
        }
        const cur = entryFromFacts(r.f, this.index.get(r.e.fid), now);
        this.index.put(cur);
        if (releasable(cur)) out.push(cur);
      }
    });
    return out;
  }

  /**
   * Releases one file: attributes and data version read under locks, then the MDT's
   * checks decide. Answers the bytes freed (as the index knew them), or undefined.
   */
  private async release(e: FileEntry, path: string | undefined, rule: string, ost: number): Promise<{ total: number } | undefined> {
    const total = e.objects.reduce((n, o) => n + o.bytes, 0);
    const where = `${fidToString(e.fid)}${path ? ` ${path}` : ''}`;
    if (this.dryRun) {
      this.report(`would release ${where} (${e.size} bytes, last access ${new Date(e.atime).toISOString()}, rule ${rule}) for ${ostName(this.client.fsname, ost)}`);
      return { total };
    }
    try {
      const attr = await this.client.getattr(e.fid);
      const flags = attr.hsm?.flags ?? 0;
      if ((flags & (HS.EXISTS | HS.ARCHIVED)) !== (HS.EXISTS | HS.ARCHIVED) || flags & (HS.DIRTY | HS.RELEASED | HS.NORELEASE | HS.LOST)) {
        return undefined;
      }
      const dataVersion = await this.client.dataVersionOf(attr);
      const r = await this.client.hsm.release({ fid: e.fid, dataVersion, size: attr.size, atime: attr.atime, mtime: attr.mtime, ctime: attr.ctime });
      const inode = r.inode;
      const cur = this.index.get(e.fid);
      if (cur && inode) {
        this.index.batch(() =>
          this.index.put({ ...cur, hsm: inode.hsm?.flags ?? cur.hsm | HS.RELEASED, archiveId: inode.hsm?.archiveId ?? cur.archiveId, objects: [], atime: toMs(attr.atime) }),
        );
      }
      this.log.info({ fid: fidKey(e.fid), path, size: attr.size, rule, ost }, 'released');
      return { total };
    } catch (x) {
      const se = toStriaError(x);
      this.log.warn({ fid: fidKey(e.fid), path, err: se.message, code: se.code }, 'release refused');
      return undefined;
    }
  }

  /** Cycles every cycle period until `signal` aborts (or stop()). */
  async run(signal: AbortSignal): Promise<void> {
    const onAbort = () => this.stop();
    signal.addEventListener('abort', onAbort);
    try {
      while (!this.stopping) {
        const started = Date.now();
        try {
          await this.cycle();
        } catch (e) {
          const se = toStriaError(e);
          this.log.error({ err: se.message, code: se.code }, 'policy cycle failed');
        }
        const wait = Math.max(0, this.cfg.cycleMs - (Date.now() - started));
        if (this.stopping) break;
        await new Promise<void>((resolve) => {
          const t = setTimeout(done, wait);
          function done() {
            clearTimeout(t);
            signal.removeEventListener('abort', done);
            resolve();
          }
          signal.addEventListener('abort', done);
        });
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }
}

function fingerprint(cfg: PolicyConfig): string {
  const json = JSON.stringify({ a: cfg.archive?.rules, r: cfg.release?.rules }, (_k, v: unknown) =>
    v && typeof v === 'object' && 'source' in v && 'test' in v ? (v as { source: string }).source : v,
  );
  return createHash('sha256').update(json).digest('hex').slice(0, 16);
}

function* take<T>(it: Iterable<T>, n: number): Generator<T> {
  if (n <= 0) return;
  let i = 0;
  for (const x of it) {
    yield x;
    if (++i >= n) return;
  }
}

function groupBy<T, K>(items: T[], key: (t: T) => K): Map<K, T[]> {
  const m = new Map<K, T[]>();
  for (const t of items) {
    const k = key(t);
    const list = m.get(k) ?? [];
    list.push(t);
    m.set(k, list);
  }
  return m;
}

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
