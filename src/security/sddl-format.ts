/**
 * Self-relative security descriptor → SDDL, in the canonical form that
 * ConvertSecurityDescriptorToStringSecurityDescriptor prints for owner, group, DACL and
 * SACL: components in the order O G D S, ACL flags as P AR AI, ACE flags as OI CI NP IO
 * ID SA FA, rights as in access-mask.ts, SIDs as a machine-independent alias when one
 * exists, GUIDs in lowercase.
 *
 * What SDDL cannot say is dropped or refused:
 * - control bits other than the present/protected/auto-inherit ones (e.g. defaulted bits,
 *   SE_RM_CONTROL_VALID, a protected bit on an absent ACL) are not printed;
 * - bytes after an ACE's SID (slack inside AceSize) are not printed;
 * - ACE types without an SDDL form here (callback, resource attribute, scoped policy,
 *   unknown), unknown ACE flag bits and unknown object ACE flags throw ERR_SDDL_UNSUPPORTED.
 * Windows prints a domain-relative alias (DU, LA, ...) for SIDs of its own domain; we
 * cannot know the domain, so those stay numeric.
 */

import { createError, type WinLayerError } from '../errors.js';
import { formatAccessMask } from './access-mask.js';
import { AceType, GUID_DATA2, GUID_DATA3, GUID_DATA4, GUID_NODE, GUID_SIZE, isObjectAceType, ObjectAceFlag, type Ace, type Acl } from './acl.js';
import { ACE_FLAG_CODES, ACE_TYPE_CODES } from './sddl-grammar.js';
import { decodeSecurityDescriptor, SdControl } from './security-descriptor.js';
import { formatSidForSddl } from './sid.js';

const ACE_CODE_BY_TYPE: ReadonlyMap<number, string> = new Map(Object.entries(ACE_TYPE_CODES).map(([code, { type }]) => [type, code]));
const KNOWN_ACE_FLAGS = ACE_FLAG_CODES.reduce((all, [, bit]) => all | bit, 0);
const KNOWN_OBJECT_FLAGS = ObjectAceFlag.ObjectTypePresent | ObjectAceFlag.InheritedObjectTypePresent;
const HEX_RADIX = 16;

function unsupported(message: string, data: Record<string, number>): WinLayerError {
  return createError('ERR_SDDL_UNSUPPORTED', `security descriptor: ${message}`, data);
}

/** The UuidToString form of 16 GUID bytes. */
function formatGuid(guid: Buffer): string {
  const hex = (start: number, end: number): string => guid.subarray(start, end).toString('hex');
  const le = (start: number, end: number): string => Buffer.from(guid.subarray(start, end)).reverse().toString('hex');
  return [le(0, GUID_DATA2), le(GUID_DATA2, GUID_DATA3), le(GUID_DATA3, GUID_DATA4), hex(GUID_DATA4, GUID_NODE), hex(GUID_NODE, GUID_SIZE)].join('-');
}

function formatAce(ace: Ace, index: number, aclName: string): string {
  const code = ACE_CODE_BY_TYPE.get(ace.type);
  if (ace.kind !== 'sid' || code === undefined) {
    throw unsupported(`${aclName} ACE ${index} has type 0x${ace.type.toString(HEX_RADIX)}, which has no SDDL form here`, { index, aceType: ace.type });
  }
  if ((ace.flags & ~KNOWN_ACE_FLAGS) !== 0) {
    throw unsupported(`${aclName} ACE ${index} has flags 0x${ace.flags.toString(HEX_RADIX)} with bits SDDL cannot name`, { index, flags: ace.flags });
  }
  const flags = ACE_FLAG_CODES.filter(([, bit]) => (ace.flags & bit) !== 0).map(([code]) => code).join('');
  let objectType = '';
  let inheritedObjectType = '';
  if (isObjectAceType(ace.type)) {
    const objectFlags = ace.objectFlags ?? 0;
    if ((objectFlags & ~KNOWN_OBJECT_FLAGS) !== 0) {
      throw unsupported(`${aclName} ACE ${index} has object flags 0x${objectFlags.toString(HEX_RADIX)} with unknown bits`, { index, objectFlags });
    }
    if (ace.objectType !== undefined) objectType = formatGuid(ace.objectType);
    if (ace.inheritedObjectType !== undefined) inheritedObjectType = formatGuid(ace.inheritedObjectType);
  }
  const rights = formatAccessMask(ace.mask, ace.type === AceType.SystemMandatoryLabel);
  return `(${[code, flags, rights, objectType, inheritedObjectType, formatSidForSddl(ace.sid)].join(';')})`;
}

function formatAcl(acl: Acl | undefined, control: number, bits: { protected: number; autoInheritReq: number; autoInherited: number }, name: string): string {
  let out = '';
  if ((control & bits.protected) !== 0) out += 'P';
  if ((control & bits.autoInheritReq) !== 0) out += 'AR';
  if ((control & bits.autoInherited) !== 0) out += 'AI';
  if (acl === undefined) return `${out}NO_ACCESS_CONTROL`;
  return out + acl.aces.map((ace, i) => formatAce(ace, i, name)).join('');
}

/** Converts a self-relative binary SD to SDDL (for display and for tests; canonical form). */
export function sddlFromSecurityDescriptor(sd: Uint8Array): string {
  const d = decodeSecurityDescriptor(sd);
  let out = '';
  if (d.owner !== undefined) out += `O:${formatSidForSddl(d.owner)}`;
  if (d.group !== undefined) out += `G:${formatSidForSddl(d.group)}`;
  if ((d.control & SdControl.DaclPresent) !== 0) {
    out += `D:${formatAcl(d.dacl, d.control, { protected: SdControl.DaclProtected, autoInheritReq: SdControl.DaclAutoInheritReq, autoInherited: SdControl.DaclAutoInherited }, 'DACL')}`;
  }
  if ((d.control & SdControl.SaclPresent) !== 0) {
    out += `S:${formatAcl(d.sacl, d.control, { protected: SdControl.SaclProtected, autoInheritReq: SdControl.SaclAutoInheritReq, autoInherited: SdControl.SaclAutoInherited }, 'SACL')}`;
  }
  return out;
}
