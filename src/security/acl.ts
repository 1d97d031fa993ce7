/**
 * ACLs and ACEs in binary form (MS-DTYP 2.4.4 ACE, 2.4.5 ACL): encoding what the SDDL
 * parser builds, and decoding with bounds checks for validation and display.
 *
 * ACL: AclRevision u8, Sbz1 u8, AclSize u16, AceCount u16, Sbz2 u16, then the ACEs.
 * ACE: AceType u8, AceFlags u8, AceSize u16, then by type either
 *   Mask u32, SID                                          (basic ACEs), or
 *   Mask u32, Flags u32, [ObjectType GUID], [InheritedObjectType GUID], SID (object ACEs).
 * Callback, resource-attribute and similar ACEs carry application data after the SID.
 */

import { createError, type WinLayerError } from '../errors.js';
import { readSid, sidSize, writeSid, type Sid } from './sid.js';

/** ACL_REVISION: ACLs of basic ACEs only. */
export const ACL_REVISION = 2;
/** ACL_REVISION_DS: needed as soon as an ACL holds an object ACE. */
export const ACL_REVISION_DS = 4;
/** sizeof(ACL): AclRevision, Sbz1, AclSize, AceCount, Sbz2. */
export const ACL_HEADER_SIZE = 8;
const ACL_SIZE_FIELD = 2;
const ACL_COUNT_FIELD = 4;
const ACL_SBZ2_FIELD = 6;
/** sizeof(ACE_HEADER): AceType, AceFlags, AceSize. */
export const ACE_HEADER_SIZE = 4;
const ACE_FLAGS_FIELD = 1;
const ACE_SIZE_FIELD = 2;
const ACCESS_MASK_SIZE = 4;
const OBJECT_FLAGS_SIZE = 4;
/** sizeof(GUID). */
export const GUID_SIZE = 16;
/** Offset of a GUID's Data2 (u16 LE; Data1 before it is a u32 LE). */
export const GUID_DATA2 = 4;
/** Offset of a GUID's Data3 (u16 LE). */
export const GUID_DATA3 = 6;
/** Offset of a GUID's Data4 (8 bytes in string order). */
export const GUID_DATA4 = 8;
/** Offset of the last 6 bytes of Data4, the final group of the string form. */
export const GUID_NODE = 10;
/** AclSize and AceSize are u16, so no ACL exceeds this. */
export const MAX_ACL_SIZE = 0xffff;
/** ACLs and ACEs are DWORD-aligned (RtlValidAcl, MS-DTYP 2.4.4.1). */
const ALIGNMENT = 4;

/** ACE_HEADER.AceType values (winnt.h). */
export const AceType = {
  AccessAllowed: 0x00,
  AccessDenied: 0x01,
  SystemAudit: 0x02,
  SystemAlarm: 0x03,
  AccessAllowedCompound: 0x04,
  AccessAllowedObject: 0x05,
  AccessDeniedObject: 0x06,
  SystemAuditObject: 0x07,
  SystemAlarmObject: 0x08,
  AccessAllowedCallback: 0x09,
  AccessDeniedCallback: 0x0a,
  AccessAllowedCallbackObject: 0x0b,
  AccessDeniedCallbackObject: 0x0c,
  SystemAuditCallback: 0x0d,
  SystemAlarmCallback: 0x0e,
  SystemAuditCallbackObject: 0x0f,
  SystemAlarmCallbackObject: 0x10,
  SystemMandatoryLabel: 0x11,
  SystemResourceAttribute: 0x12,
  SystemScopedPolicyId: 0x13,
  SystemProcessTrustLabel: 0x14,
  SystemAccessFilter: 0x15,
} as const;

/** ACE_HEADER.AceFlags bits. */
export const AceFlag = {
  ObjectInherit: 0x01,
  ContainerInherit: 0x02,
  NoPropagateInherit: 0x04,
  InheritOnly: 0x08,
  Inherited: 0x10,
  SuccessfulAccess: 0x40,
  FailedAccess: 0x80,
} as const;

/** Object ACE Flags bits: which GUIDs follow. */
export const ObjectAceFlag = {
  ObjectTypePresent: 0x1,
  InheritedObjectTypePresent: 0x2,
} as const;

