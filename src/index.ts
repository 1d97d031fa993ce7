/** winlayer: Windows container image layers for Node.js. Re-exports only. */
export * from './errors.js';
export * from './util/windows.js';
