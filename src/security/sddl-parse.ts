/**
 * SDDL → self-relative security descriptor, reproducing
 * ConvertStringSecurityDescriptorToSecurityDescriptorW (SDDL_REVISION_1) for the subset
 * that Windows layers and Linux-side layer producers use.
 *
 * Supported: components O:, G:, D:, S: in any order, each at most once; ACL flags P, AR, AI
 * and NO_ACCESS_CONTROL (a present but NULL ACL); ACE types A, D, OA, OD (DACL) and AU, AL,
 * OU, OL, ML (SACL); ACE flags OI CI NP IO ID SA FA; rights as codes or numbers; GUIDs;
 * SIDs as S-1-... or a machine-independent alias.
 *
 * Rejected with ERR_SDDL_UNSUPPORTED (valid SDDL we cannot convert faithfully here):
 * - machine/domain/forest-relative aliases (LA, LG, DA, DU, EA, ...): see sid.ts;
 * - conditional (callback) ACEs XA, XD, XU, ZA, resource attribute ACEs RA and scoped
 *   policy ACEs SP: their binary payload needs an expression compiler, and no layer
 *   producer emits them.
 *
 * Everything else malformed is ERR_SDDL_INVALID. The whitespace rules are Windows' own,
 * from Wine's and Samba's tests that were run against Windows: spaces are allowed before
 * the string, between components, around ACL flags, between ACEs, before every ACE field,
 * between rights/flag codes, and after a two-letter SID alias; not between a component
 * letter and its colon, not after an ACE type, rights, a GUID or a numeric SID. Tabs are
 * never whitespace. Where Windows accepts something misleading (overflowing or negative
 * numbers saturate or wrap) we reject instead; see access-mask.ts and sid.ts.
 */

import { createError } from '../errors.js';
import { parseAccessMask, parseCodeList } from './access-mask.js';
import { ACL_REVISION, ACL_REVISION_DS, AceType, GUID_DATA2, GUID_DATA3, GUID_DATA4, GUID_SIZE, isObjectAceType, type EncodableAcl, type SidAce } from './acl.js';
import { ACE_FLAG_TABLE, ACE_TYPE_CODES, sddlInvalid, skipSpaces, type AclKind } from './sddl-grammar.js';
import { encodeSecurityDescriptor, SdControl, type SecurityDescriptorParts } from './security-descriptor.js';
import { parseSddlSid, type Sid } from './sid.js';

/** Valid SDDL ACE types we refuse to convert (see the module comment). */
const UNSUPPORTED_ACE_TYPE_CODES: ReadonlySet<string> = new Set(['XA', 'XD', 'XU', 'ZA', 'RA', 'SP']);

/**
 * An object ACE without either GUID is written as the matching basic ACE: Microsoft's
 * "ACE Strings" page says so for OA; we assume the same for OD, OU and OL.
 */
const BASIC_TYPE_OF_OBJECT_TYPE: ReadonlyMap<number, number> = new Map([
  [AceType.AccessAllowedObject, AceType.AccessAllowed],
  [AceType.AccessDeniedObject, AceType.AccessDenied],
  [AceType.SystemAuditObject, AceType.SystemAudit],
  [AceType.SystemAlarmObject, AceType.SystemAlarm],
]);

/** Control bits per ACL flag: [DACL bit, SACL bit]. */
const ACL_FLAG_CONTROL: readonly (readonly [flag: string, dacl: number, sacl: number])[] = [
  ['P', SdControl.DaclProtected, SdControl.SaclProtected],
  ['AR', SdControl.DaclAutoInheritReq, SdControl.SaclAutoInheritReq],
  ['AI', SdControl.DaclAutoInherited, SdControl.SaclAutoInherited],
];
const NO_ACCESS_CONTROL = 'NO_ACCESS_CONTROL';

const ACE_OPEN = '(';
const ACE_CLOSE = ')';
const FIELD_SEPARATOR = ';';
const COMPONENT_SEPARATOR = ':';
/** type;flags;rights;object_guid;inherit_object_guid;account_sid */
const ACE_FIELD_COUNT = 6;
const GUID_PATTERN = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const HEX_RADIX = 16;

