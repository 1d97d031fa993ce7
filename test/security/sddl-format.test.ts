import { expect } from 'chai';
import { securityDescriptorFromSddl, sddlFromSecurityDescriptor } from '../../src/security/index.js';
import { bytesOf, expectCode, READ_BACK_VECTORS, WINDOWS_CONVERT_VECTORS } from './vectors.js';

describe('security/sddl-format sddlFromSecurityDescriptor', () => {
  describe('prints what Windows printed for known descriptors', () => {
    for (const v of [...WINDOWS_CONVERT_VECTORS, ...READ_BACK_VECTORS]) it(v.title, () => expect(sddlFromSecurityDescriptor(bytesOf(v))).to.equal(v.sddl));
  });

  describe('read-back vectors re-encode in the ConvertString layout', () => {
    for (const v of READ_BACK_VECTORS) {
      it(`${v.title}: same length, same SDDL, DACL first`, () => {
        const ours = securityDescriptorFromSddl(sddlFromSecurityDescriptor(bytesOf(v)));
        expect(sddlFromSecurityDescriptor(ours)).to.equal(v.sddl);
        expect(ours.length).to.equal(bytesOf(v).length);
      });
    }
  });

  describe('canonical form (non-canonical input → what Windows prints)', () => {
    // Pairs from Wine's and Samba's SDDL tests that were checked against Windows; LG
    // (machine-relative) replaced by WD.
    const cases: [string, string][] = [
      ['S:D:', 'D:S:'],
      ['S:D:P', 'D:PS:'],
      ['G:SYO:BA', 'O:BAG:SY'],
      ['D:ARPAI(A;;GA;;;SY)', 'D:PARAI(A;;GA;;;SY)'],
      ['D:AIPAR(A;;GA;;;SY)', 'D:PARAI(A;;GA;;;SY)'],
      ['D:PPPPPPPPPPPP(A;;GA;;;SY)', 'D:P(A;;GA;;;SY)'],
      ['D:(A;;123456789;;;WD)', 'D:(A;;0x75bcd15;;;WD)'],
      ['D:(A;;01234567;;;WD)', 'D:(A;;0x53977;;;WD)'],
      ['D:(A;;16;;;WD)', 'D:(A;;RP;;;WD)'],
      ['D:(A;;17;;;WD)', 'D:(A;;CCRP;;;WD)'],
      ['D:(A;;0xff;;;WD)', 'D:(A;;CCDCLCSWRPWPDTLO;;;WD)'],
      ['D:(A;;0xf01ff;;;WD)', 'D:(A;;CCDCLCSWRPWPDTLOCRSDRCWDWO;;;WD)'],
      ['D:(A;;0xe00f0000;;;WD)', 'D:(A;;SDRCWDWOGXGWGR;;;WD)'],
      ['D:(A;;0xf0000000;;;WD)', 'D:(A;;GAGXGWGR;;;WD)'],
      ['D:(A;;0x001f01ff;;;WD)', 'D:(A;;FA;;;WD)'],
      ['D:(A;;0x120089;;;WD)', 'D:(A;;FR;;;WD)'],
      ['D:(A;;KX;;;WD)', 'D:(A;;KR;;;WD)'],
      ['D:(A;;0x401200a0;;;WD)', 'D:(A;;0x401200a0;;;WD)'],
      ['D:(A;;RPWPCRCCDCLCLORCWOWDSDDTSW;;;SY)', 'D:(A;;CCDCLCSWRPWPDTLOCRSDRCWDWO;;;SY)'],
      ['D:(A;;;;;BO)', 'D:(A;;;;;BO)'],
      ['D:AI(A;CI;RP LCLORC;;;AU)', 'D:AI(A;CI;LCRPLORC;;;AU)'],
      ['D:AI(A;CI;RP LCLO  RC;;;AU)', 'D:AI(A;CI;LCRPLORC;;;AU)'],
      ['D:(A;; GA;;;WD)', 'D:(A;;GA;;;WD)'],
      ['D:(A;;GA;;;S-1-21474836480-32-579)', 'D:(A;;GA;;;S-1-0x500000000-32-579)'],
      ['D:(A;;GA;;;S-1-5000000000-30-40)', 'D:(A;;GA;;;S-1-0x12A05F200-30-40)'],
      ['D:(A;;GA;;;S-1-0x2-3-4)', 'D:(A;;GA;;;S-1-2-3-4)'],
      ['D:(A;;GA;;;S-1-0x20-3-4)', 'D:(A;;GA;;;S-1-32-3-4)'],
      ['D:(A;;GA;;;S-1-3-0x00000002-3-4)', 'D:(A;;GA;;;S-1-3-2-3-4)'],
      ['D:(A;;GA;;;S-1-3-0xffffffff-3-4)', 'D:(A;;GA;;;S-1-3-4294967295-3-4)'],
      ['D:(A;;GA;;;S-1-5-21-0x1-0x2-0x3-513)', 'D:(A;;GA;;;S-1-5-21-1-2-3-513)'],
      ['D:(A;;GA;;;S-1-5-21-2447931902-1787058256-3961074038-0x4b1)', 'D:(A;;GA;;;S-1-5-21-2447931902-1787058256-3961074038-1201)'],
      ['O:S-1-2-0x200D:', 'O:S-1-2-512D:'],
      ['O:S-1-2-0x2D:(A;;GA;;;WD)', 'O:S-1-2-2D:(A;;GA;;;WD)'],
      ['O:S-1-5-21-1225132014-296224811-2507946102-512G:S-1-5-21-1225132014-296224811-2507946102-512D:P', 'O:S-1-5-21-1225132014-296224811-2507946102-512G:S-1-5-21-1225132014-296224811-2507946102-512D:P'],
      ['D:(A;;GA;;;S-1-3-4)', 'D:(A;;GA;;;OW)'],
      ['D:(A;;GA;;;s-1-1-0)', 'D:(A;;GA;;;WD)'],
      ['D:(OA;;CR;;;WD)', 'D:(A;;CR;;;WD)'],
      ['D:(OA;;CR;AB721A53-1E2F-11D0-9819-00AA0040529B;;WD)', 'D:(OA;;CR;ab721a53-1e2f-11d0-9819-00aa0040529b;;WD)'],
      [
        'S:(OU;CIIDSA;WP;f30e3bbe-9ff0-11d1-b603-0000f80367c1;bf967aa5-0de6-11d0-a285-00aa003049e2;WD)',
        'S:(OU;CIIDSA;WP;f30e3bbe-9ff0-11d1-b603-0000f80367c1;bf967aa5-0de6-11d0-a285-00aa003049e2;WD)',
      ],
      ['S:(ML;;NW;;;LW)', 'S:(ML;;NW;;;LW)'],
      ['S:(ML;OICI;0x3;;;HI)', 'S:(ML;OICI;NWNR;;;HI)'],
      // Windows accepts these spellings; the results are as if written canonically.
      [' D:(D;;GA;;;WD)', 'D:(D;;GA;;;WD)'],
      ['D: (D;;GA;;;WD)', 'D:(D;;GA;;;WD)'],
      ['D:( D;;GA;;;WD)', 'D:(D;;GA;;;WD)'],
      ['D:(D; ;GA;;;WD)', 'D:(D;;GA;;;WD)'],
      ['D:(D;;GA; ;;WD)', 'D:(D;;GA;;;WD)'],
      ['D:(D;;GA;; ;WD)', 'D:(D;;GA;;;WD)'],
      ['D:(D;;GA;;; WD)', 'D:(D;;GA;;;WD)'],
      ['D:(D;;GA;;;WD )', 'D:(D;;GA;;;WD)'],
      ['D: AI(A;;GA;;;WD)', 'D:AI(A;;GA;;;WD)'],
      ['D: P(A;;GA;;;WD)', 'D:P(A;;GA;;;WD)'],
      ['D:P (A;;GA;;;WD)', 'D:P(A;;GA;;;WD)'],
      ['D:AI (A;;GA;;;WD)', 'D:AI(A;;GA;;;WD)'],
      ['D:P(A;;GA;;;WD) (A;;GX;;;AA)', 'D:P(A;;GA;;;WD)(A;;GX;;;AA)'],
      ['D:(a;;GA;;;WD)', 'D:(A;;GA;;;WD)'],
      ['D:(A;;GA;;;wd)', 'D:(A;;GA;;;WD)'],
      ['D:(A;;ga;;;WD)', 'D:(A;;GA;;;WD)'],
      ['D: S:', 'D:S:'],
      ['D:(A;;GA;; ;S-1-3-4)', 'D:(A;;GA;;;OW)'],
      ['D:(A;;GA; ;;S-1-333-4)', 'D:(A;;GA;;;S-1-333-4)'],
      [' O:AA', 'O:AA'],
      ['  O:AA  ', 'O:AA'],
      ['  O:AA G:WD ', 'O:AAG:WD'],
      ['O:S- 1- 2-3', 'O:S-1-2-3'],
    ];
    for (const [input, canonical] of cases) {
      it(`${JSON.stringify(input)} → ${canonical}`, () => {
        const sd = securityDescriptorFromSddl(input);
        expect(sddlFromSecurityDescriptor(sd)).to.equal(canonical);
        expect(securityDescriptorFromSddl(canonical).equals(sd)).to.equal(true);
      });
    }
  });

  describe('descriptors Windows printed (Wine tests), round trip to the same string', () => {
    const cases = [
      'O:SYG:S-1-5-21-93476-23408-4576D:(A;NP;GAGXGWGR;;;SU)(A;IOID;CCDC;;;SU)(D;OICI;0xffffffff;;;S-1-5-21-93476-23408-4576)S:(AU;OICINPIOIDSAFA;CCDCLCSWRPRC;;;SU)(AU;NPSA;0x12019f;;;SU)',
      'O:SYG:S-1-5-21-93476-23408-4576D:NO_ACCESS_CONTROLS:(AU;OICINPIOIDSAFA;CCDCLCSWRPRC;;;SU)',
      'O:S-1-2-0',
      'G:S-1-5-21-93476-23408-4576',
      'O:SYG:S-1-5-21-93476-23408-4576D:',
      'O:SYG:S-1-5-21-93476-23408-4576D:S:',
      '',
    ];
    for (const sddl of cases) it(JSON.stringify(sddl), () => expect(sddlFromSecurityDescriptor(securityDescriptorFromSddl(sddl))).to.equal(sddl));
  });

  describe('what SDDL cannot express → ERR_SDDL_UNSUPPORTED', () => {
    /** "D:(A;;GA;;;WD)" with its one ACE altered by `edit`. */
    const withAce = (edit: (sd: Buffer) => void): Buffer => {
      const sd = securityDescriptorFromSddl('D:(A;;GA;;;WD)');
      edit(sd);
      return sd;
    };
    const cases: [string, Buffer][] = [
      ['callback ACE (0x09)', withAce((sd) => sd.writeUInt8(0x09, 28))],
      ['scoped policy ACE (0x13)', withAce((sd) => sd.writeUInt8(0x13, 28))],
      ['unknown ACE type (0x7f)', withAce((sd) => sd.writeUInt8(0x7f, 28))],
      ['ACE flag 0x20', withAce((sd) => sd.writeUInt8(0x20, 29))],
    ];
    for (const [title, sd] of cases) it(title, () => expectCode(() => sddlFromSecurityDescriptor(sd), 'ERR_SDDL_UNSUPPORTED'));

    it('object ACE flags with unknown bits', () => {
      const sd = securityDescriptorFromSddl('D:(OA;;CR;ab721a53-1e2f-11d0-9819-00aa0040529b;;WD)');
      sd.writeUInt32LE(0x5, 28 + 8); // keep bit 0 (object type present), add bit 2
      expectCode(() => sddlFromSecurityDescriptor(sd), 'ERR_SDDL_UNSUPPORTED');
    });
  });

  it('ignores slack after an ACE SID', () => {
    // An ACL whose one ACE declares 4 bytes more than its SID needs.
    const sd = Buffer.from('01000480000000000000000000000000140000000200200001000000000018000000001001010000000000010000000000000000', 'hex');
    expect(sddlFromSecurityDescriptor(sd)).to.equal('D:(A;;GA;;;WD)');
  });

  it('rejects malformed bytes with ERR_SECURITY_DESCRIPTOR_INVALID', () => {
    expectCode(() => sddlFromSecurityDescriptor(Buffer.alloc(19)), 'ERR_SECURITY_DESCRIPTOR_INVALID');
  });
});
