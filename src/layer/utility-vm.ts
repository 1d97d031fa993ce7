/**
 * UtilityVM facts. The four BCD files are rewritten by ProcessUtilityVMImage, so a
 * cloned UtilityVM must copy them rather than hard-link the parent's, and their tar
 * bytes are also kept as `<layer>/bcd*.bak` so a re-export can serve the original
 * bytes (moby's DiffGetter). Keys are full layer paths: the lookup hcsshim lost in 2018
 * compared paths relative to the layer root with keys relative to UtilityVM/Files.
 */

export const UTILITY_VM_FILES = 'UtilityVM/Files';

/** Mutated file → its backup file name in the layer directory. */
export const MUTATED_UTILITY_VM_FILES: ReadonlyMap<string, string> = new Map([
  ['UtilityVM/Files/EFI/Microsoft/Boot/BCD', 'bcd.bak'],
  ['UtilityVM/Files/EFI/Microsoft/Boot/BCD.LOG', 'bcd.log.bak'],
  ['UtilityVM/Files/EFI/Microsoft/Boot/BCD.LOG1', 'bcd.log1.bak'],
  ['UtilityVM/Files/EFI/Microsoft/Boot/BCD.LOG2', 'bcd.log2.bak'],
]);
