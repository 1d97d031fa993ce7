/** metadataFromTarHeader: security descriptors decoded once per distinct PAX text, and still checked every time they are new. */
import { expect } from 'chai';
import { CRANE_SECURITY_DESCRIPTOR } from '../../src/convert/layer-tar-builder.js';
import { encodeMetadataStreams, metadataFromTarHeader } from '../../src/convert/metadata.js';
import { PAX_EA_PREFIX, PAX_RAW_SECURITY_DESCRIPTOR, PAX_SECURITY_DESCRIPTOR_SDDL } from '../../src/convert/pax-keys.js';
import { isWinLayerError } from '../../src/errors.js';
import { securityDescriptorFromSddl } from '../../src/security/index.js';
import type { TarHeader } from '../../src/tar/reader.js';

function header(pax: Record<string, string>): TarHeader {
  return { name: 'Files/a', typeflag: '0', size: 0, mode: 0, linkname: '', mtime: 0n, pax };
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (isWinLayerError(e)) return e.code;
    throw e;
  }
  return 'no error';
}

describe('convert/metadata', () => {
  const raw = CRANE_SECURITY_DESCRIPTOR.toString('base64');

  it('gives the same descriptor for the same MSWINDOWS.rawsd, and another for another', () => {
    const a = metadataFromTarHeader(header({ [PAX_RAW_SECURITY_DESCRIPTOR]: raw }), 'Files/a').securityDescriptor;
    const b = metadataFromTarHeader(header({ [PAX_RAW_SECURITY_DESCRIPTOR]: raw }), 'Files/b').securityDescriptor;
    expect(a?.equals(CRANE_SECURITY_DESCRIPTOR)).to.equal(true);
    expect(b?.equals(CRANE_SECURITY_DESCRIPTOR)).to.equal(true);
    const sddl = 'O:BAG:SYD:(A;;FA;;;SY)';
    const c = metadataFromTarHeader(header({ [PAX_SECURITY_DESCRIPTOR_SDDL]: sddl }), 'Files/c').securityDescriptor;
    expect(c?.equals(securityDescriptorFromSddl(sddl))).to.equal(true);
    // rawsd wins over sddl, as in go-winio, whichever was seen first.
    const d = metadataFromTarHeader(header({ [PAX_RAW_SECURITY_DESCRIPTOR]: raw, [PAX_SECURITY_DESCRIPTOR_SDDL]: sddl }), 'Files/d').securityDescriptor;
    expect(d?.equals(CRANE_SECURITY_DESCRIPTOR)).to.equal(true);
  });

  it('takes an empty MSWINDOWS.rawsd for no descriptor, as go-winio does, even beside an SDDL one', () => {
    expect(metadataFromTarHeader(header({ [PAX_RAW_SECURITY_DESCRIPTOR]: '' }), 'Files/e').securityDescriptor).to.equal(undefined);
    const both = header({ [PAX_RAW_SECURITY_DESCRIPTOR]: '', [PAX_SECURITY_DESCRIPTOR_SDDL]: 'O:BAG:SYD:(A;;FA;;;SY)' });
    expect(metadataFromTarHeader(both, 'Files/f').securityDescriptor).to.equal(undefined);
    // Not empty and not a descriptor: still refused.
    expect(codeOf(() => metadataFromTarHeader(header({ [PAX_RAW_SECURITY_DESCRIPTOR]: 'AAAA' }), 'Files/g'))).to.equal('ERR_SECURITY_DESCRIPTOR_INVALID');
  });

  it('names the entry whose link target does not fit a reparse buffer, and keeps the target out of the error data', () => {
    const meta = metadataFromTarHeader({ ...header({}), name: 'Files/s', typeflag: '2', linkname: 'x'.repeat(40_000) }, 'Files/s');
    let error: unknown;
    try {
      encodeMetadataStreams(meta, 'Files/s');
    } catch (e) {
      error = e;
    }
    expect(isWinLayerError(error) && { code: error.code, entry: error.data['entry'], bytes: JSON.stringify(error.data).length < 1000 }).to.deep.equal({
      code: 'ERR_REPARSE_INVALID',
      entry: 'Files/s',
      bytes: true,
    });
  });

  it('rejects a bad descriptor every time it is met, naming the entry each time', () => {
    for (const name of ['Files/x', 'Files/y']) {
      expect(codeOf(() => metadataFromTarHeader(header({ [PAX_RAW_SECURITY_DESCRIPTOR]: 'AAAA' }), name))).to.equal('ERR_SECURITY_DESCRIPTOR_INVALID');
      expect(codeOf(() => metadataFromTarHeader(header({ [PAX_RAW_SECURITY_DESCRIPTOR]: 'not base64!' }), name))).to.equal('ERR_PAX_RECORD_INVALID');
      expect(codeOf(() => metadataFromTarHeader(header({ [PAX_SECURITY_DESCRIPTOR_SDDL]: 'O:ZZ' }), name))).to.match(/^ERR_SDDL_/);
    }
  });

  it('reads base64 records as Go does: line breaks skipped anywhere, any other stray character refused', () => {
    const ea = `${PAX_EA_PREFIX}X`;
    const read = (value: string) => metadataFromTarHeader(header({ [ea]: value }), 'Files/e').extendedAttributes[0]?.value.toString('latin1');
    expect(read('dmFs')).to.equal('val');
    expect(read('dm\nFs')).to.equal('val');
    expect(read('d\r\nmFs\n')).to.equal('val');
    expect(read('\nYQ==')).to.equal('a');
    expect(read('YQ=\n=')).to.equal('a');
    for (const bad of ['dm Fs', 'dm\tFs', 'dmF', 'dmFs=', '\u00a0dmFs']) {
      expect(codeOf(() => metadataFromTarHeader(header({ [ea]: bad }), 'Files/e')), JSON.stringify(bad)).to.equal('ERR_PAX_RECORD_INVALID');
    }
  });

  it('keeps answering right past the bound of remembered descriptors', () => {
    // 300 distinct descriptors (more than are remembered), each read twice.
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 300; i++) {
        const sddl = `O:BAG:SYD:(A;;0x${(i + 1).toString(16)};;;SY)`;
        const sd = metadataFromTarHeader(header({ [PAX_SECURITY_DESCRIPTOR_SDDL]: sddl }), `Files/f${i}`).securityDescriptor;
        expect(sd?.equals(securityDescriptorFromSddl(sddl)), sddl).to.equal(true);
      }
    }
  });
});
