/**
 * SIDs: the binary form (MS-DTYP 2.4.2.2), the `S-1-...` string form, and the two-letter
 * SDDL aliases (MS-DTYP 2.5.1.1, Microsoft's "SID Strings" page).
 *
 * Only aliases whose SID is the same on every machine are resolvable here. The others
 * (LA, LG, DA, DU, ...) append a RID to the machine's, domain's or forest's SID, which a
 * Linux host converting a layer tar does not have, so they fail with ERR_SDDL_UNSUPPORTED
 * rather than silently meaning something else.
 */

import { createError } from '../errors.js';
import { sddlInvalid, skipSpaces } from './sddl-lexer.js';

/** SID_REVISION, the only revision Windows defines or accepts. */
export const SID_REVISION = 1;
/** SID_MAX_SUB_AUTHORITIES. */
export const SID_MAX_SUB_AUTHORITIES = 15;
/** Revision (1) + SubAuthorityCount (1) + IdentifierAuthority (6). */
export const SID_HEADER_SIZE = 8;
/** Each subauthority is a little-endian u32. */
export const SID_SUB_AUTHORITY_SIZE = 4;
const SID_AUTHORITY_OFFSET = 2;
const SID_AUTHORITY_SIZE = 6;
/** The identifier authority is 48 bits, big-endian. */
const MAX_AUTHORITY = 2 ** 48 - 1;
const MAX_SUB_AUTHORITY = 0xffff_ffff;
/** Authorities at or above 2^32 are printed in hex, as Windows does. */
const DECIMAL_AUTHORITY_LIMIT = 2 ** 32;
const DECIMAL_RADIX = 10;
const HEX_RADIX = 16;

/** A security identifier, decoded. */
export interface Sid {
  /** IdentifierAuthority as a number (48 bits fit in a double exactly). */
  readonly authority: number;
  readonly subAuthorities: readonly number[];
}

/**
 * Aliases that denote the same SID everywhere. Values from MS-DTYP 2.4.2.4 (well-known
 * SIDs) and Samba's Windows-checked SDDL table; Wine's tests run on Windows confirm WD, CO,
 * CG, OW, NU, IU, SU, AN, ED, PS, AU, RC, SY, LS, NS, BO, BA, BU, BG, PU, AO, SO, PO, RE,
 * RU, RD, NO and AC.
 */
const WELL_KNOWN_ALIASES: readonly (readonly [alias: string, sid: string])[] = [
  ['WD', 'S-1-1-0'],
  ['CO', 'S-1-3-0'],
  ['CG', 'S-1-3-1'],
  ['OW', 'S-1-3-4'],
  ['NU', 'S-1-5-2'],
  ['IU', 'S-1-5-4'],
  ['SU', 'S-1-5-6'],
  ['AN', 'S-1-5-7'],
  ['ED', 'S-1-5-9'],
  ['PS', 'S-1-5-10'],
  ['AU', 'S-1-5-11'],
  ['RC', 'S-1-5-12'],
  ['SY', 'S-1-5-18'],
  ['LS', 'S-1-5-19'],
  ['NS', 'S-1-5-20'],
  ['WR', 'S-1-5-33'],
  ['BA', 'S-1-5-32-544'],
  ['BU', 'S-1-5-32-545'],
  ['BG', 'S-1-5-32-546'],
  ['PU', 'S-1-5-32-547'],
  ['AO', 'S-1-5-32-548'],
  ['SO', 'S-1-5-32-549'],
  ['PO', 'S-1-5-32-550'],
  ['BO', 'S-1-5-32-551'],
  ['RE', 'S-1-5-32-552'],
  ['RU', 'S-1-5-32-554'],
  ['RD', 'S-1-5-32-555'],
  ['NO', 'S-1-5-32-556'],
  ['MU', 'S-1-5-32-558'],
  ['LU', 'S-1-5-32-559'],
  ['IS', 'S-1-5-32-568'],
  ['CY', 'S-1-5-32-569'],
  ['ER', 'S-1-5-32-573'],
  ['CD', 'S-1-5-32-574'],
  ['RA', 'S-1-5-32-575'],
  ['ES', 'S-1-5-32-576'],
  ['MS', 'S-1-5-32-577'],
  ['HA', 'S-1-5-32-578'],
  ['AA', 'S-1-5-32-579'],
  ['RM', 'S-1-5-32-580'],
  ['UD', 'S-1-5-84-0-0-0-0-0'],
  ['AC', 'S-1-15-2-1'],
  // Mandatory integrity levels, used as the trustee of ML ACEs.
  ['LW', 'S-1-16-4096'],
  ['ME', 'S-1-16-8192'],
  ['MP', 'S-1-16-8448'],
  ['HI', 'S-1-16-12288'],
  ['SI', 'S-1-16-16384'],
  ['AS', 'S-1-18-1'],
  ['SS', 'S-1-18-2'],
];

