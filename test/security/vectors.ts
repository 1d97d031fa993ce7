/**
 * Security descriptors with known bytes, and where each came from. The base64 strings are
 * data produced by Windows (or by the named producer), copied as test vectors.
 */

import { expect } from 'chai';
import { isWinLayerError, type ErrorCode, type WinLayerError } from '../../src/errors.js';

/** A descriptor whose binary form and SDDL are both known. */
export interface SdVector {
  readonly title: string;
  /** The SDDL the producer started from or Windows printed. */
  readonly sddl: string;
  /** Standard base64 of the self-relative descriptor. */
  readonly base64: string;
}

/** The machine SID of the Windows host CloudSoda/sddl's test data came from. */
const MACHINE = 'S-1-5-21-1886771222-1226956130-4148604499';

/**
 * Output of ConvertStringSecurityDescriptorToSecurityDescriptorW on Windows, so our
 * encoder must reproduce these byte for byte.
 */
export const WINDOWS_CONVERT_VECTORS: readonly SdVector[] = [
  {
    // FORMATS.md 2.9: go-containerregistry's fixed rawsd for `crane append` on Windows bases.
    title: 'crane "O:BUG:BU" (FORMATS.md 2.9)',
    sddl: 'O:BUG:BU',
    base64: 'AQAAgBQAAAAkAAAAAAAAAAAAAAABAgAAAAAABSAAAAAhAgAAAQIAAAAAAAUgAAAAIQIAAA==',
  },
  {
    // CloudSoda/sddl testdata/many-perms/from-windows.txt, lines 1 and 2.
    title: 'CloudSoda many-perms (DACL with AI, deny and inherited ACEs)',
    sddl: `O:${MACHINE}-1001G:${MACHINE}-513D:AI(D;;DCLCRPCR;;;${MACHINE}-1002)(A;;0x1200a9;;;${MACHINE}-1002)(A;ID;FA;;;SY)(A;ID;FA;;;BA)(A;ID;FA;;;${MACHINE}-1001)`,
    base64: 'AQAEhLQAAADQAAAAAAAAABQAAAACAKAABQAAAAEAJAAWAQAAAQUAAAAAAAUVAAAAFth1cGLdIUlTrkb36gMAAAAAJACpABIAAQUAAAAAAAUVAAAAFth1cGLdIUlTrkb36gMAAAAQFAD/AR8AAQEAAAAAAAUSAAAAABAYAP8BHwABAgAAAAAABSAAAAAgAgAAABAkAP8BHwABBQAAAAAABRUAAAAW2HVwYt0hSVOuRvfpAwAAAQUAAAAAAAUVAAAAFth1cGLdIUlTrkb36QMAAAEFAAAAAAAFFQAAABbYdXBi3SFJU65G9wECAAA=',
  },
  {
    // CloudSoda/sddl testdata/single-perm/from-windos.txt, lines 1 and 2.
    title: 'CloudSoda single-perm (inherited ACEs only)',
    sddl: `O:${MACHINE}-1001G:${MACHINE}-513D:(A;ID;FA;;;SY)(A;ID;FA;;;BA)(A;ID;FA;;;${MACHINE}-1001)`,
    base64: 'AQAEgGwAAACIAAAAAAAAABQAAAACAFgAAwAAAAAQFAD/AR8AAQEAAAAAAAUSAAAAABAYAP8BHwABAgAAAAAABSAAAAAgAgAAABAkAP8BHwABBQAAAAAABRUAAAAW2HVwYt0hSVOuRvfpAwAAAQUAAAAAAAUVAAAAFth1cGLdIUlTrkb36QMAAAEFAAAAAAAFFQAAABbYdXBi3SFJU65G9wECAAA=',
  },
];

/**
 * Descriptors read back from files on Windows or written by other producers: laid out
 * owner, group, DACL, SACL (not ConvertString's order), with the SDDL Windows prints for
 * them (or the producer's source comment).
 */
