import { expect } from 'chai';
import * as fs from 'node:fs';
import {
  createError,
  errorFromSerialized,
  ErrorCodes,
  InvalidArchiveError,
  isWinLayerError,
  layerFileError,
  shownEntry,
  toWinLayerError,
  UnsafePathError,
  type ErrorCode,
} from '../src/errors.js';

describe('errors', () => {
  it('docs/errors.md documents every code, with its class, and no removed code', () => {
    const doc = fs.readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
    const documented = new Map<string, string>();
    for (const m of doc.matchAll(/^\| `(ERR_[A-Z0-9_]+)` \| (\w+) \|/gm)) documented.set(m[1] as string, m[2] as string);
    expect([...documented.keys()].sort()).to.deep.equal(Object.keys(ErrorCodes).sort());
    for (const [code, cls] of Object.entries(ErrorCodes)) expect(documented.get(code), code).to.equal(cls);
  });

  it('a stored layer\'s file that fails: damage (missing, not a file, does not parse) is ERR_LAYER_CORRUPT, the system\'s failures ERR_IO with their errno', () => {
    const errno = (code: string): NodeJS.ErrnoException => Object.assign(new Error(`${code}: failed`), { code });
    const seen = (cause: unknown) => {
      const e = layerFileError(cause, 'l1: cannot open f', { path: 'l1' });
      return [e.code, e.data['errno'] ?? null, e.data['path']];
    };
    for (const code of ['ENOENT', 'ENOTDIR', 'EISDIR', 'ELOOP']) expect(seen(errno(code)), code).to.deep.equal(['ERR_LAYER_CORRUPT', code, 'l1']);
    expect(seen(new SyntaxError('Unexpected token'))).to.deep.equal(['ERR_LAYER_CORRUPT', null, 'l1']);
    for (const code of ['EACCES', 'EPERM', 'EMFILE', 'ENFILE', 'EIO', 'ENOMEM']) expect(seen(errno(code)), code).to.deep.equal(['ERR_IO', code, 'l1']);
    const own = createError('ERR_CANCELED', 'canceled');
    expect(layerFileError(own, 'x')).to.equal(own);
  });

  it('shortens a long entry name in a message between characters, never inside a surrogate pair', () => {
    for (const prefix of ['Files/', 'Files/a']) {
      const entry = prefix + '\u{1F600}'.repeat(127) + 'a';
      const message = createError('ERR_PATH_TOO_LONG', `${shownEntry(entry)}: too long`).message;
      expect(message.length, prefix).to.be.below(entry.length);
      expect(Buffer.from(message, 'utf8').toString('utf8'), prefix).to.equal(message); // no lone surrogate
      expect(message.startsWith(prefix), prefix).to.equal(true);
      expect(message.includes(`(${entry.length} characters)`), prefix).to.equal(true);
    }
    expect(shownEntry('Files/short')).to.equal('Files/short');
  });

  it('builds the class the table names, branded', () => {
    const e = createError('ERR_PATH_ESCAPE', 'x', { entry: 'Files/../a' });
    expect(e).to.be.instanceOf(UnsafePathError);
    expect(e.name).to.equal('UnsafePathError');
    expect(isWinLayerError(e)).to.equal(true);
    expect(isWinLayerError(new Error('plain'))).to.equal(false);
    expect(isWinLayerError(null)).to.equal(false);
  });

  it('survives a JSON round trip with the same class, code and data', () => {
    for (const code of Object.keys(ErrorCodes) as ErrorCode[]) {
      const e = createError(code, `message of ${code}`, { entry: 'Files/a', n: 3 });
      const back = errorFromSerialized(JSON.parse(JSON.stringify(e)));
      expect(back.code).to.equal(code);
      expect(back.name).to.equal(e.name);
      expect(back.message).to.equal(e.message);
      expect(back.data).to.deep.equal({ entry: 'Files/a', n: 3 });
    }
  });

  it('turns garbage into ERR_WORKER_PROTOCOL', () => {
    expect(errorFromSerialized('nope').code).to.equal('ERR_WORKER_PROTOCOL');
    expect(errorFromSerialized({ code: 'ERR_NOT_A_CODE', message: 'm' }).code).to.equal('ERR_WORKER_PROTOCOL');
  });

  it('wraps foreign errors as ERR_IO keeping errno and cause, and passes ours through', () => {
    const fsError = Object.assign(new Error('no space'), { code: 'ENOSPC' });
    const w = toWinLayerError(fsError, 'writing');
    expect(w.code).to.equal('ERR_IO');
    expect(w.data['errno']).to.equal('ENOSPC');
    expect(w.cause).to.equal(fsError);
    const ours = createError('ERR_TAR_TRUNCATED', 't');
    expect(toWinLayerError(ours, 'x')).to.equal(ours);
    expect(ours).to.be.instanceOf(InvalidArchiveError);
  });
});
