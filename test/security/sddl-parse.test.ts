import { expect } from 'chai';
import { securityDescriptorFromSddl, sddlFromSecurityDescriptor } from '../../src/security/index.js';
import { BUILDKIT_SDDL, bytesOf, expectCode, offsetsOf, POWERSHELL_WINDOWS_SDDL, READ_BACK_VECTORS, WINDOWS_CONVERT_VECTORS } from './vectors.js';

/** Offset of the first ACE's mask in "D:(...)" with no owner or group: header + ACL header + ACE header. */
const FIRST_MASK = 20 + 8 + 4;
const FIRST_ACE = 20 + 8;

describe('security/sddl-parse securityDescriptorFromSddl', () => {
  describe('matches ConvertStringSecurityDescriptorToSecurityDescriptorW byte for byte', () => {
    for (const v of WINDOWS_CONVERT_VECTORS) {
      it(v.title, () => expect(securityDescriptorFromSddl(v.sddl).toString('base64')).to.equal(v.base64));
    }
  });

  describe("buildkit's SDDL strings (FORMATS.md 2.9)", () => {
    for (const [kind, sddl] of Object.entries(BUILDKIT_SDDL)) {
      it(`${kind}: converts and round trips through sddlFromSecurityDescriptor to identical bytes`, () => {
        const sd = securityDescriptorFromSddl(sddl);
        const text = sddlFromSecurityDescriptor(sd);
        expect(text).to.equal(sddl);
        expect(securityDescriptorFromSddl(text).equals(sd)).to.equal(true);
      });

      it(`${kind}: owner, group and DACL bytes equal those of buildkit's Windows-made rawsd`, () => {
        const ours = securityDescriptorFromSddl(sddl);
        const theirs = bytesOf(READ_BACK_VECTORS.find((v) => v.sddl === sddl) ?? expect.fail('no buildkit vector'));
        const o = offsetsOf(ours);
        const t = offsetsOf(theirs);
        const daclSize = ours.readUInt16LE(o.dacl + 2);
        expect(ours.subarray(o.dacl, o.dacl + daclSize).equals(theirs.subarray(t.dacl, t.dacl + daclSize))).to.equal(true);
        expect(ours.subarray(o.owner, o.owner + 16).equals(theirs.subarray(t.owner, t.owner + 16))).to.equal(true);
        expect(ours.subarray(o.group, o.group + 12).equals(theirs.subarray(t.group, t.group + 12))).to.equal(true);
        expect(ours.readUInt16LE(2)).to.equal(theirs.readUInt16LE(2));
        expect(ours.length).to.equal(theirs.length);
      });
    }
  });

  describe('layout: header, SACL, DACL, owner, group', () => {
    it('places every present component in that order, back to back', () => {
      const sd = securityDescriptorFromSddl('O:BAG:SYD:(A;;GA;;;WD)S:(AU;SA;GA;;;WD)');
      const o = offsetsOf(sd);
      const saclSize = sd.readUInt16LE(o.sacl + 2);
      const daclSize = sd.readUInt16LE(o.dacl + 2);
      expect(o).to.deep.equal({ sacl: 20, dacl: 20 + saclSize, owner: 20 + saclSize + daclSize, group: 20 + saclSize + daclSize + 16 });
      expect(sd.length).to.equal(o.group + 12);
    });

    const components = ['O:BA', 'G:SY', 'D:P(A;;FA;;;WD)', 'S:(AU;FA;GA;;;WD)'];
    const permutations = (xs: string[]): string[][] => (xs.length <= 1 ? [xs] : xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p])));
    it('gives the same bytes for all 24 orders of the components', () => {
      const expected = securityDescriptorFromSddl(components.join(''));
      for (const p of permutations(components)) expect(securityDescriptorFromSddl(p.join('')).equals(expected), p.join('')).to.equal(true);
    });

    const cases: { title: string; sddl: string; hex: string }[] = [
      { title: 'empty string: bare header (Wine: accepted on Windows)', sddl: '', hex: '0100008000000000000000000000000000000000' },
      { title: 'empty DACL: 8-byte ACL right after the header (Wine test)', sddl: 'D:', hex: '0100048000000000000000000000000014000000' + '0200080000000000' },
      { title: 'empty SACL: 8-byte ACL right after the header (Wine test)', sddl: 'S:', hex: '0100108000000000000000001400000000000000' + '0200080000000000' },
      { title: 'NO_ACCESS_CONTROL: DACL present, NULL', sddl: 'D:NO_ACCESS_CONTROL', hex: '0100048000000000000000000000000000000000' },
      { title: 'NO_ACCESS_CONTROL on the SACL', sddl: 'S:NO_ACCESS_CONTROL', hex: '0100108000000000000000000000000000000000' },
      { title: 'protected NULL DACL', sddl: 'D:PNO_ACCESS_CONTROL', hex: '0100049000000000000000000000000000000000' },
      {
        title: 'mandatory label ACE (type 0x11) in the SACL',
        sddl: 'S:(ML;;NW;;;LW)',
        hex: '0100108000000000000000001400000000000000' + '02001c0001000000' + '1100140001000000' + '010100000000001000100000',
      },
    ];
    for (const c of cases) it(c.title, () => expect(securityDescriptorFromSddl(c.sddl).toString('hex')).to.equal(c.hex));
  });

  describe('control flags', () => {
    const cases: [string, number][] = [
      ['D:P', 0x9004],
      ['D:AR', 0x8104],
      ['D:AI', 0x8404],
      ['D:PAI', 0x9404],
      ['D:PARAI', 0x9504],
      ['S:P', 0xa010],
      ['S:AR', 0x8210],
      ['S:AI', 0x8810],
      ['D:PS:PAI', 0xb814],
      ['O:BA', 0x8000],
    ];
    for (const [sddl, control] of cases) it(`${sddl} → control 0x${control.toString(16)}`, () => expect(securityDescriptorFromSddl(sddl).readUInt16LE(2)).to.equal(control));
  });

  describe('access rights', () => {
    const cases: [string, number][] = [
      ['GA', 0x1000_0000], ['GR', 0x8000_0000], ['GW', 0x4000_0000], ['GX', 0x2000_0000],
      ['RC', 0x2_0000], ['SD', 0x1_0000], ['WD', 0x4_0000], ['WO', 0x8_0000],
      ['RP', 0x10], ['WP', 0x20], ['CC', 0x1], ['DC', 0x2], ['LC', 0x4], ['SW', 0x8], ['LO', 0x80], ['DT', 0x40], ['CR', 0x100],
      ['FA', 0x1f_01ff], ['FR', 0x12_0089], ['FW', 0x12_0116], ['FX', 0x12_00a0],
      ['KA', 0xf_003f], ['KR', 0x2_0019], ['KW', 0x2_0006], ['KX', 0x2_0019],
      ['NR', 0x2], ['NW', 0x1], ['NX', 0x4],
      ['GRGWGX', 0xe000_0000],
      ['FAFRFWFX', 0x1f_01ff],
      ['0x1200a9', 0x12_00a9],
      ['0X1200A9', 0x12_00a9],
      ['1179817', 0x12_00a9],
      ['04400251', 0o4400251],
      ['0xFFFFFFFF', 0xffff_ffff],
      ['4294967295', 0xffff_ffff],
      ['0', 0],
      ['', 0],
      [' ', 0],
      [' GA', 0x1000_0000],
      ['ga', 0x1000_0000],
      ['RP LCLORC', 0x2_0094],
      ['RP LCLO  RC', 0x2_0094],
    ];
    for (const [rights, mask] of cases) {
      it(`"${rights}" → 0x${mask.toString(16)}`, () => expect(securityDescriptorFromSddl(`D:(A;;${rights};;;WD)`).readUInt32LE(FIRST_MASK)).to.equal(mask));
    }
  });

  describe('ACE flags', () => {
    const cases: [string, number][] = [
      ['OI', 0x01], ['CI', 0x02], ['NP', 0x04], ['IO', 0x08], ['ID', 0x10], ['SA', 0x40], ['FA', 0x80],
      ['OICIIO', 0x0b], ['OICINPIOIDSAFA', 0xdf], ['', 0], [' ', 0], ['oici', 0x03], ['OI CI', 0x03],
    ];
    for (const [flags, byte] of cases) {
      it(`"${flags}" → 0x${byte.toString(16)}`, () => expect(securityDescriptorFromSddl(`S:(AU;${flags};GA;;;WD)`).readUInt8(FIRST_ACE + 1)).to.equal(byte));
    }
  });

  describe('machine-independent SID aliases', () => {
    // MS-DTYP 2.4.2.4 / "SID Strings"; the part Wine's tests check on Windows is marked there.
    const aliases: [string, string][] = [
      ['WD', 'S-1-1-0'], ['CO', 'S-1-3-0'], ['CG', 'S-1-3-1'], ['OW', 'S-1-3-4'], ['NU', 'S-1-5-2'], ['IU', 'S-1-5-4'],
      ['SU', 'S-1-5-6'], ['AN', 'S-1-5-7'], ['ED', 'S-1-5-9'], ['PS', 'S-1-5-10'], ['AU', 'S-1-5-11'], ['RC', 'S-1-5-12'],
      ['SY', 'S-1-5-18'], ['LS', 'S-1-5-19'], ['NS', 'S-1-5-20'], ['WR', 'S-1-5-33'], ['BA', 'S-1-5-32-544'], ['BU', 'S-1-5-32-545'],
      ['BG', 'S-1-5-32-546'], ['PU', 'S-1-5-32-547'], ['AO', 'S-1-5-32-548'], ['SO', 'S-1-5-32-549'], ['PO', 'S-1-5-32-550'],
      ['BO', 'S-1-5-32-551'], ['RE', 'S-1-5-32-552'], ['RU', 'S-1-5-32-554'], ['RD', 'S-1-5-32-555'], ['NO', 'S-1-5-32-556'],
      ['MU', 'S-1-5-32-558'], ['LU', 'S-1-5-32-559'], ['IS', 'S-1-5-32-568'], ['CY', 'S-1-5-32-569'], ['ER', 'S-1-5-32-573'],
      ['CD', 'S-1-5-32-574'], ['RA', 'S-1-5-32-575'], ['ES', 'S-1-5-32-576'], ['MS', 'S-1-5-32-577'], ['HA', 'S-1-5-32-578'],
      ['AA', 'S-1-5-32-579'], ['RM', 'S-1-5-32-580'], ['UD', 'S-1-5-84-0-0-0-0-0'], ['AC', 'S-1-15-2-1'], ['LW', 'S-1-16-4096'],
      ['ME', 'S-1-16-8192'], ['MP', 'S-1-16-8448'], ['HI', 'S-1-16-12288'], ['SI', 'S-1-16-16384'], ['AS', 'S-1-18-1'], ['SS', 'S-1-18-2'],
    ];
    for (const [alias, sid] of aliases) {
      it(`${alias} = ${sid}, and prints back as ${alias}`, () => {
        const sd = securityDescriptorFromSddl(`O:${alias}`);
        expect(sd.equals(securityDescriptorFromSddl(`O:${sid}`))).to.equal(true);
        expect(sddlFromSecurityDescriptor(sd)).to.equal(`O:${alias}`);
      });
    }
  });

  describe('object ACEs', () => {
    const change = 'ab721a53-1e2f-11d0-9819-00aa0040529b';
    const user = 'bf967aba-0de6-11d0-a285-00aa003049e2';
    it('with both GUIDs: ACL revision 4, Flags 3, GUIDs with Data1-3 little-endian', () => {
      const sd = securityDescriptorFromSddl(`D:(OA;CI;CR;${change};${user};WD)`);
      expect(sd.readUInt8(20)).to.equal(4);
      expect(sd.subarray(FIRST_ACE, FIRST_ACE + 56).toString('hex')).to.equal(
        '05023800' + '00010000' + '03000000' + '531a72ab2f1ed011981900aa0040529b' + 'ba7a96bfe60dd011a28500aa003049e2' + '010100000000000100000000',
      );
    });
    it('with only the inherited object GUID: Flags 2', () => {
      const sd = securityDescriptorFromSddl(`S:(OU;SA;WP;;${user};WD)`);
      expect(sd.readUInt8(FIRST_ACE)).to.equal(7);
      expect(sd.readUInt16LE(FIRST_ACE + 2)).to.equal(40);
      expect(sd.readUInt32LE(FIRST_ACE + 8)).to.equal(2);
    });
    const downgrades: [string, number][] = [['OA', 0], ['OD', 1]];
    for (const [code, type] of downgrades) {
      it(`${code} without GUIDs becomes basic type ${type} in a revision 2 ACL (ACE Strings doc)`, () => {
        const sd = securityDescriptorFromSddl(`D:(${code};;CR;;;WD)`);
        expect(sd.readUInt8(20)).to.equal(2);
        expect(sd.readUInt8(FIRST_ACE)).to.equal(type);
        expect(sd.equals(securityDescriptorFromSddl(`D:(${code.slice(1)};;CR;;;WD)`))).to.equal(true);
      });
    }
    it('one object ACE makes the whole ACL revision 4', () => {
      expect(securityDescriptorFromSddl(`D:(A;;GA;;;WD)(OD;;RP;${change};;WD)`).readUInt8(20)).to.equal(4);
    });
    it('GUIDs are case-insensitive', () => {
      expect(securityDescriptorFromSddl(`D:(OA;;CR;${change.toUpperCase()};;WD)`).equals(securityDescriptorFromSddl(`D:(OA;;CR;${change};;WD)`))).to.equal(true);
    });
  });

  describe('ACL size limit (AclSize is u16)', () => {
    const ace = '(A;;GA;;;WD)'; // 20 bytes each
    it('3276 ACEs (65528 bytes) fit', () => expect(securityDescriptorFromSddl(`D:${ace.repeat(3276)}`).readUInt16LE(22)).to.equal(65528));
    it('3277 ACEs (65548 bytes) do not', () => expectCode(() => securityDescriptorFromSddl(`D:${ace.repeat(3277)}`), 'ERR_SDDL_INVALID'));
  });

  describe('malformed SDDL → ERR_SDDL_INVALID', () => {
    const guid = 'f30e3bbf-9ff0-11d1-b603-0000f80367c1';
    const cases: [string, string][] = [
      // Rejected by Windows (Wine's and Samba's tests run on Windows).
      ['unknown component', 'ERROR:(D;;GA;;;WD)'],
      ['unknown component Z', 'Z:(A;;GA;;;SY)'],
      ['lowercase component letter', 'd:(A;;GA;;;SY)'],
      ['space between letter and colon', 'D :S:'],
      ['flags after a colon', 'D:P:S:'],
      ['unknown ACE type', 'D:(Antlers;;GA;;;SY)'],
      ['non-ASCII ACE type', 'D:(Ā;;GA;;;WD)'],
      ['space after ACE type', 'D:(D ;;GA;;;WD)'],
      ['nested parentheses', 'D:((A;;GA;;;SY))'],
      ['five fields', 'D:(A;;GA;;)'],
      ['unknown right', 'D:(A;;ROB;;;WD)'],
      ['unknown right among known ones', 'S:(AU;SA;CROOO;;;WD)'],
      ['space after rights', 'D:(A;;GA ;;;WD)'],
      ['space after a right', 'D:(A;;RP ;;;WD)'],
      ['space after a number', 'D:(A;;123456789 ;;;WD)'],
      ['tab after a number', 'D:(A;;0x75bcd15\t;;;WD)'],
      ['space inside a number', 'D:(A;;0x 75bcd15;;;WD)'],
      ['space splitting a right', 'D:AI(A;CI;RP LCLOR C;;;AU)'],
      ['tab between rights', 'D:AI(A;CI;RP LC\tLORC;;;AU)'],
      ['unknown account name', 'D:(D;;GA;;;Nonexistent account)'],
      ['space after a numeric SID', 'D:(A;;GA;;;S-1-3-4 )'],
      ['authority beyond 48 bits', 'D:(A;;GA;;;S-1-0x1313131313131-513)'],
      ['space before an object GUID', `D:(OA;;GA; ${guid};;WD)`],
      ['space after an object GUID', `D:(OA;;GA;${guid} ;;WD)`],
      ['space before an inherited GUID', `D:(OA;;GA;; ${guid};WD)`],
      ['space after an inherited GUID', `D:(OA;;GA;;${guid} ;WD)`],
      ['braced GUID', `D:(OA;;GA;;{${guid}};WD)`],
      ['GUID as 16 raw characters', 'D:(OA;;GA;;0123456789abcdef;WD)'],
      ['GUID as 32 hex digits', 'D:(OA;;GA;;0123456789abcdef0123456789abcdef;WD)'],
      ['non-hex GUID', 'S:(OU;CISA;WP;f30e3bbe-9ff0-11d1-b603-00potato7c1;bf967aa5-0de6-11d0-a285-00aa003049e2;WD)'],
      ['doubled object ACE type', 'S:(OOU;CISA;WP;;;WD)'],
      ['O:S', 'O:S'],
      ['O:S-', 'O:S-'],
      ['O:S-1', 'O:S-1'],
      ['O:S-10', 'O:S-10'],
      ['O:S-0', 'O:S-0'],
      ['O:S-1-', 'O:S-1-'],
      ['O:S-0x1', 'O:S-0x1'],
      ['O:S-0x1-', 'O:S-0x1-'],
      ['empty owner', 'O:'],
      ['unknown alias', 'O:XX'],
      // Windows accepts these by saturating or wrapping; we refuse (see access-mask.ts, sid.ts).
      ['negative rights', 'D:(A;;-99;;;WD)'],
      ['rights beyond 32 bits', 'D:(A;;0x123456789;;;WD)'],
      ['huge decimal rights', 'D:(A;;100000000000000000000000;;;WD)'],
      ['subauthority beyond 32 bits', 'D:(A;;GA;;;S-1-3-4294967296-3-4)'],
      ['hex subauthority beyond 32 bits', 'D:(A;;GA;;;S-1-3-0x100000000-3-4)'],
      ['hex revision', 'O:S-0x1-20-0-579'],
      // Our own structural rules.
      ['SID without subauthority', 'O:S-1-5'],
      ['16 subauthorities', 'O:S-1-5-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15-16'],
      ['SID revision 2', 'O:S-2-5-18'],
      ['owner twice', 'O:BAO:SY'],
      ['DACL twice', 'D:D:'],
      ['audit ACE in a DACL (Windows refuses it too)', 'D:(AU;SA;GA;;;WD)'],
      ['allow ACE in a SACL', 'S:(A;;GA;;;WD)'],
      ['label ACE in a DACL', 'D:(ML;;NW;;;LW)'],
      ['GUID on a basic ACE', `D:(A;;GA;${guid};;WD)`],
      ['ACEs after NO_ACCESS_CONTROL', 'D:NO_ACCESS_CONTROL(A;;GA;;;WD)'],
      ['unterminated ACE', 'D:(A;;GA;;;WD'],
      ['junk after an ACE', 'D:(A;;GA;;;WD)x'],
      ['unknown ACL flag', 'D:Q(A;;GA;;;WD)'],
      ['seven fields on a basic ACE', 'D:(A;;GA;;;WD;)'],
      ['missing trustee', 'D:(A;;GA;;;)'],
      ['empty ACE type', 'D:(;;GA;;;WD)'],
      ['bad octal digit', 'D:(A;;08;;;WD)'],
      ['hex prefix without digits', 'D:(A;;0x;;;WD)'],
      ['number followed by codes', 'D:(A;;0x10GA;;;WD)'],
      ['tab after an alias', 'O:BA\tG:SY'],
      ['NUL in the string', 'D:(A;;GA;;;WD)\0'],
      ['lone colon', ':'],
      ['double colon', 'O::'],
      ['three-letter alias', 'O:BAX'],
      ['unknown ACE flag', 'D:(A;XX;GA;;;WD)'],
      ['space after ACE flags', 'D:(A;CI ;GA;;;WD)'],
    ];
    for (const [title, sddl] of cases) it(`${title}: ${JSON.stringify(sddl)}`, () => expectCode(() => securityDescriptorFromSddl(sddl), 'ERR_SDDL_INVALID'));
  });

  describe('valid SDDL needing context we lack → ERR_SDDL_UNSUPPORTED', () => {
    const contextual = ['LA', 'LG', 'DA', 'DU', 'DG', 'DC', 'DD', 'CA', 'SA', 'EA', 'PA', 'RS', 'RO', 'CN', 'AP', 'KA', 'EK'];
    for (const alias of contextual) {
      it(`machine/domain-relative alias ${alias} as owner`, () => expectCode(() => securityDescriptorFromSddl(`O:${alias}`), 'ERR_SDDL_UNSUPPORTED'));
    }
    const cases: [string, string][] = [
      ['domain alias as group', 'G:DU'],
      ['domain alias as trustee', 'D:(A;;GA;;;DA)'],
      ['lowercase domain alias', 'D:(A;;GA;;;ea)'],
      ["Windows' own SDDL for the PowerShell vector (LA)", POWERSHELL_WINDOWS_SDDL],
      ['conditional allow ACE', 'D:(XA;;FA;;;WD;(@User.Title=="PM"))'],
      ['conditional deny ACE', 'D:(XD;;FA;;;WD;(Member_of {SID(BA)}))'],
      ['conditional audit ACE', 'S:(XU;SA;FA;;;WD;(@User.Project==1))'],
      ['conditional object ACE', 'D:(ZA;;FA;;;WD;(@User.Project==1))'],
      ['resource attribute ACE', 'S:(RA;CI;;;;S-1-1-0;("Project",TS,0,"Windows","SQL"))'],
      ['scoped policy ACE', 'S:(SP;;;;;S-1-17-1)'],
    ];
    for (const [title, sddl] of cases) it(`${title}: ${sddl}`, () => expectCode(() => securityDescriptorFromSddl(sddl), 'ERR_SDDL_UNSUPPORTED'));
  });
});
