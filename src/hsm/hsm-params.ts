/**
 * The coordinator's lctl parameters (reference §7.3, §7.4), as Lustre's mdt_coordinator.c
 * and mdt_hsm_cdt_{agent,actions,requests}.c print them. The MDT registers them as
 * `mdt.<MDT>.hsm_control` and `mdt.<MDT>.hsm.<name>` (see hsmParams).
 *
 *   hsm.agents           uuid=<client uuid> archive_id=1,2|ANY requests=[current:N ok:N errors:N]
 *   hsm.actions          one llog-style line per action record, finished ones until grace_delay
 *   hsm.active_requests  one line per STARTED action
 *   hsm.{max_requests, default_archive_id}                    integers
 *   hsm.{active_request_timeout, grace_delay, loop_period}    seconds
 *   hsm.{user,group,other}_request_mask                       RESTORE (users may only restore)
 *   hsm_control          enabled | disabled | stopped; accepts enabled, disabled, shutdown, purge
 */
import { err } from '../common/errno.js';
import { fidToString } from '../common/fid.js';
import type { Param } from '../ctl/params.js';
import { parseUint } from '../ctl/values.js';
import { HSM_EXTENT_TO_EOF, type ActionView, type Coordinator, type HsmTunableName } from './coordinator.js';

/** llog record type of an agent request (HSM_AGENT_REC) */
const HSM_AGENT_REC = 0x10680000;
/** sizeof(llog_agent_req_rec) + llog_rec_tail without the copytool data */
const AGENT_REC_BASE_LEN = 136;
/** hai_dump_data_field's 12-byte buffer shows the first 5 bytes of data */
const DATA_DUMP_BYTES = 5;

function hx(n: number): string {
  return `0x${n.toString(16)}`;
}

function extentText(e: { offset: number; length: number }): string {
  const len = e.length >= HSM_EXTENT_TO_EOF ? '0xffffffffffffffff' : hx(e.length);
  return `${hx(e.offset)}-${len}`;
}

function dataOf(a: ActionView): { len: number; dump: string } {
  const bytes = a.data === undefined ? Buffer.alloc(0) : Buffer.from(a.data, 'utf8');
  return { len: bytes.length, dump: bytes.subarray(0, DATA_DUMP_BYTES).toString('hex').toUpperCase() };
}

/** hsm.agents */
export function formatAgents(c: Coordinator): string {
  return c
    .listAgents()
    .map((a) => {
      const ids = a.archiveIds.length === 0 ? 'ANY' : a.archiveIds.join(',');
      return `uuid=${a.uuid} archive_id=${ids} requests=[current:${a.current} ok:${a.ok} errors:${a.errors}]\n`;
    })
    .join('');
}

/** One line of hsm.actions. */
export function formatActionLine(a: ActionView): string {
  const fid = fidToString(a.fid);
  const data = dataOf(a);
  const len = Math.ceil((AGENT_REC_BASE_LEN + data.len) / 8) * 8;
  return (
    `lrh=[type=${HSM_AGENT_REC.toString(16)} len=${len} idx=1/${a.cookie}] fid=${fid} dfid=${fid}` +
    ` compound/cookie=${hx(a.cookie)}/${hx(a.cookie)} action=${a.action} archive#=${a.archiveId}` +
    ` flags=${hx(a.flags)} extent=${extentText(a.extent)} gid=0x0 datalen=${data.len} status=${a.status} data=[${data.dump}]`
  );
}

/** hsm.actions: every action, finished ones included for grace_delay. */
export function formatActions(c: Coordinator): string {
  return c
    .listActions()
    .map((a) => formatActionLine(a) + '\n')
    .join('');
}

/** hsm.active_requests: the STARTED actions, as mdt_hsm_active_requests_proc_show prints them. */
export function formatActiveRequests(c: Coordinator): string {
  return c
    .listActive()
    .map((a) => {
      const fid = fidToString(a.fid);
      return (
        `fid=${fid} dfid=${fid} compound/cookie=${hx(a.cookie)}/${hx(a.cookie)} action=${a.action}` +
        ` archive#=${a.archiveId} flags=${hx(a.flags)} extent=${extentText(a.extent)} gid=0x0` +
        ` data=[${dataOf(a).dump}] canceled=0 uuid=${a.agent ?? ''} done=${a.bytesMoved}\n`
      );
    })
    .join('');
}

/** hsm_control as Lustre reads it back: a shut down coordinator is "stopped". */
export function formatControl(c: Coordinator): string {
  return c.control === 'shutdown' ? 'stopped' : c.control;
}

/** Writes hsm_control; resolves once a purge is durable. */
export function setControl(c: Coordinator, value: string): Promise<void> {
  return c.setControl(value.replace(/\n$/, '').trim());
}

interface TunableParam {
  name: string;
  tunable: HsmTunableName;
  /** ms per unit shown: 1000 for the ones Lustre shows in seconds */
  scale: number;
}

const TUNABLES: TunableParam[] = [
  { name: 'max_requests', tunable: 'maxRequests', scale: 1 },
  { name: 'active_request_timeout', tunable: 'activeRequestTimeoutMs', scale: 1000 },
  { name: 'grace_delay', tunable: 'graceDelayMs', scale: 1000 },
  { name: 'loop_period', tunable: 'loopPeriodMs', scale: 1000 },
  { name: 'default_archive_id', tunable: 'defaultArchiveId', scale: 1 },
];

/** The value as lctl shows it (seconds for the times). */
export function getTunable(c: Coordinator, name: string): string {
  const t = TUNABLES.find((x) => x.name === name);
  if (!t) throw err('ENOENT', `no HSM tunable ${name}`, 'NO_PARAM');
  return String(c.tunables[t.tunable] / t.scale);
}

/** lctl set_param mdt.*.hsm.<name>=<value>: a positive integer (seconds for the times). */
export function setTunable(c: Coordinator, name: string, value: string): void {
  const t = TUNABLES.find((x) => x.name === name);
  if (!t) throw err('ENOENT', `no HSM tunable ${name}`, 'NO_PARAM');
  const n = parseUint(value, `hsm.${name}`);
  if (n === 0) throw err('EINVAL', `hsm.${name} must be a positive integer`, 'BAD_VALUE');
  const scaled = n * t.scale;
  if (!Number.isSafeInteger(scaled)) throw err('ERANGE', `hsm.${name}: ${value} is too large`, 'BAD_VALUE');
  c.setTunable(t.tunable, scaled);
}

/**
 * Every coordinator parameter, named relative to `mdt.<MDT>.` (e.g. `hsm.agents`,
 * `hsm_control`), ready for ParamRegistry.register.
 */
export function hsmParams(c: Coordinator): Array<[string, Param]> {
  const out: Array<[string, Param]> = [
    ['hsm_control', { get: () => formatControl(c), set: (v) => setControl(c, v) }],
    ['hsm.agents', { get: () => formatAgents(c) }],
    ['hsm.actions', { get: () => formatActions(c) }],
    ['hsm.active_requests', { get: () => formatActiveRequests(c) }],
    ['hsm.user_request_mask', { get: () => 'RESTORE' }],
    ['hsm.group_request_mask', { get: () => 'RESTORE' }],
    ['hsm.other_request_mask', { get: () => 'RESTORE' }],
  ];
  for (const t of TUNABLES) {
    out.push([`hsm.${t.name}`, { get: () => getTunable(c, t.name), set: (v) => setTunable(c, t.name, v) }]);
  }
  return out;
}
