/**
 * The parameters of one client mount, named as Lustre names them with the
 * mount's instance id (reference §8.6):
 *
 *   llite.testfs-ffff1a2b3c4d5e6f.{stats,checksums,uuid,kbytes*,files*,opencache_max_ms,
 *       opencache_max_count,max_cached_mb,max_read_ahead*_mb,read_ahead_stats,cache_stats,
 *       statahead_max,statahead_stats}
 *   lov.testfs-clilov-ffff1a2b3c4d5e6f.{stripesize,stripecount,numobd,pools.*}
 *   mdc.testfs-MDT0000-mdc-ffff1a2b3c4d5e6f.{import,stats,max_rpcs_in_flight,...}
 *   osc.testfs-OST0000-osc-ffff1a2b3c4d5e6f.{import,stats,rpc_stats,max_rpcs_in_flight,
 *       max_pages_per_rpc,checksums,cur_grant_bytes,max_dirty_mb,...}
 *
 * Writable ones change the running client: max_rpcs_in_flight sets the import's
 * credits, max_pages_per_rpc the OSC's RPC size, checksums the OSC's bulk checksums,
 * max_cached_mb, max_read_ahead*_mb and max_dirty_mb the client cache's tunables.
 *
 * The control socket also carries the commands of `stria warmup` and `stria stats`
 * (cache-commands.ts).
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from '../common/log.js';
import { ostName } from '../common/targets.js';
import { formatNid } from '../lnet/nid.js';
import { MAX_IMPORT_CREDITS, type Import } from '../ptlrpc/import.js';
import { MAX_IO_BYTES } from '../oss/limits.js';
import type { StriaClient } from '../client/client.js';
import type { OstClient } from '../client/osc.js';
import { ControlServer } from './control-server.js';
import { ro, statfsParams, statsParam } from './common-params.js';
import { lliteCacheParams, lliteStatsParam, oscCacheParams } from './cache-params.js';
import { registerCacheCommands } from './cache-commands.js';
import { stataheadParams } from './statahead-params.js';
import { formatImport, ImportStats, MDC_OPCODES, OSC_OPCODES } from './import-stats.js';
import type { LliteStats } from './llite-stats.js';
import { ParamRegistry, type DeviceInfo, type Param } from './params.js';
import { checkRange, parseBool, parseSizeValue, parseUint } from './values.js';
import { clientNamespaceParams } from './ldlm-params.js';

const PAGE = 4096;
const ONE_MB = 1 << 20;

/**
 * A fresh instance id for a mount: 16 hex digits starting "ffff", the shape of
 * Lustre's (a kernel address), so `*-osc-ffff*` patterns work as users expect.
 */
export function newClientInstance(): string {
  return `ffff${randomBytes(6).toString('hex')}`;
}

export interface ClientParamOptions {
  /** the mount's instance id (newClientInstance()) */
  instance: string;
  /** VFS counters the FUSE adapter feeds */
  llite: LliteStats;
}

function creditsParam(imp: Import): Param {
  return {
    get: () => String(imp.credits),
    set: (v) => imp.setCredits(checkRange(parseUint(v, 'max_rpcs_in_flight'), 1, MAX_IMPORT_CREDITS, 'max_rpcs_in_flight')),
  };
}

function importState(imp: Import): string {
  return imp.state === 'CLOSED' ? 'ST' : 'UP';
}

function connUuid(imp: Import): string {
  return imp.connection.current ? formatNid(imp.connection.current) : '';
}

/** max_pages_per_rpc: pages, or bytes when 1 MiB or more or given with a unit (as Lustre's store function). */
function parseMaxPages(v: string): number {
  const { bytes, hadUnit } = parseSizeValue(v, 'max_pages_per_rpc');
  const pages = hadUnit || bytes >= ONE_MB ? Math.floor(bytes / PAGE) : bytes;
  return checkRange(pages, 1, MAX_IO_BYTES / PAGE, 'max_pages_per_rpc');
}