export const READ_BACK_VECTORS: readonly SdVector[] = [
  {
    // moby/buildkit util/winlayers/differ.go addSecurityDescriptor, directory case; FORMATS.md 2.9.
    title: 'buildkit directory rawsd',
    sddl: 'O:BAG:SYD:(A;OICI;FA;;;BA)(A;OICI;FA;;;SY)(A;;FA;;;BA)(A;OICIIO;GA;;;CO)(A;OICI;0x1200a9;;;BU)(A;CI;LC;;;BU)(A;CI;DC;;;BU)',
    base64: 'AQAEgBQAAAAkAAAAAAAAADAAAAABAgAAAAAABSAAAAAgAgAAAQEAAAAAAAUSAAAAAgCoAAcAAAAAAxgA/wEfAAECAAAAAAAFIAAAACACAAAAAxQA/wEfAAEBAAAAAAAFEgAAAAAAGAD/AR8AAQIAAAAAAAUgAAAAIAIAAAALFAAAAAAQAQEAAAAAAAMAAAAAAAMYAKkAEgABAgAAAAAABSAAAAAhAgAAAAIYAAQAAAABAgAAAAAABSAAAAAhAgAAAAIYAAIAAAABAgAAAAAABSAAAAAhAgAA',
  },
  {
    // moby/buildkit util/winlayers/differ.go addSecurityDescriptor, regular file case.
    title: 'buildkit file rawsd',
    sddl: 'O:BAG:SYD:(A;;FA;;;BA)(A;;FA;;;SY)(A;;0x1200a9;;;BU)',
    base64: 'AQAEgBQAAAAkAAAAAAAAADAAAAABAgAAAAAABSAAAAAgAgAAAQEAAAAAAAUSAAAAAgBMAAMAAAAAABgA/wEfAAECAAAAAAAFIAAAACACAAAAABQA/wEfAAEBAAAAAAAFEgAAAAAAGACpABIAAQIAAAAAAAUgAAAAIQIAAA==',
  },
  {
    // CloudSoda/sddl testdata/dacl-and-sacl: GetSecurityInfo of a file (hello.txt.windows.bin.b64)
    // and the SDDL ConvertSecurityDescriptorToStringSecurityDescriptorW printed for it.
    title: 'CloudSoda dacl-and-sacl (file read back with a SACL)',
    sddl: `O:${MACHINE}-1001G:${MACHINE}-513D:AI(D;;DCLCRPCR;;;${MACHINE}-1002)(A;;FR;;;${MACHINE}-1002)(A;ID;FA;;;SY)(A;ID;FA;;;BA)(A;ID;FA;;;${MACHINE}-1001)S:AI(AU;SA;CCSWWPLORC;;;${MACHINE}-1001)`,
    base64: 'AQAUjBQAAAAwAAAA7AAAAEwAAAABBQAAAAAABRUAAAAW2HVwYt0hSVOuRvfpAwAAAQUAAAAAAAUVAAAAFth1cGLdIUlTrkb3AQIAAAIAoAAFAAAAAQAkABYBAAABBQAAAAAABRUAAAAW2HVwYt0hSVOuRvfqAwAAAAAkAIkAEgABBQAAAAAABRUAAAAW2HVwYt0hSVOuRvfqAwAAABAUAP8BHwABAQAAAAAABRIAAAAAEBgA/wEfAAECAAAAAAAFIAAAACACAAAAECQA/wEfAAEFAAAAAAAFFQAAABbYdXBi3SFJU65G9+kDAAACACwAAQAAAAJAJACpAAIAAQUAAAAAAAUVAAAAFth1cGLdIUlTrkb36QMAAA==',
  },
  {
    // CloudSoda/sddl testdata/many-perms/from-windows.txt line 3: the same file's descriptor
    // as GetSecurityInfo returned it, before any string conversion.
    title: 'CloudSoda many-perms as read back',
    sddl: `O:${MACHINE}-1001G:${MACHINE}-513D:AI(D;;DCLCRPCR;;;${MACHINE}-1002)(A;;0x1200a9;;;${MACHINE}-1002)(A;ID;FA;;;SY)(A;ID;FA;;;BA)(A;ID;FA;;;${MACHINE}-1001)`,
    base64: 'AQAEhBQAAAAwAAAAAAAAAEwAAAABBQAAAAAABRUAAAAW2HVwYt0hSVOuRvfpAwAAAQUAAAAAAAUVAAAAFth1cGLdIUlTrkb3AQIAAAIAoAAFAAAAAQAkABYBAAABBQAAAAAABRUAAAAW2HVwYt0hSVOuRvfqAwAAAAAkAKkAEgABBQAAAAAABRUAAAAW2HVwYt0hSVOuRvfqAwAAABAUAP8BHwABAQAAAAAABRIAAAAAEBgA/wEfAAECAAAAAAAFIAAAACACAAAAECQA/wEfAAEFAAAAAAAFFQAAABbYdXBi3SFJU65G9+kDAAA=',
  },
  {
    // CloudSoda/sddl testdata/single-perm line 3: control 0xa004 carries SE_SACL_PROTECTED
    // without a SACL, which SDDL cannot say, so Windows printed no S: (line 1).
    title: 'CloudSoda single-perm as read back (SACL-protected bit, no SACL)',
    sddl: `O:${MACHINE}-1001G:${MACHINE}-513D:(A;ID;FA;;;SY)(A;ID;FA;;;BA)(A;ID;FA;;;${MACHINE}-1001)`,
    base64: 'AQAEoBQAAAAwAAAAAAAAAEwAAAABBQAAAAAABRUAAAAW2HVwYt0hSVOuRvfpAwAAAQUAAAAAAAUVAAAAFth1cGLdIUlTrkb3AQIAAAIAWAADAAAAABAUAP8BHwABAQAAAAAABRIAAAAAEBgA/wEfAAECAAAAAAAFIAAAACACAAAAECQA/wEfAAEFAAAAAAAFFQAAABbYdXBi3SFJU65G9+kDAAA=',
  },
  {
    // CloudSoda/sddl testdata/powershell/foo-binary-string.txt (.NET GetSecurityDescriptorBinaryForm).
    // Windows printed the first trustee as LA, the machine's administrator; without the
    // machine SID we print it numerically.
    title: 'CloudSoda PowerShell (protected, auto-inherited DACL; machine-relative trustee)',
    sddl: `O:${MACHINE}-1001G:${MACHINE}-513D:PAI(A;OICI;FA;;;${MACHINE}-500)(A;OICI;FA;;;${MACHINE}-1001)`,
    base64: 'AQAElBQAAAAwAAAAAAAAAEwAAAABBQAAAAAABRUAAAAW2HVwYt0hSVOuRvfpAwAAAQUAAAAAAAUVAAAAFth1cGLdIUlTrkb3AQIAAAIAUAACAAAAAAMkAP8BHwABBQAAAAAABRUAAAAW2HVwYt0hSVOuRvf0AQAAAAMkAP8BHwABBQAAAAAABRUAAAAW2HVwYt0hSVOuRvfpAwAA',
  },
];

