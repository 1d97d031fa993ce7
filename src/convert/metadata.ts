/**
 * The non-data streams of an entry (security descriptor, EAs, reparse point) between
 * their tar form (PAX records, linkname) and their backup-stream form.
 */
import { BackupStreamId } from '../backup/constants.js';
import { encodeExtendedAttributes, decodeExtendedAttributes, MAX_EA_PACKED_BYTES, packedEaSize, type ExtendedAttribute } from '../backup/ea.js';
import { encodeBackupHeader } from '../backup/header.js';
import { decodeReparsePoint, encodeReparsePoint, type ReparsePoint } from '../backup/reparse.js';
import { createError } from '../errors.js';
import { securityDescriptorFromSddl, validateSecurityDescriptor } from '../security/index.js';
import type { TarHeader } from '../tar/reader.js';
import {
  PAX_EA_PREFIX,
  PAX_MOUNT_POINT,
  PAX_RAW_SECURITY_DESCRIPTOR,
  PAX_SECURITY_DESCRIPTOR_SDDL,
} from './pax-keys.js';

/** NTFS caps a security descriptor's ACLs at 64 KiB (and a file's EA set: MAX_EA_PACKED_BYTES). */
export const MAX_SECURITY_DESCRIPTOR_BYTES = 65536;

/** The metadata streams of one entry. */
export interface EntryMetadata {
  securityDescriptor: Buffer | undefined;
  extendedAttributes: ExtendedAttribute[];
  reparse: ReparsePoint | undefined;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Standard base64 with padding, strictly, as Go's StdEncoding.DecodeString reads it: that
 * skips every CR and LF (so a value wrapped in lines decodes), and nothing else.
 */
export function decodeBase64Record(value: string, key: string, entry: string): Buffer {
  if (value.includes('\n') || value.includes('\r')) value = value.replace(/[\r\n]/g, '');
  if (!BASE64.test(value)) {
    throw createError('ERR_PAX_RECORD_INVALID', `${entry}: ${key} is not padded standard base64`, { entry, key });
  }
  return Buffer.from(value, 'base64');
}

/**
 * Security descriptors already decoded and validated, by their PAX text: a layer has a
 * handful of distinct ones over thousands of entries, and decoding and validating each
 * again cost ~4 µs an entry. Bounded: cleared when full. The buffers are shared, never
 * written to.
 */
const knownRawSecurityDescriptors = new Map<string, Buffer>();
const knownSddlSecurityDescriptors = new Map<string, Buffer>();
const KNOWN_SECURITY_DESCRIPTORS_MAX = 256;
/**
 * Only records up to this many characters are kept (real descriptors take a few hundred):
 * 256 distinct 64 KB descriptors held ~38 MB and took an import to 133 MiB peak RSS.
 */
const KNOWN_SECURITY_DESCRIPTOR_TEXT_MAX = 4096;

/** Reads SD, EAs and reparse point from a tar header (go-winio's *FromTarHeader functions). */
export function metadataFromTarHeader(h: TarHeader, entry: string): EntryMetadata {
  const rawsd = h.pax[PAX_RAW_SECURITY_DESCRIPTOR];
  const sddl = h.pax[PAX_SECURITY_DESCRIPTOR_SDDL];
  // Keyed by the record's own text (no prefixed copy per entry): one map per record kind.
  const known = rawsd !== undefined ? knownRawSecurityDescriptors : knownSddlSecurityDescriptors;
  // An empty MSWINDOWS.rawsd is no descriptor, as go-winio reads it (it writes a security
  // stream only when the decoded bytes are not empty), and is preferred to an SDDL one.
  const sdText = rawsd === '' ? undefined : (rawsd ?? sddl);
  let securityDescriptor = sdText === undefined ? undefined : known.get(sdText);
  if (securityDescriptor === undefined && sdText !== undefined) {
    securityDescriptor = securityDescriptorOf(rawsd, sddl, entry);
    if (sdText.length <= KNOWN_SECURITY_DESCRIPTOR_TEXT_MAX) {
      if (known.size >= KNOWN_SECURITY_DESCRIPTORS_MAX) known.clear();
      known.set(sdText, securityDescriptor);
    }
  }

  const extendedAttributes: ExtendedAttribute[] = [];
  // for-in: no array of keys per entry (the records' prototype is empty and frozen).
  for (const key in h.pax) {
    if (!key.startsWith(PAX_EA_PREFIX)) continue;
    const name = key.slice(PAX_EA_PREFIX.length);
    extendedAttributes.push({ name, value: decodeBase64Record(h.pax[key] as string, key, entry), flags: 0 });
  }
  // Sorted by name: go-winio walks a Go map here, so its order is random; ours is stable.
  if (extendedAttributes.length > 1) extendedAttributes.sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));

  let reparse: ReparsePoint | undefined;
  if (h.typeflag === '2') {
    if (h.linkname === '') throw createError('ERR_LINK_TARGET_INVALID', `${entry}: symbolic link without a target`, { entry });
    reparse = { target: h.linkname.replaceAll('/', '\\'), isMountPoint: h.pax[PAX_MOUNT_POINT] !== undefined };
  }
  return { securityDescriptor, extendedAttributes, reparse };
}

