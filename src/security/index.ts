/**
 * Windows security descriptors without Windows: SDDL ⇄ self-relative binary, and
 * validation of the binary form carried by MSWINDOWS.rawsd and backup streams.
 */

export { securityDescriptorFromSddl } from './sddl-parse.js';
export { sddlFromSecurityDescriptor } from './sddl-format.js';
export { validateSecurityDescriptor } from './security-descriptor.js';