/** The SDDL Windows printed for the PowerShell vector, using the machine-relative alias. */
export const POWERSHELL_WINDOWS_SDDL = `O:${MACHINE}-1001G:${MACHINE}-513D:PAI(A;OICI;FA;;;LA)(A;OICI;FA;;;${MACHINE}-1001)`;

/** The two SDDL strings buildkit's winlayers differ documents (FORMATS.md 2.9). */
export const BUILDKIT_SDDL = {
  directory: 'O:BAG:SYD:(A;OICI;FA;;;BA)(A;OICI;FA;;;SY)(A;;FA;;;BA)(A;OICIIO;GA;;;CO)(A;OICI;0x1200a9;;;BU)(A;CI;LC;;;BU)(A;CI;DC;;;BU)',
  file: 'O:BAG:SYD:(A;;FA;;;BA)(A;;FA;;;SY)(A;;0x1200a9;;;BU)',
} as const;

/** Decodes a vector's bytes. */
export function bytesOf(v: SdVector): Buffer {
  return Buffer.from(v.base64, 'base64');
}

/** Runs `fn` and asserts it throws a WinLayerError with `code`. */
export function expectCode(fn: () => unknown, code: ErrorCode): WinLayerError {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  expect(isWinLayerError(thrown), `expected a WinLayerError ${code}, got ${String(thrown)}`).to.equal(true);
  const e = thrown as WinLayerError;
  expect(e.code, e.message).to.equal(code);
  return e;
}

/** Reads the u32 offsets of the header: owner, group, SACL, DACL. */
export function offsetsOf(sd: Buffer): { owner: number; group: number; sacl: number; dacl: number } {
  return { owner: sd.readUInt32LE(4), group: sd.readUInt32LE(8), sacl: sd.readUInt32LE(12), dacl: sd.readUInt32LE(16) };
}
