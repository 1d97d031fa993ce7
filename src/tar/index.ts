/** The tar boundary: Go-compatible header encoding and a reader with Go's archive/tar rules. */

export { encodeTarHeader, tarPadding, TAR_END_OF_ARCHIVE, type TarHeaderInput } from './encode.js';
export { formatPaxRecord, formatPaxTime, isValidPaxRecord, parsePaxTime } from './pax.js';
export { readTar, skipEntry, DEFAULT_MAX_PAX_BYTES, type ReadTarOptions, type TarEntry, type TarHeader } from './reader.js';
