/**
 * A one-line progress display on stderr for long imports and exports: bytes, entries,
 * rate, and a bar with a percentage when the total is known (stdin is a file). Drawn only
 * when stderr is a terminal, at most ten times a second; silent when piped, so scripts
 * and the --json contract never see it. Twenty lines of code do not justify a dependency.
 */
import type { ImportProgress } from '../convert/import-tar.js';

const REDRAW_MS = 100;
const BAR_WIDTH = 24;

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

export class ProgressLine {
  readonly #label: string;
  readonly #total: number | undefined;
  readonly #enabled: boolean;
  readonly #start = Date.now();
  #last = 0;
  #shown = false;
  #p: ImportProgress = { entries: 0, bytes: 0 };

  constructor(label: string, total: number | undefined, stream: NodeJS.WriteStream = process.stderr) {
    this.#label = label;
    this.#total = total !== undefined && total > 0 ? total : undefined;
    this.#enabled = stream.isTTY === true && process.env['CI'] === undefined;
  }

  update(p: ImportProgress): void {
    this.#p = p;
    if (!this.#enabled) return;
    const now = Date.now();
    if (now - this.#last < REDRAW_MS) return;
    this.#last = now;
    this.#draw();
  }

  #draw(): void {
    const secs = Math.max(0.001, (Date.now() - this.#start) / 1000);
    const rate = `${mib(this.#p.bytes / secs)}/s`;
    let bar = '';
    if (this.#total !== undefined) {
      const f = Math.min(1, this.#p.bytes / this.#total);
      const full = Math.round(f * BAR_WIDTH);
      bar = `[${'#'.repeat(full)}${'-'.repeat(BAR_WIDTH - full)}] ${(f * 100).toFixed(0).padStart(3)}% `;
    }
    process.stderr.write(`\r${this.#label} ${bar}${mib(this.#p.bytes)}, ${this.#p.entries} entries, ${rate}\x1b[K`);
    this.#shown = true;
  }

  /** Draws the final state. */
  done(): void {
    if (this.#enabled && this.#shown) this.#draw();
  }

  /** Ends the line (always call, also on failure). */
  stop(): void {
    if (this.#shown) process.stderr.write('\n');
    this.#shown = false;
  }
}