/** A GUID string (UuidToString form) as its 16 bytes: Data1-3 little-endian, Data4 as is. */
function parseGuid(text: string, base: number): Buffer | undefined {
  if (skipSpaces(text, 0) === text.length) return undefined;
  if (!GUID_PATTERN.test(text)) throw sddlInvalid(base, `"${text}" is not a GUID of the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`);
  const [data1 = '', data2 = '', data3 = '', data4a = '', data4b = ''] = text.split('-');
  const out = Buffer.alloc(GUID_SIZE);
  out.writeUInt32LE(parseInt(data1, HEX_RADIX), 0);
  out.writeUInt16LE(parseInt(data2, HEX_RADIX), GUID_DATA2);
  out.writeUInt16LE(parseInt(data3, HEX_RADIX), GUID_DATA3);
  Buffer.from(data4a + data4b, 'hex').copy(out, GUID_DATA4);
  return out;
}

/** The ACE type field, upper-cased, without the spaces Windows allows before it. */
function aceTypeCode(text: string): string {
  return text.slice(skipSpaces(text, 0)).toUpperCase();
}

/** Parses one ACE whose text (without parentheses) starts at offset `base`. */
function parseAce(inner: string, base: number, acl: AclKind): SidAce {
  const fields = inner.split(FIELD_SEPARATOR);
  if (fields.length !== ACE_FIELD_COUNT) throw sddlInvalid(base, `ACE "(${inner})" has ${fields.length} fields, expected ${ACE_FIELD_COUNT}`);
  const offsets: number[] = [];
  let at = base;
  for (const f of fields) {
    offsets.push(at);
    at += f.length + FIELD_SEPARATOR.length;
  }
  const [typeText = '', flagsText = '', rightsText = '', objectText = '', inheritedText = '', sidText = ''] = fields;
  const [typeAt = base, flagsAt = base, rightsAt = base, objectAt = base, inheritedAt = base, sidAt = base] = offsets;

  const code = aceTypeCode(typeText);
  const known = Object.hasOwn(ACE_TYPE_CODES, code) ? ACE_TYPE_CODES[code] : undefined;
  if (known === undefined) throw sddlInvalid(typeAt, `unknown ACE type "${typeText}"`);
  if (known.acl !== acl) throw sddlInvalid(typeAt, `ACE type ${code} does not belong in a ${acl}`);
  const flags = parseCodeList(flagsText, flagsAt, ACE_FLAG_TABLE, 'ACE flag');
  const mask = parseAccessMask(rightsText, rightsAt);
  const objectType = parseGuid(objectText, objectAt);
  const inheritedObjectType = parseGuid(inheritedText, inheritedAt);
  const sid: Sid = parseSddlSid(sidText, sidAt);

  let type = known.type;
  if (isObjectAceType(type)) {
    if (objectType === undefined && inheritedObjectType === undefined) type = BASIC_TYPE_OF_OBJECT_TYPE.get(type) ?? type;
  } else if (objectType !== undefined || inheritedObjectType !== undefined) {
    throw sddlInvalid(objectType !== undefined ? objectAt : inheritedAt, `ACE type ${code} cannot carry object GUIDs`);
  }
  return {
    kind: 'sid', type, flags, mask, sid, trailingBytes: 0,
    ...(objectType === undefined ? {} : { objectType }),
    ...(inheritedObjectType === undefined ? {} : { inheritedObjectType }),
  };
}

interface ParsedAcl {
  /** Control bits from the ACL flags, including the present bit. */
  readonly control: number;
  /** Undefined for NO_ACCESS_CONTROL (a NULL ACL). */
  readonly acl: EncodableAcl | undefined;
}