/**
 * Aliases relative to the machine (LA, LG), the domain or the forest root domain. Their
 * SID depends on where Windows runs ConvertStringSecurityDescriptorToSecurityDescriptor.
 */
const CONTEXT_RELATIVE_ALIASES: ReadonlySet<string> = new Set([
  'LA', 'LG', // machine: S-1-5-21-<machine>-500 / -501
  'DA', 'DU', 'DG', 'DC', 'DD', 'CA', 'PA', 'CN', 'AP', 'KA', 'RS', // domain
  'SA', 'EA', 'RO', 'EK', // forest root domain
]);

const SID_BY_ALIAS: ReadonlyMap<string, string> = new Map(WELL_KNOWN_ALIASES);
const ALIAS_BY_SID: ReadonlyMap<string, string> = new Map(WELL_KNOWN_ALIASES.map(([alias, sid]) => [sid, alias]));

/** Byte length of a SID with `subAuthorityCount` subauthorities. */
export function sidSize(subAuthorityCount: number): number {
  return SID_HEADER_SIZE + SID_SUB_AUTHORITY_SIZE * subAuthorityCount;
}

/** Writes `sid` at `offset`; returns the offset after it. */
export function writeSid(sid: Sid, out: Buffer, offset: number): number {
  out.writeUInt8(SID_REVISION, offset);
  out.writeUInt8(sid.subAuthorities.length, offset + 1);
  out.writeUIntBE(sid.authority, offset + SID_AUTHORITY_OFFSET, SID_AUTHORITY_SIZE);
  let at = offset + SID_HEADER_SIZE;
  for (const sub of sid.subAuthorities) {
    out.writeUInt32LE(sub, at);
    at += SID_SUB_AUTHORITY_SIZE;
  }
  return at;
}

/**
 * Reads the SID at `offset`, which must end at or before `limit`. `where` names the SID
 * in error messages (e.g. "owner SID"). Throws ERR_SECURITY_DESCRIPTOR_INVALID.
 */
export function readSid(buf: Buffer, offset: number, limit: number, where: string): Sid {
  if (offset + SID_HEADER_SIZE > limit) {
    throw createError('ERR_SECURITY_DESCRIPTOR_INVALID', `security descriptor: ${where} at offset ${offset} is truncated (needs ${SID_HEADER_SIZE} bytes, ${Math.max(0, limit - offset)} left)`, { offset, limit });
  }
  const revision = buf.readUInt8(offset);
  if (revision !== SID_REVISION) {
    throw createError('ERR_SECURITY_DESCRIPTOR_INVALID', `security descriptor: ${where} at offset ${offset} has revision ${revision}, expected ${SID_REVISION}`, { offset, revision });
  }
  const count = buf.readUInt8(offset + 1);
  if (count > SID_MAX_SUB_AUTHORITIES) {
    throw createError('ERR_SECURITY_DESCRIPTOR_INVALID', `security descriptor: ${where} at offset ${offset} has ${count} subauthorities, more than ${SID_MAX_SUB_AUTHORITIES}`, { offset, count });
  }
  const size = sidSize(count);
  if (offset + size > limit) {
    throw createError('ERR_SECURITY_DESCRIPTOR_INVALID', `security descriptor: ${where} at offset ${offset} is truncated (needs ${size} bytes, ${limit - offset} left)`, { offset, limit, size });
  }
  const authority = buf.readUIntBE(offset + SID_AUTHORITY_OFFSET, SID_AUTHORITY_SIZE);
  const subAuthorities: number[] = [];
  for (let i = 0; i < count; i++) subAuthorities.push(buf.readUInt32LE(offset + SID_HEADER_SIZE + i * SID_SUB_AUTHORITY_SIZE));
  return { authority, subAuthorities };
}

/** `S-1-<authority>-<sub>...`; authorities of 2^32 and up in hex, as Windows prints them. */
export function formatSidNumeric(sid: Sid): string {
  const authority = sid.authority >= DECIMAL_AUTHORITY_LIMIT ? `0x${sid.authority.toString(HEX_RADIX).toUpperCase()}` : String(sid.authority);
  return [`S-${SID_REVISION}`, authority, ...sid.subAuthorities.map(String)].join('-');
}

/** The SDDL form: the well-known alias when there is one, else the numeric form. */
export function formatSidForSddl(sid: Sid): string {
  const numeric = formatSidNumeric(sid);
  return ALIAS_BY_SID.get(numeric) ?? numeric;
}