/** The parameters of one OSC device `dev` (e.g. testfs-OST0000-osc-ffff1a2b3c4d5e6f). */
export function oscParams(osc: OstClient, dev: string, stats: ImportStats, clientUuid: string): Array<[string, Param]> {
  const p = `osc.${dev}`;
  const imp = osc.imp;
  return [
    [`${p}.max_rpcs_in_flight`, creditsParam(imp)],
    [
      `${p}.max_pages_per_rpc`,
      {
        get: () => String(osc.maxRpcBytes / PAGE),
        set: (v: string) => {
          osc.maxRpcBytes = parseMaxPages(v) * PAGE;
        },
      },
    ],
    [
      `${p}.checksums`,
      {
        get: () => (osc.checksums ? '1' : '0'),
        set: (v: string) => {
          osc.checksums = parseBool(v, 'checksums');
        },
      },
    ],
    [`${p}.checksum_type`, ro(() => '[crc32c]')],
    [`${p}.import`, ro(() => formatImport(dev, imp, stats))],
    [`${p}.stats`, statsParam(() => stats.stats)],
    [`${p}.rpc_stats`, { get: () => stats.formatRpcStats(), set: () => stats.rpc.clear() }],
    [`${p}.ost_conn_uuid`, ro(() => connUuid(imp))],
    [`${p}.ost_server_uuid`, ro(() => `${imp.target}_UUID\t${imp.state}`)],
    [`${p}.uuid`, ro(() => clientUuid)],
    ...statfsParams(p, () => osc.statfs()),
  ];
}

/**
 * The open cache (read-only opens sharing one MDT handle per file): opencache_max_ms is
 * how long a handle stays open on the MDT after its last local close (0: no caching),
 * opencache_max_count how many handles stay cached at most.
 */
function openCacheParams(llite: string, client: StriaClient): Array<[string, Param]> {
  const cache = client.openCache;
  return [
    [
      `${llite}.opencache_max_ms`,
      {
        get: () => String(cache.maxIdleMs),
        set: (v: string) => {
          cache.maxIdleMs = parseUint(v, 'opencache_max_ms');
        },
      },
    ],
    [
      `${llite}.opencache_max_count`,
      {
        get: () => String(cache.maxCount),
        set: (v: string) => {
          cache.maxCount = parseUint(v, 'opencache_max_count');
        },
      },
    ],
  ];
}

/**
 * Registers the client's parameters and devices in `reg`. Counting starts now.
 * Returns a function that unregisters them and stops counting.
 */