/** Types laid out as Mask + SID (+ application data for callback-like ones). */
const BASIC_LAYOUT_TYPES: ReadonlySet<number> = new Set([
  AceType.AccessAllowed, AceType.AccessDenied, AceType.SystemAudit, AceType.SystemAlarm,
  AceType.AccessAllowedCallback, AceType.AccessDeniedCallback, AceType.SystemAuditCallback,
  AceType.SystemAlarmCallback, AceType.SystemMandatoryLabel, AceType.SystemResourceAttribute,
  AceType.SystemScopedPolicyId, AceType.SystemProcessTrustLabel, AceType.SystemAccessFilter,
]);
/** Types laid out as Mask + Flags + GUIDs + SID (+ application data for callback ones). */
const OBJECT_LAYOUT_TYPES: ReadonlySet<number> = new Set([
  AceType.AccessAllowedObject, AceType.AccessDeniedObject, AceType.SystemAuditObject,
  AceType.SystemAlarmObject, AceType.AccessAllowedCallbackObject, AceType.AccessDeniedCallbackObject,
  AceType.SystemAuditCallbackObject, AceType.SystemAlarmCallbackObject,
]);

/** True for the ACE types stored with object GUIDs. */
export function isObjectAceType(type: number): boolean {
  return OBJECT_LAYOUT_TYPES.has(type);
}

/** An ACE with a mask and a SID (basic or object layout). */
export interface SidAce {
  readonly kind: 'sid';
  readonly type: number;
  readonly flags: number;
  readonly mask: number;
  /** Object ACEs only: the Flags field (which GUIDs are present, plus any unknown bits). */
  readonly objectFlags?: number;
  readonly objectType?: Buffer;
  readonly inheritedObjectType?: Buffer;
  readonly sid: Sid;
  /** Bytes after the SID inside AceSize (callback data, or slack). */
  readonly trailingBytes: number;
}

/** An ACE of a type whose layout we do not know: kept only for validation. */
export interface OpaqueAce {
  readonly kind: 'opaque';
  readonly type: number;
  readonly flags: number;
  readonly size: number;
}

/** A decoded ACE. */
export type Ace = SidAce | OpaqueAce;

/** A decoded ACL. */
export interface Acl {
  readonly revision: number;
  readonly aces: readonly Ace[];
}

/** Size of `ace` when encoded (only SID ACEs are ever encoded). */
export function aceSize(ace: SidAce): number {
  let size = ACE_HEADER_SIZE + ACCESS_MASK_SIZE + sidSize(ace.sid.subAuthorities.length);
  if (isObjectAceType(ace.type)) {
    size += OBJECT_FLAGS_SIZE;
    if (ace.objectType !== undefined) size += GUID_SIZE;
    if (ace.inheritedObjectType !== undefined) size += GUID_SIZE;
  }
  return size;
}

/** An ACL the encoder can write: only ACEs whose layout we know. */
export interface EncodableAcl {
  readonly revision: number;
  readonly aces: readonly SidAce[];
}

/** Size of `acl` when encoded. */
export function aclSize(acl: EncodableAcl): number {
  let size = ACL_HEADER_SIZE;
  for (const ace of acl.aces) size += aceSize(ace);
  return size;
}

/** Writes `acl` at `offset`; the caller checked aclSize(acl) <= MAX_ACL_SIZE. */
export function writeAcl(acl: EncodableAcl, out: Buffer, offset: number): number {
  const size = aclSize(acl);
  out.writeUInt8(acl.revision, offset);
  out.writeUInt8(0, offset + 1); // Sbz1
  out.writeUInt16LE(size, offset + ACL_SIZE_FIELD);
  out.writeUInt16LE(acl.aces.length, offset + ACL_COUNT_FIELD);
  out.writeUInt16LE(0, offset + ACL_SBZ2_FIELD);
  let at = offset + ACL_HEADER_SIZE;
  for (const ace of acl.aces) {
    out.writeUInt8(ace.type, at);
    out.writeUInt8(ace.flags, at + ACE_FLAGS_FIELD);
    out.writeUInt16LE(aceSize(ace), at + ACE_SIZE_FIELD);
    out.writeUInt32LE(ace.mask, at + ACE_HEADER_SIZE);
    let body = at + ACE_HEADER_SIZE + ACCESS_MASK_SIZE;
    if (isObjectAceType(ace.type)) {
      let objectFlags = 0;
      if (ace.objectType !== undefined) objectFlags |= ObjectAceFlag.ObjectTypePresent;
      if (ace.inheritedObjectType !== undefined) objectFlags |= ObjectAceFlag.InheritedObjectTypePresent;
      out.writeUInt32LE(objectFlags, body);
      body += OBJECT_FLAGS_SIZE;
      for (const guid of [ace.objectType, ace.inheritedObjectType]) {
        if (guid === undefined) continue;
        guid.copy(out, body);
        body += GUID_SIZE;
      }
    }
    at = writeSid(ace.sid, out, body);
  }
  return at;
}

function invalid(message: string, data: Record<string, number>): WinLayerError {
  return createError('ERR_SECURITY_DESCRIPTOR_INVALID', `security descriptor: ${message}`, data);
}