/** The security descriptor of MSWINDOWS.rawsd (preferred) or MSWINDOWS.sddl, decoded and validated. */
function securityDescriptorOf(rawsd: string | undefined, sddl: string | undefined, entry: string): Buffer {
  let securityDescriptor: Buffer;
  if (rawsd !== undefined) {
    securityDescriptor = decodeBase64Record(rawsd, PAX_RAW_SECURITY_DESCRIPTOR, entry);
  } else {
    try {
      securityDescriptor = securityDescriptorFromSddl(sddl as string);
    } catch (cause) {
      const e = cause as { code?: string };
      const code = e.code === 'ERR_SDDL_UNSUPPORTED' ? 'ERR_SDDL_UNSUPPORTED' : 'ERR_SDDL_INVALID';
      throw createError(code, `${entry}: ${PAX_SECURITY_DESCRIPTOR_SDDL}: ${(cause as Error).message}`, { entry }, cause);
    }
  }
  if (securityDescriptor.length > MAX_SECURITY_DESCRIPTOR_BYTES) {
    throw createError('ERR_METADATA_TOO_LARGE', `${entry}: security descriptor of ${securityDescriptor.length} bytes exceeds ${MAX_SECURITY_DESCRIPTOR_BYTES}`, { entry });
  }
  try {
    validateSecurityDescriptor(securityDescriptor);
  } catch (cause) {
    throw createError('ERR_SECURITY_DESCRIPTOR_INVALID', `${entry}: ${(cause as Error).message}`, { entry }, cause);
  }
  return securityDescriptor;
}

/**
 * The metadata sub-streams in the order go-winio writes them: SECURITY, EA, REPARSE.
 * EAs are validated and capped here, since encoding checks each name and value.
 */
export function encodeMetadataStreams(meta: EntryMetadata, entry: string): Buffer[] {
  const out: Buffer[] = [];
  if (meta.securityDescriptor !== undefined) {
    out.push(encodeBackupHeader({ id: BackupStreamId.SecurityData, size: meta.securityDescriptor.length }), meta.securityDescriptor);
  }
  if (meta.extendedAttributes.length > 0) {
    let ea: Buffer;
    try {
      ea = encodeExtendedAttributes(meta.extendedAttributes);
    } catch (cause) {
      throw createError('ERR_EA_INVALID', `${entry}: ${(cause as Error).message}`, { entry }, cause);
    }
    const packed = packedEaSize(meta.extendedAttributes);
    if (packed > MAX_EA_PACKED_BYTES) {
      throw createError('ERR_METADATA_TOO_LARGE', `${entry}: extended attributes of ${packed} bytes (packed, as NTFS counts them) exceed ${MAX_EA_PACKED_BYTES}`, { entry });
    }
    out.push(encodeBackupHeader({ id: BackupStreamId.EaData, size: ea.length }), ea);
  }
  if (meta.reparse !== undefined) {
    let rp: Buffer;
    try {
      rp = encodeReparsePoint(meta.reparse);
    } catch (cause) {
      throw createError('ERR_REPARSE_INVALID', `${entry}: ${(cause as Error).message}`, { entry }, cause);
    }
    out.push(encodeBackupHeader({ id: BackupStreamId.ReparseData, size: rp.length }), rp);
  }
  return out;
}

/** Decodes the metadata payloads found in a backup stream (any order). */
export function metadataFromPayloads(
  payloads: { securityDescriptor?: Buffer | undefined; eaData?: Buffer | undefined; reparseData?: Buffer | undefined },
  entry: string,
): EntryMetadata {
  let extendedAttributes: ExtendedAttribute[] = [];
  if (payloads.eaData !== undefined && payloads.eaData.length > 0) {
    try {
      extendedAttributes = decodeExtendedAttributes(payloads.eaData);
    } catch (cause) {
      throw createError('ERR_EA_INVALID', `${entry}: ${(cause as Error).message}`, { entry }, cause);
    }
  }
  let reparse: ReparsePoint | undefined;
  if (payloads.reparseData !== undefined) {
    const rp = decodeReparsePoint(payloads.reparseData);
    reparse = { target: rp.target, isMountPoint: rp.isMountPoint };
  }
  return { securityDescriptor: payloads.securityDescriptor, extendedAttributes, reparse };
}