/**
 * Parses an unsigned SID component: decimal, or hex after `0x`. Returns the value and the
 * index after it, or undefined when there is no number or it exceeds `max`.
 */
function parseSidNumber(text: string, from: number, max: number): { value: number; end: number } | undefined {
  let i = from;
  let radix = DECIMAL_RADIX;
  if (text[i] === '0' && (text[i + 1] === 'x' || text[i + 1] === 'X')) {
    radix = HEX_RADIX;
    i += 2;
  }
  const start = i;
  let value = 0;
  for (; i < text.length; i++) {
    const digit = parseInt(text[i] as string, radix);
    if (Number.isNaN(digit)) break;
    value = value * radix + digit;
    // Windows saturates on overflow; we refuse, since a silently clamped SID names
    // a different principal than the one written.
    if (value > max) return undefined;
  }
  if (i === start) return undefined;
  return { value, end: i };
}

/**
 * Parses the numeric form `S-1-<authority>-<sub>...` occupying all of `text` (after the
 * caller removed leading spaces). Windows tolerates spaces before the revision and the
 * authority (Samba's Windows-run tests: "O:S- 1- 2-3" is accepted), never after the SID.
 */
function parseNumericSid(text: string, base: number): Sid {
  let i = skipSpaces(text, 2);
  const revision = parseSidNumber(text, i, MAX_SUB_AUTHORITY);
  if (revision === undefined || revision.value !== SID_REVISION || text.slice(i, revision.end) !== String(SID_REVISION)) {
    throw sddlInvalid(base + i, `SID "${text}" must have revision ${SID_REVISION}`);
  }
  i = revision.end;
  if (text[i] !== '-') throw sddlInvalid(base + i, `SID "${text}" has no identifier authority`);
  i = skipSpaces(text, i + 1);
  const authority = parseSidNumber(text, i, MAX_AUTHORITY);
  if (authority === undefined) throw sddlInvalid(base + i, `SID "${text}" has a missing or too large identifier authority`);
  i = authority.end;
  const subAuthorities: number[] = [];
  while (text[i] === '-') {
    const sub = parseSidNumber(text, i + 1, MAX_SUB_AUTHORITY);
    if (sub === undefined) throw sddlInvalid(base + i + 1, `SID "${text}" has a missing or too large subauthority`);
    subAuthorities.push(sub.value);
    if (subAuthorities.length > SID_MAX_SUB_AUTHORITIES) throw sddlInvalid(base + i, `SID "${text}" has more than ${SID_MAX_SUB_AUTHORITIES} subauthorities`);
    i = sub.end;
  }
  if (i !== text.length) throw sddlInvalid(base + i, `unexpected "${text.slice(i, i + 1)}" after SID "${text.slice(0, i)}"`);
  // ConvertStringSidToSid rejects a SID without subauthorities (Wine's tests: "S-1-5").
  if (subAuthorities.length === 0) throw sddlInvalid(base, `SID "${text}" has no subauthority`);
  return { authority: authority.value, subAuthorities };
}

/** Parses an alias string like "S-1-5-32-544" from the table (known to be well formed). */
function sidFromTable(text: string): Sid {
  const parts = text.split('-').slice(2).map(Number);
  const [authority = 0, ...subAuthorities] = parts;
  return { authority, subAuthorities };
}

/**
 * Parses an SDDL SID field: `text` is the whole field, `base` its offset in the SDDL.
 * Leading spaces are skipped; a two-letter alias may be followed by spaces, a numeric SID
 * may not (both as Windows does, per Wine's and Samba's tests run on Windows). Aliases and
 * the `S-` prefix are case-insensitive there too.
 */
export function parseSddlSid(text: string, base: number): Sid {
  const start = skipSpaces(text, 0);
  const body = text.slice(start);
  if (body.length === 0) throw sddlInvalid(base + start, 'missing SID');
  if (body.length >= 2 && body.slice(0, 2).toUpperCase() === 'S-') return parseNumericSid(body, base + start);
  const alias = body.slice(0, 2).toUpperCase();
  const rest = body.slice(2);
  if (alias.length !== 2 || skipSpaces(rest, 0) !== rest.length) {
    throw sddlInvalid(base + start, `"${body}" is neither an S-1-... SID nor a two-letter alias`);
  }
  const known = SID_BY_ALIAS.get(alias);
  if (known !== undefined) return sidFromTable(known);
  if (CONTEXT_RELATIVE_ALIASES.has(alias)) {
    throw createError('ERR_SDDL_UNSUPPORTED', `SDDL at offset ${base + start}: SID alias ${alias} is relative to a machine or domain SID that is not known here`, { offset: base + start, alias });
  }
  throw sddlInvalid(base + start, `unknown SID alias "${alias}"`);
}
