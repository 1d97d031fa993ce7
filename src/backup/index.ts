/** Win32 backup streams: framing, EA and reparse payloads. Pure; no file system. */
export * from './constants.js';
export * from './header.js';
export * from './parser.js';
export * from './writer.js';
export * from './ea.js';
export * from './reparse.js';
