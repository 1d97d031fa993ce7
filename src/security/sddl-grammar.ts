/**
 * The SDDL vocabulary shared by the parser and the printer: ACE type and flag codes, the
 * whitespace rule, and the error every malformed string gets.
 */

import { AceFlag, AceType } from './acl.js';

export { sddlInvalid, skipSpaces } from './sddl-lexer.js';

/** The ACL an ACE type belongs in. */
export type AclKind = 'DACL' | 'SACL';

/** The SDDL letters of the ACE_HEADER flags, in the order Windows prints them ("OICINPIOIDSAFA" in Wine's tests). */
export const ACE_FLAG_CODES: readonly (readonly [code: string, bit: number])[] = [
  ['OI', AceFlag.ObjectInherit],
  ['CI', AceFlag.ContainerInherit],
  ['NP', AceFlag.NoPropagateInherit],
  ['IO', AceFlag.InheritOnly],
  ['ID', AceFlag.Inherited],
  ['SA', AceFlag.SuccessfulAccess],
  ['FA', AceFlag.FailedAccess],
];

/** ACE_FLAG_CODES as a lookup table. */
export const ACE_FLAG_TABLE: Readonly<Record<string, number>> = Object.fromEntries(ACE_FLAG_CODES);

/**
 * The ACE type strings we convert, with the ACL each belongs in. Windows refuses an audit
 * ACE in a DACL (Samba's "windows_is_fussy" tests); we hold every type to its own ACL.
 */
export const ACE_TYPE_CODES: Readonly<Record<string, { readonly type: number; readonly acl: AclKind }>> = {
  A: { type: AceType.AccessAllowed, acl: 'DACL' },
  D: { type: AceType.AccessDenied, acl: 'DACL' },
  OA: { type: AceType.AccessAllowedObject, acl: 'DACL' },
  OD: { type: AceType.AccessDeniedObject, acl: 'DACL' },
  AU: { type: AceType.SystemAudit, acl: 'SACL' },
  AL: { type: AceType.SystemAlarm, acl: 'SACL' },
  OU: { type: AceType.SystemAuditObject, acl: 'SACL' },
  OL: { type: AceType.SystemAlarmObject, acl: 'SACL' },
  ML: { type: AceType.SystemMandatoryLabel, acl: 'SACL' },
};