/** Parses the value of a D: or S: component, which starts at offset `base`. */
function parseAclComponent(text: string, base: number, kind: AclKind): ParsedAcl {
  const isDacl = kind === 'DACL';
  let control = isDacl ? SdControl.DaclPresent : SdControl.SaclPresent;
  let isNull = false;
  let i = 0;
  flags: while (i < text.length && text[i] !== ACE_OPEN) {
    if (text[i] === ' ') {
      i++;
      continue;
    }
    if (text.slice(i, i + NO_ACCESS_CONTROL.length).toUpperCase() === NO_ACCESS_CONTROL) {
      isNull = true;
      i += NO_ACCESS_CONTROL.length;
      continue;
    }
    for (const [flag, daclBit, saclBit] of ACL_FLAG_CONTROL) {
      if (text.slice(i, i + flag.length).toUpperCase() === flag) {
        control |= isDacl ? daclBit : saclBit;
        i += flag.length;
        continue flags;
      }
    }
    throw sddlInvalid(base + i, `unknown ${kind} flag at "${text.slice(i, i + NO_ACCESS_CONTROL.length)}"`);
  }

  const aces: SidAce[] = [];
  for (;;) {
    i = skipSpaces(text, i);
    if (i >= text.length) break;
    if (text[i] !== ACE_OPEN) throw sddlInvalid(base + i, `expected "(" to start an ACE, found "${text[i] ?? ''}"`);
    const typeEnd = [FIELD_SEPARATOR, ACE_CLOSE].map((c) => text.indexOf(c, i + 1)).filter((n) => n !== -1);
    const code = aceTypeCode(text.slice(i + 1, typeEnd.length > 0 ? Math.min(...typeEnd) : text.length));
    if (UNSUPPORTED_ACE_TYPE_CODES.has(code)) {
      throw createError('ERR_SDDL_UNSUPPORTED', `SDDL at offset ${base + i + 1}: ACE type ${code} (conditional, resource attribute or scoped policy ACE) is not supported`, { offset: base + i + 1, aceType: code });
    }
    const close = text.indexOf(ACE_CLOSE, i + 1);
    if (close === -1) throw sddlInvalid(base + i, 'ACE has no closing ")"');
    const inner = text.slice(i + 1, close);
    const nested = inner.indexOf(ACE_OPEN);
    if (nested !== -1) throw sddlInvalid(base + i + 1 + nested, 'unexpected "(" inside an ACE');
    aces.push(parseAce(inner, base + i + 1, kind));
    i = close + 1;
  }
  if (isNull) {
    if (aces.length > 0) throw sddlInvalid(base, `${kind} is ${NO_ACCESS_CONTROL} but lists ACEs`);
    return { control, acl: undefined };
  }
  const revision = aces.some((a) => isObjectAceType(a.type)) ? ACL_REVISION_DS : ACL_REVISION;
  return { control, acl: { revision, aces } };
}

/** Parses SDDL into the parts of a security descriptor. */
export function securityDescriptorPartsFromSddl(sddl: string): SecurityDescriptorParts {
  let control = 0;
  let owner: Sid | undefined;
  let group: Sid | undefined;
  let dacl: EncodableAcl | undefined;
  let sacl: EncodableAcl | undefined;
  const seen = new Set<string>();
  let pos = skipSpaces(sddl, 0);
  while (pos < sddl.length) {
    const letter = sddl[pos] ?? '';
    if (!'OGDS'.includes(letter) || sddl[pos + 1] !== COMPONENT_SEPARATOR) {
      throw sddlInvalid(pos, `expected O:, G:, D: or S:, found "${sddl.slice(pos, pos + 2)}"`);
    }
    if (seen.has(letter)) throw sddlInvalid(pos, `component ${letter}: appears twice`);
    seen.add(letter);
    const start = pos + 2;
    // A component runs up to the letter before the next colon, as on Windows: that is why
    // "O:S-1-2-0x200D:" has owner S-1-2-512 (Samba's Windows-checked tests).
    const nextColon = sddl.indexOf(COMPONENT_SEPARATOR, start);
    if (nextColon === start) throw sddlInvalid(start, `unexpected "${COMPONENT_SEPARATOR}"`);
    const end = nextColon === -1 ? sddl.length : nextColon - 1;
    const value = sddl.slice(start, end);
    switch (letter) {
      case 'O':
        owner = parseSddlSid(value, start);
        break;
      case 'G':
        group = parseSddlSid(value, start);
        break;
      default: {
        const parsed = parseAclComponent(value, start, letter === 'D' ? 'DACL' : 'SACL');
        control |= parsed.control;
        if (letter === 'D') dacl = parsed.acl;
        else sacl = parsed.acl;
      }
    }
    pos = end;
  }
  return { control, owner, group, sacl, dacl };
}

/**
 * Converts SDDL to the self-relative binary SD that Windows'
 * ConvertStringSecurityDescriptorToSecurityDescriptorW returns, byte for byte.
 */
export function securityDescriptorFromSddl(sddl: string): Buffer {
  return encodeSecurityDescriptor(securityDescriptorPartsFromSddl(sddl));
}