/** Decodes one ACE occupying [offset, offset + size). */
function readAce(buf: Buffer, offset: number, size: number, where: string): Ace {
  const type = buf.readUInt8(offset);
  const flags = buf.readUInt8(offset + ACE_FLAGS_FIELD);
  const end = offset + size;
  if (!BASIC_LAYOUT_TYPES.has(type) && !OBJECT_LAYOUT_TYPES.has(type)) return { kind: 'opaque', type, flags, size };
  let at = offset + ACE_HEADER_SIZE;
  if (at + ACCESS_MASK_SIZE > end) throw invalid(`${where} of type 0x${type.toString(16)} is ${size} bytes, too short for its mask`, { offset, size });
  const mask = buf.readUInt32LE(at);
  at += ACCESS_MASK_SIZE;
  if (BASIC_LAYOUT_TYPES.has(type)) {
    const sid = readSid(buf, at, end, `SID of ${where}`);
    return { kind: 'sid', type, flags, mask, sid, trailingBytes: end - at - sidSize(sid.subAuthorities.length) };
  }
  if (at + OBJECT_FLAGS_SIZE > end) throw invalid(`${where} of type 0x${type.toString(16)} is ${size} bytes, too short for its object flags`, { offset, size });
  const objectFlags = buf.readUInt32LE(at);
  at += OBJECT_FLAGS_SIZE;
  const guids: (Buffer | undefined)[] = [];
  for (const bit of [ObjectAceFlag.ObjectTypePresent, ObjectAceFlag.InheritedObjectTypePresent]) {
    if ((objectFlags & bit) === 0) {
      guids.push(undefined);
      continue;
    }
    if (at + GUID_SIZE > end) throw invalid(`${where} at offset ${offset} is ${size} bytes, too short for its object GUIDs`, { offset, size });
    guids.push(Buffer.from(buf.subarray(at, at + GUID_SIZE)));
    at += GUID_SIZE;
  }
  const sid = readSid(buf, at, end, `SID of ${where}`);
  const [objectType, inheritedObjectType] = guids;
  return {
    kind: 'sid', type, flags, mask, objectFlags, sid,
    ...(objectType === undefined ? {} : { objectType }),
    ...(inheritedObjectType === undefined ? {} : { inheritedObjectType }),
    trailingBytes: end - at - sidSize(sid.subAuthorities.length),
  };
}

/**
 * Decodes and checks the ACL at `offset` of a buffer whose valid bytes end at `limit`.
 * `name` is "DACL" or "SACL". Throws ERR_SECURITY_DESCRIPTOR_INVALID naming the problem.
 */
export function readAcl(buf: Buffer, offset: number, limit: number, name: string): Acl {
  if (offset + ACL_HEADER_SIZE > limit) throw invalid(`${name} at offset ${offset} is truncated (needs ${ACL_HEADER_SIZE} bytes, ${Math.max(0, limit - offset)} left)`, { offset, limit });
  const revision = buf.readUInt8(offset);
  if (revision !== ACL_REVISION && revision !== ACL_REVISION_DS) throw invalid(`${name} at offset ${offset} has revision ${revision}, expected ${ACL_REVISION} or ${ACL_REVISION_DS}`, { offset, revision });
  const size = buf.readUInt16LE(offset + ACL_SIZE_FIELD);
  const count = buf.readUInt16LE(offset + ACL_COUNT_FIELD);
  if (size < ACL_HEADER_SIZE || size % ALIGNMENT !== 0) throw invalid(`${name} at offset ${offset} has AclSize ${size}, not a multiple of ${ALIGNMENT} of at least ${ACL_HEADER_SIZE}`, { offset, size });
  if (offset + size > limit) throw invalid(`${name} at offset ${offset} has AclSize ${size} but only ${limit - offset} bytes remain`, { offset, size, limit });
  const end = offset + size;
  const aces: Ace[] = [];
  let at = offset + ACL_HEADER_SIZE;
  for (let i = 0; i < count; i++) {
    const where = `${name} ACE ${i}`;
    if (at + ACE_HEADER_SIZE > end) throw invalid(`${name} at offset ${offset} declares ${count} ACEs but ACE ${i} at offset ${at} lies beyond its AclSize ${size}`, { offset, count, index: i });
    const aceBytes = buf.readUInt16LE(at + ACE_SIZE_FIELD);
    if (aceBytes < ACE_HEADER_SIZE || aceBytes % ALIGNMENT !== 0) throw invalid(`${where} at offset ${at} has AceSize ${aceBytes}, not a multiple of ${ALIGNMENT} of at least ${ACE_HEADER_SIZE}`, { offset: at, size: aceBytes });
    if (at + aceBytes > end) throw invalid(`${where} at offset ${at} has AceSize ${aceBytes}, beyond its ACL's end at ${end}`, { offset: at, size: aceBytes, end });
    aces.push(readAce(buf, at, aceBytes, where));
    at += aceBytes;
  }
  return { revision, aces };
}
