/**
 * The self-relative SECURITY_DESCRIPTOR (MS-DTYP 2.4.6): the bytes a Windows backup stream
 * carries as its SECURITY_DATA and go-winio stores base64-encoded in MSWINDOWS.rawsd.
 *
 * Header (20 bytes): Revision u8 (1), Sbz1 u8, Control u16, then u32 offsets from the
 * start of the descriptor to the owner SID, group SID, SACL and DACL (0 = absent).
 *
 * The order of the variable parts is free in the format, so "byte for byte like Windows"
 * depends on who wrote it:
 * - ConvertStringSecurityDescriptorToSecurityDescriptorW writes SACL, DACL, owner, group.
 *   Evidence: CloudSoda/sddl testdata/many-perms and single-perm hold that function's
 *   output on Windows for "O:...G:...D:..." strings, and it places the DACL at offset 0x14
 *   with owner and group after it; crane's fixed "O:BUG:BU" (FORMATS.md 2.9) has owner then
 *   group. That is the order of RtlMakeSelfRelativeSD (ReactOS sdk/lib/rtl/sd.c copies Sacl,
 *   Dacl, Owner, Group), which also puts the SACL before the DACL; no Windows-made vector
 *   with both ACLs was found, so the SACL position rests on that reimplementation.
 * - Descriptors read back from NTFS (GetSecurityInfo, BackupRead) come as owner, group,
 *   DACL, SACL (CloudSoda testdata/dacl-and-sacl, buildkit's fixed rawsd blobs). We read
 *   any order; we write only the ConvertString order.
 */

import { createError, type WinLayerError } from '../errors.js';
import { aclSize, MAX_ACL_SIZE, readAcl, writeAcl, type Acl, type EncodableAcl } from './acl.js';
import { readSid, sidSize, writeSid, type Sid } from './sid.js';

/** SECURITY_DESCRIPTOR_REVISION. */
export const SECURITY_DESCRIPTOR_REVISION = 1;
/** sizeof(SECURITY_DESCRIPTOR_RELATIVE). */
export const SECURITY_DESCRIPTOR_HEADER_SIZE = 20;
const CONTROL_OFFSET = 2;
const OWNER_OFFSET_FIELD = 4;
const GROUP_OFFSET_FIELD = 8;
const SACL_OFFSET_FIELD = 12;
const DACL_OFFSET_FIELD = 16;
/** Components start on DWORD boundaries (RtlValidRelativeSecurityDescriptor). */
const ALIGNMENT = 4;

/** SECURITY_DESCRIPTOR_CONTROL bits (winnt.h). */
export const SdControl = {
  OwnerDefaulted: 0x0001,
  GroupDefaulted: 0x0002,
  DaclPresent: 0x0004,
  DaclDefaulted: 0x0008,
  SaclPresent: 0x0010,
  SaclDefaulted: 0x0020,
  DaclUntrusted: 0x0040,
  ServerSecurity: 0x0080,
  DaclAutoInheritReq: 0x0100,
  SaclAutoInheritReq: 0x0200,
  DaclAutoInherited: 0x0400,
  SaclAutoInherited: 0x0800,
  DaclProtected: 0x1000,
  SaclProtected: 0x2000,
  RmControlValid: 0x4000,
  SelfRelative: 0x8000,
} as const;

/** What the encoder writes. An ACL that is present (per `control`) but undefined is a NULL ACL. */
export interface SecurityDescriptorParts {
  /** Control bits; SE_SELF_RELATIVE is added by the encoder. */
  readonly control: number;
  readonly owner: Sid | undefined;
  readonly group: Sid | undefined;
  readonly sacl: EncodableAcl | undefined;
  readonly dacl: EncodableAcl | undefined;
}

/** What the decoder returns, with the same conventions as SecurityDescriptorParts. */
export interface DecodedSecurityDescriptor {
  readonly control: number;
  readonly owner: Sid | undefined;
  readonly group: Sid | undefined;
  readonly sacl: Acl | undefined;
  readonly dacl: Acl | undefined;
}

/**
 * Lays out a self-relative descriptor as ConvertStringSecurityDescriptorToSecurityDescriptorW
 * does: header, SACL, DACL, owner, group. Throws ERR_SDDL_INVALID if an ACL exceeds 64 KiB.
 */
