/**
 * ACE access masks in SDDL: letter codes ("FA", "RPWP") or a number ("0x1200a9").
 *
 * Parsing follows what Windows accepts, as recorded by Samba's SDDL tests that were run
 * against Windows (libcli/security/tests/windows): codes are case-insensitive and may be
 * separated (and preceded) by spaces but not followed by them; numbers may be hex (0x),
 * octal (leading 0) or decimal. Windows also accepts negative numbers and saturates
 * overflow to 0xffffffff; we reject both (ERR_SDDL_INVALID), because either would grant
 * rights the author never wrote.
 *
 * Formatting follows ConvertSecurityDescriptorToStringSecurityDescriptor: an exact match
 * of a multi-bit code (FA, FR, ...) wins, else one code per bit from bit 0 upwards when
 * every set bit has one, else lowercase hex. Checked against Windows output: "0x1f01ff" →
 * "FA", "0x120089" → "FR" (CloudSoda/sddl testdata), "0xf01ff" → "CCDC...RCWDWO" and
 * "0xe00f0000" → "SDRCWDWOGXGWGR" (Samba), 0x1200a9 stays hex (buildkit).
 */

import { sddlInvalid, skipSpaces } from './sddl-lexer.js';

/** The two-letter access codes of sddl.h and their masks. */
export const ACCESS_CODES: Readonly<Record<string, number>> = {
  // generic
  GA: 0x1000_0000,
  GX: 0x2000_0000,
  GW: 0x4000_0000,
  GR: 0x8000_0000,
  // standard
  SD: 0x0001_0000,
  RC: 0x0002_0000,
  WD: 0x0004_0000,
  WO: 0x0008_0000,
  // directory service object rights (the low 9 bits, reused by files and keys)
  CC: 0x0000_0001,
  DC: 0x0000_0002,
  LC: 0x0000_0004,
  SW: 0x0000_0008,
  RP: 0x0000_0010,
  WP: 0x0000_0020,
  DT: 0x0000_0040,
  LO: 0x0000_0080,
  CR: 0x0000_0100,
  // files: FILE_ALL_ACCESS, FILE_GENERIC_READ / _WRITE / _EXECUTE
  FA: 0x001f_01ff,
  FR: 0x0012_0089,
  FW: 0x0012_0116,
  FX: 0x0012_00a0,
  // registry keys: KEY_ALL_ACCESS, KEY_READ, KEY_WRITE, KEY_EXECUTE (== KEY_READ)
  KA: 0x000f_003f,
  KR: 0x0002_0019,
  KW: 0x0002_0006,
  KX: 0x0002_0019,
  // mandatory label policy: SYSTEM_MANDATORY_LABEL_NO_WRITE_UP / _NO_READ_UP / _NO_EXECUTE_UP
  NW: 0x0000_0001,
  NR: 0x0000_0002,
  NX: 0x0000_0004,
};

/** Codes printed for a mask equal to their value, in the order Windows tries them. */
const WHOLE_MASK_CODES = ['FA', 'FR', 'FW', 'FX', 'KA', 'KR', 'KW'] as const;

/** One code per bit, lowest bit first: the order ConvertSecurityDescriptorToString... uses. */
const BIT_CODES: readonly (readonly [bit: number, code: string])[] = [
  [0x0000_0001, 'CC'],
  [0x0000_0002, 'DC'],
  [0x0000_0004, 'LC'],
  [0x0000_0008, 'SW'],
  [0x0000_0010, 'RP'],
  [0x0000_0020, 'WP'],
  [0x0000_0040, 'DT'],
  [0x0000_0080, 'LO'],
  [0x0000_0100, 'CR'],
  [0x0001_0000, 'SD'],
  [0x0002_0000, 'RC'],
  [0x0004_0000, 'WD'],
  [0x0008_0000, 'WO'],
  [0x1000_0000, 'GA'],
  [0x2000_0000, 'GX'],
  [0x4000_0000, 'GW'],
  [0x8000_0000, 'GR'],
];
const NAMED_BITS = BIT_CODES.reduce((all, [bit]) => (all | bit) >>> 0, 0);

