/** Opcodes, numbered as Lustre's (reference §4.2). */
export const Opc = {
  OST_GETATTR: 1,
  OST_SETATTR: 2,
  OST_READ: 3,
  OST_WRITE: 4,
  OST_CREATE: 5,
  OST_DESTROY: 6,
  OST_GET_INFO: 7,
  OST_CONNECT: 8,
  OST_DISCONNECT: 9,
  OST_PUNCH: 10,
  OST_STATFS: 13,
  OST_SYNC: 16,
  OST_SET_INFO: 17,

  MDS_GETATTR: 33,
  MDS_GETATTR_NAME: 34,
  MDS_CLOSE: 35,
  MDS_REINT: 36,
  MDS_READPAGE: 37,
  MDS_CONNECT: 38,
  MDS_DISCONNECT: 39,
  MDS_GET_ROOT: 40,
  MDS_STATFS: 41,
  MDS_SYNC: 44,
  MDS_SET_INFO: 46,
  MDS_GETXATTR: 49,
  MDS_GET_INFO: 53,
  MDS_HSM_STATE_GET: 54,
  MDS_HSM_STATE_SET: 55,
  MDS_HSM_ACTION: 56,
  MDS_HSM_PROGRESS: 57,
  MDS_HSM_REQUEST: 58,
  MDS_HSM_CT_REGISTER: 59,
  MDS_HSM_CT_UNREGISTER: 60,

  LDLM_ENQUEUE: 101,
  LDLM_CONVERT: 102,
  LDLM_CANCEL: 103,
  LDLM_BL_CALLBACK: 104,
  LDLM_CP_CALLBACK: 105,
  LDLM_GL_CALLBACK: 106,
  LDLM_SET_INFO: 107,

  MGS_CONNECT: 250,
  MGS_DISCONNECT: 251,
  MGS_EXCEPTION: 252,
  MGS_TARGET_REG: 253,
  MGS_TARGET_DEL: 254,
  MGS_SET_INFO: 255,
  MGS_CONFIG_READ: 256,

  OBD_PING: 400,
  /** changelog users and records (Lustre reads them through llog handles, 501..) */
  LLOG_CHANGELOG: 501,
  SEQ_QUERY: 700,
  FLD_QUERY: 900,
} as const;

/** MDS_REINT sub-operations (body field `op`). */
export const ReintOp = {
  SETATTR: 1,
  CREATE: 2,
  LINK: 3,
  UNLINK: 4,
  RENAME: 5,
  OPEN: 6,
  SETXATTR: 7,
} as const;

export const CONNECT_OPCODES: ReadonlySet<number> = new Set([Opc.OST_CONNECT, Opc.MDS_CONNECT, Opc.MGS_CONNECT]);
export const DISCONNECT_OPCODES: ReadonlySet<number> = new Set([Opc.OST_DISCONNECT, Opc.MDS_DISCONNECT, Opc.MGS_DISCONNECT]);

/** pb_type values */
export const MsgType = { REQUEST: 4711, ERROR: 4712, REPLY: 4713 } as const;

/** pb_flags */
export const MsgFlag = { RESENT: 0x2, REPLAY: 0x4 } as const;

const names = new Map<number, string>(Object.entries(Opc).map(([k, v]) => [v, k]));
export function opcodeName(opc: number): string {
  return names.get(opc) ?? `OPC_${opc}`;
}
