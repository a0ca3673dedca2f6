/**
 * The one namespace walk the policy engine ever does, on request (--scan) and only
 * into an empty index: a filesystem that existed before the engine has files no
 * changelog record will ever mention. Breadth first, one directory page at a time,
 * files read a few at once; the index is written per page, so memory holds only the
 * directories still to visit.
 */
import type { StriaClient } from '../../client/client.js';
import { toStriaError } from '../../common/errno.js';
import { fidKey, type Fid } from '../../common/fid.js';
import type { Logger } from '../../common/log.js';
import type { FileIndex } from './file-index.js';
import type { FileFacts } from './file-stat.js';
import { entryFromFacts } from './ingest.js';

const PAGE = 512;
const STAT_CONCURRENCY = 16;
const PROGRESS_EVERY = 10_000;

export interface ScanDeps {
  client: StriaClient;
  index: FileIndex;
  stat: (fid: Fid) => Promise<FileFacts>;
  now: () => number;
  log: Logger;
  stopped: () => boolean;
}

export async function scanNamespace(deps: ScanDeps): Promise<{ files: number; dirs: number }> {
  const { client, index, log } = deps;
  const queue: Fid[] = [client.root];
  let files = 0;
  let dirs = 0;
  let nextProgress = PROGRESS_EVERY;
  log.info('initial namespace scan started');
  while (queue.length > 0 && !deps.stopped()) {
    const dir = queue.shift()!;
    const dirKey = fidKey(dir);
    let cookie = 0;
    for (;;) {
      if (deps.stopped()) break;
      let page;
      try {
        page = await client.readdir(dir, cookie, PAGE);
      } catch (e) {
        log.warn({ dir: dirKey, err: toStriaError(e).message }, 'scan: cannot read a directory; skipped');
        break;
      }
      const entries = page.entries.filter((e) => e.name !== '.' && e.name !== '..');
      const regular = entries.filter((e) => e.type === 'reg');
      const read: Array<{ name: string; facts: FileFacts }> = [];
      for (let i = 0; i < regular.length; i += STAT_CONCURRENCY) {
        const group = regular.slice(i, i + STAT_CONCURRENCY);
        const got = await Promise.all(group.map((e) => deps.stat(e.fid).then((facts) => ({ name: e.name, facts }), () => undefined)));
        for (const g of got) if (g) read.push(g);
      }
      const now = deps.now();
      index.batch(() => {
        for (const e of entries) {
          if (e.type !== 'dir') continue;
          index.setDir(e.fid, { parent: dirKey, name: e.name });
          queue.push(e.fid);
          dirs++;
        }
        for (const r of read) {
          if (r.facts.inode.type !== 'reg') continue;
          const old = index.get(r.facts.inode.fid);
          // a file with several names keeps the first one found
          const e = entryFromFacts(r.facts, old, now);
          if (e.parent === undefined) {
            e.parent = dirKey;
            e.name = r.name;
          }
          index.put(e);
          files++;
        }
      });
      if (files >= nextProgress) {
        log.info({ files, dirs, pending: queue.length }, 'initial namespace scan in progress');
        nextProgress += PROGRESS_EVERY;
      }
      if (page.eof || page.entries.length === 0) break;
      cookie = page.entries[page.entries.length - 1]!.cookie;
    }
  }
  log.info({ files, dirs, complete: !deps.stopped() }, 'initial namespace scan done');
  return { files, dirs };
}
