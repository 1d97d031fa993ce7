/** The PAX record keys of Windows layer tars (FORMATS.md §2.3), next to the codec that uses them. */

export const PAX_FILE_ATTRIBUTES = 'MSWINDOWS.fileattr';
export const PAX_RAW_SECURITY_DESCRIPTOR = 'MSWINDOWS.rawsd';
export const PAX_SECURITY_DESCRIPTOR_SDDL = 'MSWINDOWS.sd';
export const PAX_MOUNT_POINT = 'MSWINDOWS.mountpoint';
export const PAX_EA_PREFIX = 'MSWINDOWS.xattr.';
export const PAX_CREATION_TIME = 'LIBARCHIVE.creationtime';
/** Pre-2016 producers wrote these; read them when the modern key is absent. */
export const PAX_LEGACY_FILE_ATTRIBUTES = 'SCHILY.xattr.MSWINDOWS.fileattr';
export const PAX_LEGACY_CREATION_TIME = 'MSWINDOWS.createtime';

/** Tar mode type bits, the only bits go-winio puts in Mode. */
export const MODE_DIRECTORY = 0o40000;
export const MODE_REGULAR = 0o100000;
export const MODE_SYMLINK = 0o120000;
/** Where the type bits are (S_IFMT). */
export const MODE_TYPE_BITS = 0o170000;
/** But a hard link's header: permission bits, no type bits (hcsshim's ociwclayer export). */
export const LINK_MODE = 0o644;

/** Whiteout naming (OCI image-spec, moby). */
export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_WHITEOUT = '.wh..wh..opq';