export function encodeSecurityDescriptor(parts: SecurityDescriptorParts): Buffer {
  const components: { field: number; size: number; write: (out: Buffer, at: number) => void }[] = [];
  for (const [acl, field, name] of [[parts.sacl, SACL_OFFSET_FIELD, 'SACL'], [parts.dacl, DACL_OFFSET_FIELD, 'DACL']] as const) {
    if (acl === undefined) continue;
    const size = aclSize(acl);
    if (size > MAX_ACL_SIZE) {
      throw createError('ERR_SDDL_INVALID', `SDDL: ${name} of ${acl.aces.length} ACEs needs ${size} bytes, more than the ${MAX_ACL_SIZE} an ACL can hold`, { size });
    }
    components.push({ field, size, write: (out, at) => writeAcl(acl, out, at) });
  }
  for (const [sid, field] of [[parts.owner, OWNER_OFFSET_FIELD], [parts.group, GROUP_OFFSET_FIELD]] as const) {
    if (sid === undefined) continue;
    components.push({ field, size: sidSize(sid.subAuthorities.length), write: (out, at) => writeSid(sid, out, at) });
  }
  const total = components.reduce((sum, c) => sum + c.size, SECURITY_DESCRIPTOR_HEADER_SIZE);
  const out = Buffer.alloc(total);
  out.writeUInt8(SECURITY_DESCRIPTOR_REVISION, 0);
  out.writeUInt16LE((parts.control | SdControl.SelfRelative) >>> 0, CONTROL_OFFSET);
  let at = SECURITY_DESCRIPTOR_HEADER_SIZE;
  for (const c of components) {
    out.writeUInt32LE(at, c.field);
    c.write(out, at);
    at += c.size;
  }
  return out;
}

function invalid(message: string, data: Record<string, number>): WinLayerError {
  return createError('ERR_SECURITY_DESCRIPTOR_INVALID', `security descriptor: ${message}`, data);
}

/** Reads an offset field and checks that it can point at a component. */
function readComponentOffset(buf: Buffer, field: number, name: string): number {
  const offset = buf.readUInt32LE(field);
  if (offset === 0) return 0;
  if (offset < SECURITY_DESCRIPTOR_HEADER_SIZE || offset >= buf.length || offset % ALIGNMENT !== 0) {
    throw invalid(`${name} offset ${offset} is not a ${ALIGNMENT}-aligned offset inside the ${buf.length}-byte descriptor after its ${SECURITY_DESCRIPTOR_HEADER_SIZE}-byte header`, { offset, length: buf.length });
  }
  return offset;
}

function readAclComponent(buf: Buffer, control: number, presentBit: number, field: number, name: string): Acl | undefined {
  const offset = readComponentOffset(buf, field, name);
  // Without its present bit the ACL is absent whatever the offset says: Windows ignores
  // the offset then (RtlValidRelativeSecurityDescriptor, RtlpQuerySecurityDescriptor), so
  // we only require it to be in bounds and do not read what it points at.
  if ((control & presentBit) === 0) return undefined;
  return offset === 0 ? undefined : readAcl(buf, offset, buf.length, name);
}

/**
 * Decodes a self-relative descriptor, checking every offset, SID, ACL and ACE against the
 * buffer's bounds. Throws ERR_SECURITY_DESCRIPTOR_INVALID naming the first problem.
 */
export function decodeSecurityDescriptor(sd: Uint8Array): DecodedSecurityDescriptor {
  const buf = Buffer.from(sd.buffer, sd.byteOffset, sd.byteLength);
  if (buf.length < SECURITY_DESCRIPTOR_HEADER_SIZE) {
    throw invalid(`${buf.length} bytes is shorter than the ${SECURITY_DESCRIPTOR_HEADER_SIZE}-byte header`, { length: buf.length });
  }
  const revision = buf.readUInt8(0);
  if (revision !== SECURITY_DESCRIPTOR_REVISION) throw invalid(`revision ${revision}, expected ${SECURITY_DESCRIPTOR_REVISION}`, { revision });
  const control = buf.readUInt16LE(CONTROL_OFFSET);
  if ((control & SdControl.SelfRelative) === 0) throw invalid(`control 0x${control.toString(16)} lacks SE_SELF_RELATIVE, so its offsets are pointers`, { control });
  const ownerOffset = readComponentOffset(buf, OWNER_OFFSET_FIELD, 'owner');
  const groupOffset = readComponentOffset(buf, GROUP_OFFSET_FIELD, 'group');
  const owner = ownerOffset === 0 ? undefined : readSid(buf, ownerOffset, buf.length, 'owner SID');
  const group = groupOffset === 0 ? undefined : readSid(buf, groupOffset, buf.length, 'group SID');
  const sacl = readAclComponent(buf, control, SdControl.SaclPresent, SACL_OFFSET_FIELD, 'SACL');
  const dacl = readAclComponent(buf, control, SdControl.DaclPresent, DACL_OFFSET_FIELD, 'DACL');
  return { control, owner, group, sacl, dacl };
}

/**
 * Validates a self-relative security descriptor: revision 1, SE_SELF_RELATIVE, every offset
 * and length in bounds, SIDs and ACLs well formed. Throws ERR_SECURITY_DESCRIPTOR_INVALID.
 */
export function validateSecurityDescriptor(sd: Uint8Array): void {
  decodeSecurityDescriptor(sd);
}
