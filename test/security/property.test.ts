import { expect } from 'chai';
import fc from 'fast-check';
import { isWinLayerError } from '../../src/errors.js';
import { securityDescriptorFromSddl, sddlFromSecurityDescriptor, validateSecurityDescriptor } from '../../src/security/index.js';
import { bytesOf, READ_BACK_VECTORS, WINDOWS_CONVERT_VECTORS } from './vectors.js';

const RUNS = 200;

/** Runs `fn`; any throw must be a WinLayerError. Returns whether it succeeded. */
function onlyWinLayerErrors(fn: () => unknown): boolean {
  try {
    fn();
    return true;
  } catch (e) {
    if (!isWinLayerError(e)) throw e;
    return false;
  }
}

/** SDDL-flavoured text: the characters and tokens the parser branches on. */
const sddlish = fc
  .array(
    fc.oneof(
      fc.constantFrom('O:', 'G:', 'D:', 'S:', '(', ')', ';', ' ', '\t', 'P', 'AI', 'AR', 'NO_ACCESS_CONTROL', 'A', 'D', 'OA', 'AU', 'ML', 'XA'),
      fc.constantFrom('OI', 'CI', 'IO', 'ID', 'GA', 'FA', '0x', '0', '9', 'f', 'S-1-', '5', '-', '32', 'BA', 'WD', 'DU', 'LW'),
      fc.constantFrom('ab721a53-1e2f-11d0-9819-00aa0040529b', '4294967296', '99999999999999999999', ':', '\0', 'Ā'),
      fc.string({ maxLength: 3 }),
    ),
    { maxLength: 40 },
  )
  .map((parts) => parts.join(''));

const aliases = ['WD', 'SY', 'BA', 'BU', 'CO', 'AU', 'LW', 'HI', 'AC', 'OW'];
const sid = fc.oneof(
  fc.constantFrom(...aliases),
  fc.tuple(fc.integer({ min: 0, max: 2 ** 48 - 1 }), fc.array(fc.nat({ max: 0xffff_ffff }), { minLength: 1, maxLength: 15 })).map(([a, subs]) => ['S-1', String(a), ...subs.map(String)].join('-')),
);
const aceFlags = fc.subarray(['OI', 'CI', 'NP', 'IO', 'ID', 'SA', 'FA']).map((f) => f.join(''));
const mask = fc.nat({ max: 0xffff_ffff }).map((m) => `0x${m.toString(16)}`);
const guid = fc.uuid();
const objectGuids = fc.oneof(
  fc.tuple(guid, fc.constant('')),
  fc.tuple(fc.constant(''), guid),
  fc.tuple(guid, guid),
);
const basicAce = (types: string[]): fc.Arbitrary<string> =>
  fc.tuple(fc.constantFrom(...types), aceFlags, mask, sid).map(([t, f, m, s]) => `(${t};${f};${m};;;${s})`);
const objectAce = (types: string[]): fc.Arbitrary<string> =>
  fc.tuple(fc.constantFrom(...types), aceFlags, mask, objectGuids, sid).map(([t, f, m, [g1, g2], s]) => `(${t};${f};${m};${g1};${g2};${s})`);
const aclFlags = fc.subarray(['P', 'AR', 'AI']).map((f) => f.join(''));
const acl = (basic: string[], object: string[]): fc.Arbitrary<string> =>
  fc.oneof(
    fc.tuple(aclFlags, fc.array(fc.oneof(basicAce(basic), objectAce(object)), { maxLength: 12 })).map(([f, aces]) => f + aces.join('')),
    aclFlags.map((f) => `${f}NO_ACCESS_CONTROL`),
  );
/** Well-formed SDDL over the whole supported grammar, components in random order. */
const wellFormedSddl = fc
  .record(
    {
      O: sid,
      G: sid,
      D: acl(['A', 'D'], ['OA', 'OD']),
      S: acl(['AU', 'AL', 'ML'], ['OU', 'OL']),
    },
    { requiredKeys: [] },
  )
  .chain((parts) => fc.shuffledSubarray(Object.entries(parts), { minLength: Object.keys(parts).length }))
  .map((entries) => entries.map(([k, v]) => `${k}:${v}`).join(''));

describe('security properties', () => {
  it('random bytes given to validateSecurityDescriptor only throw WinLayerError', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => void onlyWinLayerErrors(() => validateSecurityDescriptor(bytes))), { numRuns: RUNS });
  });

  it('random bytes given to sddlFromSecurityDescriptor only throw WinLayerError', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => void onlyWinLayerErrors(() => sddlFromSecurityDescriptor(bytes))), { numRuns: RUNS });
  });

  it('random headers over valid bodies only throw WinLayerError', () => {
    // Pure random bytes rarely get past the header; keep a real body and scramble the header.
    const bodies = [...WINDOWS_CONVERT_VECTORS, ...READ_BACK_VECTORS].map(bytesOf);
    fc.assert(
      fc.property(fc.constantFrom(...bodies), fc.uint8Array({ minLength: 20, maxLength: 20 }), fc.boolean(), (body, header, keepRevision) => {
        const sd = Buffer.from(body);
        Buffer.from(header).copy(sd);
        if (keepRevision) {
          sd[0] = 1;
          sd[3] = (sd[3] ?? 0) | 0x80;
        }
        onlyWinLayerErrors(() => sddlFromSecurityDescriptor(sd));
      }),
      { numRuns: RUNS },
    );
  });

  it('single-byte corruptions of valid descriptors only throw WinLayerError', () => {
    const bodies = [...WINDOWS_CONVERT_VECTORS, ...READ_BACK_VECTORS].map(bytesOf);
    fc.assert(
      fc.property(fc.constantFrom(...bodies), fc.nat(), fc.nat({ max: 255 }), (body, at, value) => {
        const sd = Buffer.from(body);
        sd[at % sd.length] = value;
        if (onlyWinLayerErrors(() => validateSecurityDescriptor(sd))) onlyWinLayerErrors(() => sddlFromSecurityDescriptor(sd));
      }),
      { numRuns: RUNS },
    );
  });

  it('random strings given to securityDescriptorFromSddl only throw WinLayerError', () => {
    fc.assert(fc.property(fc.string({ maxLength: 200 }), (text) => void onlyWinLayerErrors(() => securityDescriptorFromSddl(text))), { numRuns: RUNS });
  });

  it('SDDL-flavoured strings given to securityDescriptorFromSddl only throw WinLayerError', () => {
    fc.assert(fc.property(sddlish, (text) => void onlyWinLayerErrors(() => securityDescriptorFromSddl(text))), { numRuns: RUNS });
  });

  it('well-formed SDDL converts, validates, and round trips through the canonical form to identical bytes', () => {
    fc.assert(
      fc.property(wellFormedSddl, (text) => {
        const sd = securityDescriptorFromSddl(text);
        validateSecurityDescriptor(sd);
        const canonical = sddlFromSecurityDescriptor(sd);
        const again = securityDescriptorFromSddl(canonical);
        expect(again.equals(sd), `${text} → ${canonical}`).to.equal(true);
        expect(sddlFromSecurityDescriptor(again)).to.equal(canonical);
      }),
      { numRuns: RUNS },
    );
  });
});
