/**
 * The two lexical helpers every SDDL reader shares. Kept apart from sddl-grammar.ts, whose
 * tables need acl.ts, so that sid.ts and access-mask.ts do not close an import cycle
 * (acl → sid → grammar → acl) that breaks whichever module is loaded first.
 */
import { createError, type WinLayerError } from '../errors.js';

const SPACE = ' ';

/** Index of the first non-space character of `text` at or after `from`; tabs are not spaces to Windows. */
export function skipSpaces(text: string, from: number): number {
  let i = from;
  while (text[i] === SPACE) i++;
  return i;
}

/** The ERR_SDDL_INVALID error for a problem at `offset` of the whole SDDL string. */
export function sddlInvalid(offset: number, problem: string): WinLayerError {
  return createError('ERR_SDDL_INVALID', `SDDL at offset ${offset}: ${problem}`, { offset });
}