/** The policy bits of a mandatory label ACE, printed with the NW/NR/NX codes. */
const LABEL_POLICY_CODES: readonly (readonly [bit: number, code: string])[] = [
  [0x1, 'NW'],
  [0x2, 'NR'],
  [0x4, 'NX'],
];
const LABEL_POLICY_BITS = 0x7;

const MAX_MASK = 0xffff_ffff;
const HEX_RADIX = 16;
const OCTAL_RADIX = 8;
const DECIMAL_RADIX = 10;
const CODE_LENGTH = 2;

/**
 * Parses a run of two-letter codes from `table` (case-insensitive): spaces may precede and
 * separate codes but not trail them, tabs never (Windows' rule, per Samba's tests). An
 * empty or all-space field is 0. `what` names the field in errors.
 */
export function parseCodeList(text: string, base: number, table: Readonly<Record<string, number>>, what: string): number {
  let i = skipSpaces(text, 0);
  let value = 0;
  while (i < text.length) {
    const code = text.slice(i, i + CODE_LENGTH).toUpperCase();
    const bits = Object.hasOwn(table, code) ? table[code] : undefined;
    if (code.length !== CODE_LENGTH || bits === undefined) throw sddlInvalid(base + i, `unknown ${what} "${text.slice(i, i + CODE_LENGTH)}"`);
    value = (value | bits) >>> 0;
    i += CODE_LENGTH;
    if (text[i] === ' ') {
      i = skipSpaces(text, i);
      if (i === text.length) throw sddlInvalid(base + i, `trailing space after ${what}`);
    }
  }
  return value;
}

/** Parses a C-style unsigned number (0x hex, 0 octal, else decimal) filling all of `text`. */
function parseMaskNumber(text: string, base: number): number {
  let i = 0;
  let radix = DECIMAL_RADIX;
  if (text[0] === '0' && (text[1] === 'x' || text[1] === 'X')) {
    radix = HEX_RADIX;
    i = 2;
  } else if (text[0] === '0' && text.length > 1) {
    radix = OCTAL_RADIX;
    i = 1;
  }
  const start = i;
  let value = 0;
  for (; i < text.length; i++) {
    const digit = parseInt(text[i] as string, radix);
    if (Number.isNaN(digit)) throw sddlInvalid(base + i, `unexpected "${text[i] ?? ''}" in access mask "${text}"`);
    value = value * radix + digit;
    if (value > MAX_MASK) throw sddlInvalid(base, `access mask "${text}" does not fit in 32 bits`);
  }
  if (i === start) throw sddlInvalid(base + i, `access mask "${text}" has no digits`);
  return value;
}

/** Parses the rights field of an ACE string. */
export function parseAccessMask(text: string, base: number): number {
  const start = skipSpaces(text, 0);
  const first = text[start];
  if (first !== undefined && first >= '0' && first <= '9') return parseMaskNumber(text.slice(start), base + start);
  return parseCodeList(text, base, ACCESS_CODES, 'access right');
}

/** The rights field as Windows prints it; `isMandatoryLabel` selects the NW/NR/NX codes. */
export function formatAccessMask(mask: number, isMandatoryLabel: boolean): string {
  if (mask === 0) return '';
  if (isMandatoryLabel && (mask & ~LABEL_POLICY_BITS) === 0) {
    return LABEL_POLICY_CODES.filter(([bit]) => (mask & bit) !== 0).map(([, code]) => code).join('');
  }
  for (const code of WHOLE_MASK_CODES) if (ACCESS_CODES[code] === mask) return code;
  if ((mask & ~NAMED_BITS) === 0) return BIT_CODES.filter(([bit]) => ((mask & bit) >>> 0) !== 0).map(([, code]) => code).join('');
  return `0x${mask.toString(HEX_RADIX)}`;
}
