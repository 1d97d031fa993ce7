import { expect } from 'chai';
import { securityDescriptorFromSddl, sddlFromSecurityDescriptor, validateSecurityDescriptor } from '../../src/security/index.js';
import { bytesOf, expectCode, offsetsOf, READ_BACK_VECTORS, WINDOWS_CONVERT_VECTORS } from './vectors.js';

/** Descriptors our encoder makes, covering every component and ACE layout. */
const MADE_BY_US: readonly string[] = [
  '',
  'O:BUG:BU',
  'D:',
  'S:',
  'D:NO_ACCESS_CONTROL',
  'D:PAI(A;OICI;FA;;;BA)(D;;GA;;;S-1-5-21-1-2-3-1001)',
  'O:BAG:SYD:(A;;GA;;;WD)S:(AU;SA;GA;;;WD)(ML;;NW;;;LW)',
  'D:(OA;CI;CR;ab721a53-1e2f-11d0-9819-00aa0040529b;bf967aba-0de6-11d0-a285-00aa003049e2;WD)(A;;GA;;;WD)',
  'S:P(OU;SA;WP;;bf967aba-0de6-11d0-a285-00aa003049e2;WD)(OL;FA;RP;ab721a53-1e2f-11d0-9819-00aa0040529b;;AN)(AL;;GA;;;SY)',
  'O:S-1-5-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15G:S-1-0x123456789ABC-0',
];