export function registerClientParams(client: StriaClient, reg: ParamRegistry, opts: ClientParamOptions): () => void {
  const fs = client.fsname;
  const inst = opts.instance;
  const mdcImp = client.mdc.imp;
  const uuid = mdcImp.clientUuid;
  const llite = `llite.${fs}-${inst}`;
  const lovDev = `${fs}-clilov-${inst}`;
  const mdcDev = `${mdcImp.target}-mdc-${inst}`;
  const mdcStats = new ImportStats(mdcImp, MDC_OPCODES);
  const oscStats = new Map<OstClient, ImportStats>();
  const oscDev = (o: OstClient) => `${ostName(fs, o.index)}-osc-${inst}`;
  // OSTs added after the mount are counted from the first lookup that sees them.
  const oscs = (): Array<{ osc: OstClient; stats: ImportStats; dev: string }> =>
    client.ostClients().map((osc) => {
      let stats = oscStats.get(osc);
      if (!stats) {
        stats = new ImportStats(osc.imp, OSC_OPCODES);
        oscStats.set(osc, stats);
      }
      return { osc, stats, dev: oscDev(osc) };
    });
  oscs();
  const cache = client.cache;

  const fixed: Array<[string, Param]> = [
    [`${llite}.stats`, lliteStatsParam(opts.llite, cache)],
    [`${llite}.uuid`, ro(() => uuid)],
    [
      `${llite}.checksums`,
      {
        get: () => (oscs().every((o) => o.osc.checksums) ? '1' : '0'),
        set: (v) => {
          const on = parseBool(v, 'checksums');
          for (const o of oscs()) o.osc.checksums = on;
        },
      },
    ],
    ...statfsParams(llite, () => client.statfs()),
    ...openCacheParams(llite, client),
    ...stataheadParams(llite, client.statahead),
    ...lliteCacheParams(llite, cache),
    [`lov.${lovDev}.stripesize`, ro(() => client.fsDefault.stripeSize)],
    [`lov.${lovDev}.stripecount`, ro(() => client.fsDefault.stripeCount)],
    [`lov.${lovDev}.numobd`, ro(() => client.configuration.osts.length)],
    [`lov.${lovDev}.uuid`, ro(() => uuid)],
    [`mdc.${mdcDev}.import`, ro(() => formatImport(mdcDev, mdcImp, mdcStats))],
    [`mdc.${mdcDev}.stats`, statsParam(() => mdcStats.stats)],
    [`mdc.${mdcDev}.max_rpcs_in_flight`, creditsParam(mdcImp)],
    [`mdc.${mdcDev}.mds_conn_uuid`, ro(() => connUuid(mdcImp))],
    [`mdc.${mdcDev}.mds_server_uuid`, ro(() => `${mdcImp.target}_UUID\t${mdcImp.state}`)],
    [`mdc.${mdcDev}.uuid`, ro(() => uuid)],
    ...statfsParams(`mdc.${mdcDev}`, () => client.mdc.statfs()),
  ];
  const undo = fixed.map(([name, p]) => reg.register(name, p));

  undo.push(
    reg.provide(function* () {
      for (const [pool, members] of Object.entries(client.configuration.pools)) {
        yield [`lov.${lovDev}.pools.${pool}`, ro(() => members.map((i) => `${ostName(fs, i)}_UUID\n`).join(''))] as const;
      }
      for (const { osc, stats, dev } of oscs()) {
        yield* oscParams(osc, dev, stats, uuid);
        yield* oscCacheParams(`osc.${dev}`, osc, cache);
        yield* clientNamespaceParams(dev, client.dlm.osc(osc.index));
      }
      if (client.dlm.mdc) yield* clientNamespaceParams(mdcDev, client.dlm.mdc);
    }),
  );

  undo.push(
    reg.addDevices((): DeviceInfo[] => [
      { type: 'lov', name: lovDev, uuid, status: 'UP', refcount: 1 },
      { type: 'mdc', name: mdcDev, uuid, status: importState(mdcImp), refcount: 1 + mdcImp.stats.inFlight, conn: connUuid(mdcImp) },
      ...oscs().map(({ osc, dev }) => ({
        type: 'osc',
        name: dev,
        uuid,
        status: importState(osc.imp),
        refcount: 1 + osc.imp.stats.inFlight,
        conn: connUuid(osc.imp),
      })),
    ]),
  );

  return () => {
    for (const u of undo) u();
    mdcStats.detach();
    for (const s of oscStats.values()) s.detach();
    oscStats.clear();
  };
}

export interface ClientControl {
  readonly instance: string;
  readonly registry: ParamRegistry;
  /** the control socket lctl talks to */
  readonly socketPath: string;
  /** stops serving and unregisters; call before unmounting the client */
  close(): Promise<void>;
}

export interface ClientControlOptions {
  instance?: string;
  runDir?: string;
  log?: Logger;
  /** where the client is mounted (absolute), answered by `mount.info` so tools can find the mount's socket */
  mountpoint?: string;
  /** the mounted subdirectory of the filesystem (FsSpec.path): cache.* command paths are below it */
  fileset?: string[];
}

/**
 * Publishes a mounted client's parameters to lctl: registers them in a registry of
 * their own and serves it on `<run dir>/client-<pid>-<instance>.sock`, with the
 * mount.info and cache.* commands. More commands can be added to `registry`.
 */
export async function startClientControl(client: StriaClient, llite: LliteStats, opts: ClientControlOptions = {}): Promise<ClientControl> {
  const instance = opts.instance ?? newClientInstance();
  const registry = new ParamRegistry();
  const unregisterParams = registerClientParams(client, registry, { instance, llite });
  const unregisterCommands = registerCacheCommands(registry, client, client.cache, { instance, mountpoint: opts.mountpoint, fileset: opts.fileset });
  const unregister = () => {
    unregisterCommands();
    unregisterParams();
  };
  let server: ControlServer;
  try {
    server = await ControlServer.start(registry, { role: 'client', id: instance, dir: opts.runDir, log: opts.log });
  } catch (e) {
    unregister();
    throw e;
  }
  return {
    instance,
    registry,
    socketPath: server.path,
    close: async () => {
      await server.close();
      unregister();
    },
  };
}