describe('security/security-descriptor validateSecurityDescriptor', () => {
  const all: [string, Buffer][] = [
    ...MADE_BY_US.map((s): [string, Buffer] => [JSON.stringify(s), securityDescriptorFromSddl(s)]),
    ...[...WINDOWS_CONVERT_VECTORS, ...READ_BACK_VECTORS].map((v): [string, Buffer] => [v.title, bytesOf(v)]),
  ];

  describe('accepts what securityDescriptorFromSddl makes and what Windows wrote', () => {
    for (const [title, sd] of all) it(title, () => expect(() => validateSecurityDescriptor(sd)).not.to.throw());
  });

  it('accepts a Uint8Array view into a larger buffer', () => {
    const sd = securityDescriptorFromSddl('O:BAG:SYD:(A;;GA;;;WD)');
    const big = new Uint8Array(sd.length + 10);
    big.set(sd, 7);
    expect(() => validateSecurityDescriptor(big.subarray(7, 7 + sd.length))).not.to.throw();
  });

  describe('rejects every truncation', () => {
    for (const [title, sd] of all) {
      it(title, () => {
        for (let n = 0; n < sd.length; n++) expectCode(() => validateSecurityDescriptor(sd.subarray(0, n)), 'ERR_SECURITY_DESCRIPTOR_INVALID');
      });
    }
  });

  describe('rejects corruptions', () => {
    const base = (): Buffer => securityDescriptorFromSddl('O:BAG:SYD:(A;;GA;;;WD)(OA;;CR;ab721a53-1e2f-11d0-9819-00aa0040529b;;WD)S:(AU;SA;GA;;;WD)');
    const o = offsetsOf(base());
    const dacl = o.dacl;
    const firstDaclAce = dacl + 8;
    const cases: [string, (sd: Buffer) => void][] = [
      ['revision 2', (sd) => sd.writeUInt8(2, 0)],
      ['SE_SELF_RELATIVE cleared', (sd) => sd.writeUInt16LE(sd.readUInt16LE(2) & 0x7fff, 2)],
      ['owner offset past the end', (sd) => sd.writeUInt32LE(sd.length, 4)],
      ['owner offset far past the end', (sd) => sd.writeUInt32LE(0xffff_fff0, 4)],
      ['owner offset into the header', (sd) => sd.writeUInt32LE(16, 4)],
      ['owner offset unaligned', (sd) => sd.writeUInt32LE(o.owner + 2, 4)],
      ['group offset into the last 4 bytes', (sd) => sd.writeUInt32LE(sd.length - 4, 8)],
      ['SACL offset past the end', (sd) => sd.writeUInt32LE(sd.length + 4, 12)],
      ['DACL offset pointing at the owner SID', (sd) => sd.writeUInt32LE(o.owner, 16)],
      ['DACL present bit clear, offset past the end', (sd) => {
        sd.writeUInt16LE(sd.readUInt16LE(2) & ~0x4, 2);
        sd.writeUInt32LE(sd.length, 16);
      }],
      ['owner SID revision 2', (sd) => sd.writeUInt8(2, o.owner)],
      ['owner SID with 16 subauthorities', (sd) => sd.writeUInt8(16, o.owner + 1)],
      ['group SID subauthorities running past the end', (sd) => sd.writeUInt8(15, o.group + 1)],
      ['DACL revision 3', (sd) => sd.writeUInt8(3, dacl)],
      ['DACL revision 0', (sd) => sd.writeUInt8(0, dacl)],
      ['DACL AclSize below 8', (sd) => sd.writeUInt16LE(4, dacl + 2)],
      ['DACL AclSize unaligned', (sd) => sd.writeUInt16LE(sd.readUInt16LE(dacl + 2) - 2, dacl + 2)],
      ['DACL AclSize past the end', (sd) => sd.writeUInt16LE(0xfffc, dacl + 2)],
      ['DACL AceCount larger than its ACEs', (sd) => sd.writeUInt16LE(3, dacl + 4)],
      ['DACL ACE size 0', (sd) => sd.writeUInt16LE(0, firstDaclAce + 2)],
      ['DACL ACE size unaligned', (sd) => sd.writeUInt16LE(22, firstDaclAce + 2)],
      ['DACL ACE size past the ACL', (sd) => sd.writeUInt16LE(0x400, firstDaclAce + 2)],
      ['DACL ACE too small for its SID', (sd) => sd.writeUInt16LE(16, firstDaclAce + 2)],
      ['DACL ACE SID revision 0', (sd) => sd.writeUInt8(0, firstDaclAce + 8)],
      ['DACL ACE SID claiming 15 subauthorities', (sd) => sd.writeUInt8(15, firstDaclAce + 9)],
      ['object ACE claiming both GUIDs with room for one', (sd) => sd.writeUInt32LE(3, firstDaclAce + 20 + 8)],
    ];
    for (const [title, corrupt] of cases) {
      it(title, () => {
        const sd = base();
        expect(() => validateSecurityDescriptor(sd)).not.to.throw();
        corrupt(sd);
        expectCode(() => validateSecurityDescriptor(sd), 'ERR_SECURITY_DESCRIPTOR_INVALID');
      });
    }
  });

  it('allows slack inside an ACL after its ACEs (NTFS root directories have it)', () => {
    const sd = securityDescriptorFromSddl('D:(A;;GA;;;WD)');
    const padded = Buffer.concat([sd, Buffer.alloc(8)]);
    padded.writeUInt16LE(padded.readUInt16LE(22) + 8, 22);
    expect(() => validateSecurityDescriptor(padded)).not.to.throw();
  });

  it('ignores an in-bounds ACL offset whose present bit is clear, as Windows does', () => {
    const sd = securityDescriptorFromSddl('O:BAD:(A;;GA;;;WD)S:(AU;SA;GA;;;WD)');
    sd.writeUInt16LE(sd.readUInt16LE(2) & ~0x14, 2);
    sd.writeUInt8(0xee, offsetsOf(sd).dacl); // garbage where the ignored DACL starts
    expect(() => validateSecurityDescriptor(sd)).not.to.throw();
    expect(sddlFromSecurityDescriptor(sd)).to.equal('O:BA');
  });

  it('allows ACE types it does not know, checking only their size', () => {
    const sd = securityDescriptorFromSddl('D:(A;;GA;;;WD)');
    sd.writeUInt8(0x7f, 28);
    expect(() => validateSecurityDescriptor(sd)).not.to.throw();
  });
});
