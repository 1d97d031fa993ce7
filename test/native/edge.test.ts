/**
 * src/native/edge.ts: how a missing edge-js, runtime or DLL is reported (with stub edge-js
 * modules, so this runs everywhere), how helper failures map to codes, and — where the
 * helper runs — the C# side itself through the real bridge: its backup-stream parser
 * against the TypeScript one, its restore, its Win32 structure layouts, and its refusal of
 * Windows-only calls elsewhere.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BackupStreamId } from '../../src/backup/constants.js';
import { CRANE_SECURITY_DESCRIPTOR } from '../../src/convert/layer-tar-builder.js';
import { encodeBackupHeader, type BackupHeaderInput } from '../../src/backup/header.js';
import { parseBackupStreamBuffer } from '../../src/backup/parser.js';
import { createError, isWinLayerError, type WinLayerError } from '../../src/errors.js';
import { loadNativeHelper, nativeErrorFromThrown, NativeHelper, type NativeHelperOptions } from '../../src/native/edge.js';
import { filetimeFromUnixNs, unixNsFromFiletime, type FileBasicInfo } from '../../src/util/windows.js';
import { CHUNKINGS } from '../helpers/chunks.js';
import { cleanupTemp, tempDir } from '../helpers/store.js';
import { requireHelperOrSkip, skipNote } from './native-backends.js';

/** The code of what `fn` throws (sync). */
function thrownCode(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return isWinLayerError(e) ? e.code : `not a WinLayerError: ${String(e)}`;
  }
  return 'no error';
}

function thrown(fn: () => unknown): WinLayerError {
  try {
    fn();
  } catch (e) {
    if (isWinLayerError(e)) return e;
    throw e;
  }
  throw new Error('expected an error');
}

async function rejectedCode(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return isWinLayerError(e) ? e.code : `not a WinLayerError: ${String(e)}`;
  }
  return 'no error';
}

/** Every data value crosses the worker boundary as JSON: scalars only. */
function expectScalarData(e: WinLayerError): void {
  for (const [k, v] of Object.entries(e.data)) {
    expect(v === null || ['string', 'number', 'boolean'].includes(typeof v), `data.${k}`).to.equal(true);
  }
}

/**
 * Writes a stub edge-js module (CommonJS). `methods` maps a helper method name to the body
 * of `function (payload)`, whose return value is the result and whose throw is the error.
 */
function stubEdge(dir: string, name: string, source: string): string {
  const file = path.join(dir, `${name}.cjs`);
  fs.writeFileSync(file, source);
  return file;
}

function stubWithMethods(dir: string, name: string, methods: Record<string, string>): string {
  const table = Object.entries(methods)
    .map(([m, body]) => `${JSON.stringify(m)}: function (payload) { ${body} }`)
    .join(',\n');
  return stubEdge(
    dir,
    name,
    `const methods = {\n${table}\n};
module.exports = {
  func(options) {
    const m = methods[options.methodName];
    if (m === undefined) throw new Error('Unable to access the CLR method ' + options.methodName);
    return function (payload, callback) {
      if (callback === true) return m(payload);
      let result, error = null;
      try { result = m(payload); } catch (e) { error = e; }
      setImmediate(() => callback(error, result));
    };
  },
};\n`,
  );
}

const INFO_OK = `return { platform: 'unix', runtime: 'stub', protocol: 1, is64Bit: true, assemblyVersion: '0.0.0.0', openHandles: 0, fileApi: true };`;

/** What edge-js raises for a NativeError: the CLR exception's properties on an Error. */
const EDGE_ERROR = (props: Record<string, unknown>): string =>
  `const e = new Error(${JSON.stringify(String(props.message ?? 'failed'))}); Object.assign(e, ${JSON.stringify(props)}); e.name = 'WinLayer.Native.NativeError'; throw e;`;

describe('native/edge: reaching the helper', () => {
  let dir: string;
  let dll: string;
  before(() => {
    dir = tempDir('winlayer-edge-stub-');
    dll = path.join(dir, 'WinLayer.Native.dll');
    fs.writeFileSync(dll, 'not really an assembly: the stubs never read it');
  });
  after(cleanupTemp);

  const load = (options: NativeHelperOptions): WinLayerError => thrown(() => loadNativeHelper({ env: {}, ...options }));

  const cases: { title: string; options: () => NativeHelperOptions; reason: string }[] = [
    { title: 'edge-js is not installed', options: () => ({ edgeModule: 'winlayer-no-such-edge-module', assemblyFile: dll }), reason: 'edge-js-missing' },
    { title: 'the helper DLL is not built', options: () => ({ edgeModule: stubWithMethods(dir, 'never-loaded', {}), assemblyFile: path.join(dir, 'missing.dll') }), reason: 'assembly-missing' },
    { title: 'EDGE_USE_CORECLR selects .NET Core', options: () => ({ env: { EDGE_USE_CORECLR: '1' }, assemblyFile: dll }), reason: 'coreclr-selected' },
    {
      title: "edge-js's native addon cannot load its runtime",
      options: () => ({
        edgeModule: stubEdge(dir, 'addon-fails', `throw new Error('libmonosgen-2.0.so.1: cannot open shared object file: No such file or directory');`),
        assemblyFile: dll,
      }),
      reason: 'runtime-missing',
    },
    {
      title: 'edge-js loads but is not edge-js',
      options: () => ({ edgeModule: stubEdge(dir, 'not-edge', 'module.exports = {};'), assemblyFile: dll }),
      reason: 'runtime-missing',
    },
    {
      title: 'the DLL has no helper type',
      options: () => ({ edgeModule: stubWithMethods(dir, 'no-type', {}), assemblyFile: dll }),
      reason: 'assembly-invalid',
    },
    {
      title: 'the helper fails its first call',
      options: () => ({ edgeModule: stubWithMethods(dir, 'info-throws', { Info: `throw new Error('Invalid Image');` }), assemblyFile: dll }),
      reason: 'assembly-invalid',
    },
    {
      title: 'the helper speaks another protocol',
      options: () => ({ edgeModule: stubWithMethods(dir, 'protocol-2', { Info: INFO_OK.replace('protocol: 1', 'protocol: 2') }), assemblyFile: dll }),
      reason: 'protocol-mismatch',
    },
    {
      title: "the runtime's file API does not work in this process",
      options: () => ({ edgeModule: stubWithMethods(dir, 'no-file-api', { Info: INFO_OK.replace('fileApi: true', 'fileApi: false') }), assemblyFile: dll }),
      reason: 'runtime-missing',
    },
  ];
  for (const c of cases) {
    it(`reports ERR_NATIVE_UNAVAILABLE (${c.reason}) when ${c.title}`, () => {
      const e = load(c.options());
      expect({ code: e.code, name: e.name, reason: e.data.reason }).to.deep.equal({ code: 'ERR_NATIVE_UNAVAILABLE', name: 'NativeHelperError', reason: c.reason });
      expectScalarData(e);
    });
  }

  it('reports ERR_NATIVE_UNAVAILABLE (runtime-missing) when edge-js, built without Mono, falls back to .NET Core', () => {
    const before = process.env.EDGE_USE_CORECLR;
    if (before !== undefined) return;
    try {
      // What edge-js does when only its CoreCLR addon exists: it sets the variable as it loads.
      const edgeModule = stubEdge(dir, 'coreclr-fallback', `process.env.EDGE_USE_CORECLR = '1'; module.exports = { func() { throw new Error('no dotnet'); } };`);
      const e = thrown(() => loadNativeHelper({ edgeModule, assemblyFile: dll }));
      expect({ code: e.code, reason: e.data.reason }).to.deep.equal({ code: 'ERR_NATIVE_UNAVAILABLE', reason: 'runtime-missing' });
    } finally {
      delete process.env.EDGE_USE_CORECLR;
    }
  });

  it('loads a helper that answers, once per module and assembly', () => {
    const options = { edgeModule: stubWithMethods(dir, 'answers', { Info: INFO_OK }), assemblyFile: dll, env: {} };
    const helper = loadNativeHelper(options);
    expect(helper).to.be.instanceOf(NativeHelper);
    expect(loadNativeHelper(options)).to.equal(helper);
  });

  it('turns failures inside calls into typed errors, synchronous and asynchronous alike', async () => {
    const helper = loadNativeHelper({
      env: {},
      assemblyFile: dll,
      edgeModule: stubWithMethods(dir, 'failing-calls', {
        Info: INFO_OK,
        RestoreWrite: EDGE_ERROR({ Code: 'ERR_BACKUP_STREAM_TRUNCATED', Operation: 'BackupStreamParser', Win32Error: 87, HResult: -2147024809 }),
        RestoreCreate: EDGE_ERROR({ Code: 'ERR_NATIVE_CALL_FAILED', Operation: 'CreateFileW', Win32Error: 5, HResult: -2147024891 }),
        ImportLayer: EDGE_ERROR({ Code: 'ERR_NATIVE_CALL_FAILED', Operation: 'ImportLayer', Win32Error: 0, HResult: -1070137086 }),
        ActivateLayer: EDGE_ERROR({ Code: 'ERR_UNSUPPORTED_PLATFORM', Operation: 'ActivateLayer', Win32Error: 50, HResult: -2147024846 }),
        Noop: `throw new TypeError('cannot marshal a bigint');`,
      }),
    });
    expect(thrownCode(() => helper.restoreWrite(1, Buffer.from('x')))).to.equal('ERR_BACKUP_STREAM_TRUNCATED');
    const denied = thrown(() => helper.restoreCreate('/x', 'Hives/x', false));
    expect({ code: denied.code, win32Error: denied.data.win32Error, operation: denied.data.operation, method: denied.data.method }).to.deep.equal({
      code: 'ERR_NATIVE_CALL_FAILED',
      win32Error: 5,
      operation: 'CreateFileW',
      method: 'RestoreCreate',
    });
    expect(thrownCode(() => helper.noop())).to.equal('ERR_NATIVE_CALL_FAILED');
    expect(await rejectedCode(helper.importLayer('C:\\l', 'C:\\in', []))).to.equal('ERR_NATIVE_CALL_FAILED');
    expect(await rejectedCode(helper.activateLayer('C:\\l'))).to.equal('ERR_UNSUPPORTED_PLATFORM');
    const unknownMethod = thrown(() => helper.describeLayerDescriptors([]));
    expect({ code: unknownMethod.code, reason: unknownMethod.data.reason }).to.deep.equal({ code: 'ERR_NATIVE_UNAVAILABLE', reason: 'assembly-invalid' });
  });
});

describe('native/edge: error mapping', () => {
  const edgeError = (props: Record<string, unknown>): Error => Object.assign(new Error(String(props.message ?? 'failed')), { name: 'WinLayer.Native.NativeError' }, props);
  const cases: { title: string; thrown: unknown; code: string; win32Error?: number | null; errno?: string | undefined; entry?: string }[] = [
    { title: 'a truncated stream keeps its code', thrown: edgeError({ Code: 'ERR_BACKUP_STREAM_TRUNCATED', Win32Error: 87 }), code: 'ERR_BACKUP_STREAM_TRUNCATED', win32Error: 87 },
    { title: 'an unknown stream id keeps its code', thrown: edgeError({ Code: 'ERR_BACKUP_STREAM_ID_UNKNOWN' }), code: 'ERR_BACKUP_STREAM_ID_UNKNOWN' },
    { title: 'a sparse stream keeps its code', thrown: edgeError({ Code: 'ERR_SPARSE_UNSUPPORTED' }), code: 'ERR_SPARSE_UNSUPPORTED' },
    { title: 'a Windows-only call keeps its code', thrown: edgeError({ Code: 'ERR_UNSUPPORTED_PLATFORM', Win32Error: 50 }), code: 'ERR_UNSUPPORTED_PLATFORM', win32Error: 50 },
    { title: 'a bad argument keeps its code', thrown: edgeError({ Code: 'ERR_ARGUMENT_INVALID' }), code: 'ERR_ARGUMENT_INVALID' },
    { title: 'a Win32 failure carries its code', thrown: edgeError({ Code: 'ERR_NATIVE_CALL_FAILED', Win32Error: 32, HResult: -2147024864 }), code: 'ERR_NATIVE_CALL_FAILED', win32Error: 32 },
    { title: 'a full disk the helper met writing a file (Mono: ERROR_HANDLE_DISK_FULL)', thrown: edgeError({ Code: 'ERR_IO', Win32Error: 39, Entry: 'Hives/x' }), code: 'ERR_IO', win32Error: 39, errno: 'ENOSPC', entry: 'Hives/x' },
    { title: 'a full disk a Win32 call reported (BackupWrite: ERROR_DISK_FULL)', thrown: edgeError({ Code: 'ERR_NATIVE_CALL_FAILED', Win32Error: 112 }), code: 'ERR_IO', win32Error: 112, errno: 'ENOSPC' },
    { title: 'a file too large (ERROR_FILE_TOO_LARGE)', thrown: edgeError({ Code: 'ERR_NATIVE_CALL_FAILED', Win32Error: 223 }), code: 'ERR_IO', win32Error: 223, errno: 'EFBIG' },
    { title: 'an OS error of the helper\'s own write that tells no errno', thrown: edgeError({ Code: 'ERR_IO', Win32Error: 50, Entry: 'Hives/x' }), code: 'ERR_IO', win32Error: 50, errno: undefined, entry: 'Hives/x' },
    { title: 'a code the helper may not assign', thrown: edgeError({ Code: 'ERR_LAYER_NOT_FOUND' }), code: 'ERR_NATIVE_CALL_FAILED' },
    { title: 'a code that is not ours', thrown: edgeError({ Code: 'ERR_SOMETHING_ELSE' }), code: 'ERR_NATIVE_CALL_FAILED' },
    { title: 'a CLR exception of another type', thrown: edgeError({ name: 'System.NullReferenceException' }), code: 'ERR_NATIVE_CALL_FAILED', win32Error: null },
    { title: 'a JavaScript error from edge-js itself', thrown: new TypeError('bad payload'), code: 'ERR_NATIVE_CALL_FAILED' },
    { title: 'a thrown string', thrown: 'boom', code: 'ERR_NATIVE_CALL_FAILED' },
    { title: 'null', thrown: null, code: 'ERR_NATIVE_CALL_FAILED' },
  ];
  for (const c of cases) {
    it(`${c.title}: ${c.code}`, () => {
      const e = nativeErrorFromThrown('RestoreWrite', c.thrown);
      expect(e.code).to.equal(c.code);
      expect(e.data.method).to.equal('RestoreWrite');
      if (c.win32Error !== undefined) expect(e.data.win32Error).to.equal(c.win32Error);
      if ('errno' in c) expect(e.data['errno']).to.equal(c.errno);
      expect(e.data['entry']).to.equal(c.entry);
      expectScalarData(e);
      expect(() => JSON.parse(JSON.stringify(e.toJSON()))).not.to.throw();
    });
  }

  it('passes a WinLayerError through unchanged', () => {
    const original = createError('ERR_CANCELED', 'stop');
    expect(nativeErrorFromThrown('Noop', original)).to.equal(original);
  });
});

// ---- the real helper, through edge-js ----

const onUnix = process.platform !== 'win32';
const T = (seconds: bigint): bigint => filetimeFromUnixNs(seconds * 1_000_000_000n + 123_456_700n);

/** A stream with every kind of sub-stream the restore distinguishes. */
const sampleStream: { header: BackupHeaderInput; payload: Buffer }[] = [
  { header: { id: BackupStreamId.SecurityData, size: 4, attributes: 2 }, payload: Buffer.from([1, 0, 4, 0x80]) },
  { header: { id: BackupStreamId.EaData, size: 12 }, payload: Buffer.from('000000000003000041424300', 'hex') },
  { header: { id: BackupStreamId.Data, size: 11 }, payload: Buffer.from('hello world') },
  { header: { id: BackupStreamId.AlternateData, size: 3, name: ':ads.txt:$DATA' }, payload: Buffer.from('xyz') },
  { header: { id: BackupStreamId.AlternateData, size: 0, name: ':empty 𝄞:$DATA' }, payload: Buffer.alloc(0) },
  { header: { id: BackupStreamId.ObjectId, size: 2 }, payload: Buffer.from([9, 9]) },
];

/** What a restore is given: sub-streams BackupWrite accepts on Windows too (a real SD, a valid EA set). */
const restoreStream: { header: BackupHeaderInput; payload: Buffer }[] = [
  { header: { id: BackupStreamId.SecurityData, size: CRANE_SECURITY_DESCRIPTOR.length, attributes: 2 }, payload: CRANE_SECURITY_DESCRIPTOR },
  { header: { id: BackupStreamId.EaData, size: 12 }, payload: Buffer.from('000000000003000041424300', 'hex') },
  { header: { id: BackupStreamId.Data, size: 11 }, payload: Buffer.from('hello world') },
  { header: { id: BackupStreamId.AlternateData, size: 3, name: ':ads.txt:$DATA' }, payload: Buffer.from('xyz') },
  { header: { id: BackupStreamId.AlternateData, size: 0, name: ':empty 𝄞:$DATA' }, payload: Buffer.alloc(0) },
];

function encodeStream(parts: readonly { header: BackupHeaderInput; payload: Buffer }[]): Buffer {
  return Buffer.concat(parts.flatMap((p) => [encodeBackupHeader(p.header), p.payload]));
}

/** The TypeScript parser's verdict: headers, or an error code. */
function tsParse(buf: Buffer): { headers: unknown[] } | { code: string } {
  try {
    return { headers: parseBackupStreamBuffer(buf).map((r) => ({ ...r.header, encoded: encodeBackupHeader(r.header).toString('hex') })) };
  } catch (e) {
    return { code: isWinLayerError(e) ? e.code : String(e) };
  }
}

function csParse(helper: NativeHelper, buf: Buffer, chunkSize?: number): { headers: unknown[] } | { code: string } {
  try {
    const r = helper.parseBackupStream(buf, chunkSize === undefined ? {} : { chunkSize });
    return { headers: r.streams.map((s) => ({ id: s.id, attributes: s.attributes, size: s.size, name: s.name, offset: s.offset, encoded: s.encoded.toString('hex') })) };
  } catch (e) {
    return { code: isWinLayerError(e) ? e.code : String(e) };
  }
}

describe(`native/edge: the C# helper through edge-js${skipNote()}`, function () {
  this.timeout(60_000);
  let helper: NativeHelper;
  before(function () {
    helper = requireHelperOrSkip(this);
    // Restoring security descriptors and opening with ACCESS_SYSTEM_SECURITY need them on Windows.
    if (helper.info().platform === 'windows') helper.enablePrivileges();
  });
  after(cleanupTemp);

  it('reports its platform, runtime and protocol, with a working file API', () => {
    const info = helper.info();
    expect({ platform: info.platform, protocol: info.protocol, fileApi: info.fileApi }).to.deep.equal({
      platform: process.platform === 'win32' ? 'windows' : 'unix',
      protocol: 1,
      fileApi: true,
    });
  });

  it('round-trips buffers, strings and numbers through the CLR', () => {
    const payload = { buf: Buffer.from([0, 1, 254, 255]), empty: Buffer.alloc(0), text: 'Ünïcødé 𝄞 名前', n: 42, big: 2 ** 52 + 1, neg: -7, list: [1, 'two'] };
    expect(helper.echo(payload)).to.deep.equal(payload);
  });

  describe('its backup-stream parser agrees with the TypeScript one', () => {
    const vectors: { title: string; bytes: Buffer }[] = [
      { title: 'FORMATS.md §1.1: an unnamed DATA stream holding hello', bytes: Buffer.from('01000000000000000500000000000000000000006865' + '6c6c6f', 'hex') },
      { title: 'every kind of sub-stream, with names', bytes: encodeStream(sampleStream) },
      {
        title: 'sparse blocks, whose size counts an 8-byte offset',
        bytes: encodeStream([
          { header: { id: BackupStreamId.Data, size: 0, attributes: 8 }, payload: Buffer.alloc(0) },
          { header: { id: BackupStreamId.SparseBlock, size: 3, offset: 4096, attributes: 8 }, payload: Buffer.from('abc') },
          { header: { id: BackupStreamId.SparseBlock, size: 0, offset: 1 << 20, attributes: 8 }, payload: Buffer.alloc(0) },
        ]),
      },
      { title: 'an empty stream', bytes: Buffer.alloc(0) },
    ];
    for (const v of vectors) {
      for (const c of CHUNKINGS) {
        it(`${v.title}, fed ${c.title}`, () => {
          const want = tsParse(v.bytes);
          expect(want).to.have.property('headers');
          expect(csParse(helper, v.bytes, Number.isFinite(c.size) ? c.size : undefined)).to.deep.equal(want);
        });
      }
    }

    it('a stream cut anywhere inside a sub-stream is ERR_BACKUP_STREAM_TRUNCATED, as in TypeScript', () => {
      const whole = encodeStream(sampleStream);
      for (let cut = 1; cut < whole.length; cut++) {
        const part = whole.subarray(0, cut);
        const want = tsParse(part);
        expect(csParse(helper, part), `cut at ${cut}`).to.deep.equal(want);
      }
      expect(csParse(helper, whole.subarray(0, 25))).to.deep.equal({ code: 'ERR_BACKUP_STREAM_TRUNCATED' });
    });

    const header = (id: number, size: number | bigint, nameSize: number, extra = Buffer.alloc(0)): Buffer => {
      const b = Buffer.alloc(20);
      b.writeUInt32LE(id, 0);
      b.writeBigUInt64LE(BigInt(size), 8);
      b.writeUInt32LE(nameSize, 16);
      return Buffer.concat([b, extra]);
    };
    const bad: { title: string; bytes: Buffer; code: string }[] = [
      { title: 'stream id 0', bytes: header(0, 0, 0), code: 'ERR_BACKUP_STREAM_ID_UNKNOWN' },
      { title: 'stream id 12', bytes: header(12, 0, 0), code: 'ERR_BACKUP_STREAM_ID_UNKNOWN' },
      { title: 'an odd name size', bytes: header(4, 0, 3, Buffer.alloc(3)), code: 'ERR_BACKUP_STREAM_INVALID' },
      { title: 'a name over 1024 bytes', bytes: header(4, 0, 1026, Buffer.alloc(1026, 0x41)), code: 'ERR_METADATA_TOO_LARGE' },
      { title: 'a NUL in a name', bytes: header(4, 0, 4, Buffer.from([0x41, 0, 0, 0])), code: 'ERR_BACKUP_STREAM_INVALID' },
      { title: 'a security descriptor over 64 KiB', bytes: header(3, 65537, 0), code: 'ERR_METADATA_TOO_LARGE' },
      { title: 'reparse data over 16 KiB', bytes: header(8, 16385, 0), code: 'ERR_METADATA_TOO_LARGE' },
      { title: 'a sparse block too small for its offset', bytes: header(9, 7, 0), code: 'ERR_BACKUP_STREAM_INVALID' },
      { title: 'a negative sparse offset', bytes: header(9, 8, 0, Buffer.from('ffffffffffffffff', 'hex')), code: 'ERR_BACKUP_STREAM_INVALID' },
      { title: 'a size past 2^53', bytes: header(1, 2n ** 53n, 0), code: 'ERR_BACKUP_STREAM_INVALID' },
    ];
    for (const b of bad) {
      it(`rejects ${b.title} with ${b.code}, as TypeScript does`, () => {
        expect(tsParse(b.bytes)).to.deep.equal({ code: b.code });
        expect(csParse(helper, b.bytes)).to.deep.equal({ code: b.code });
      });
    }

    it('gives the same verdict as TypeScript on the mutated streams random runs have found', () => {
      const found: [number[], number][] = [
        [
          [3,0,0,0,2,0,0,0,4,0,0,0,0,0,0,0,0,0,0,0,1,0,4,128,2,0,0,0,0,0,0,0,12,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,3,0,0,65,66,67,0,1,0,0,0,0,0,0,0,11,0,0,0,0,0,0,0,0,0,0,0,104,101,108,108,111,32,119,111,114,108,100,4,0,0,0,0,0,0,0,3,0,0,0,0,0,0,0,28,0,0,0,58,0,97,0,100,0,115,0,46,0,116,0,120,0,116,0,58,0,36,0,68,0,65,0,84,0,65,0,120,121,122,4,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,30,0,0,0,58,0,101,0,109,0,112,0,116,0,121,0,32,0,52,216,30,221,58,0,36,0,68,0,65,0,84,0,65,216],
          1,
        ],
      ];
      for (const [bytes, chunk] of found) expect(csParse(helper, Buffer.from(bytes), chunk)).to.deep.equal(tsParse(Buffer.from(bytes)));
    });

    it('gives the same verdict as TypeScript on random and mutated streams', () => {
      const valid = encodeStream(sampleStream);
      const mutated = fc
        .tuple(fc.integer({ min: 0, max: valid.length - 1 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: valid.length }))
        .map(([at, byte, cut]) => {
          const b = Buffer.from(valid);
          b[at] = byte;
          return b.subarray(0, Math.max(cut, at + 1));
        });
      fc.assert(
        fc.property(fc.oneof(fc.uint8Array({ maxLength: 120 }).map((u) => Buffer.from(u)), mutated), fc.integer({ min: 1, max: 40 }), (bytes, chunk) => {
          expect(csParse(helper, bytes, chunk)).to.deep.equal(tsParse(bytes));
        }),
        { numRuns: 300 },
      );
    });
  });

  describe('restore', () => {
    const info: FileBasicInfo = { creationTime: T(1_000_000_000n), lastAccessTime: T(1_600_000_000n), lastWriteTime: T(1_700_000_000n), changeTime: T(1_650_000_000n), fileAttributes: 0x20 };

    it('writes the data stream into the file and holds none of the other sub-streams (the layer writer keeps them)', () => {
      const dir = tempDir();
      const file = path.join(dir, 'System_Delta');
      const bytes = encodeStream(restoreStream);
      const handle = helper.restoreCreate(file, 'UtilityVM/Files/kernel', true);
      const cuts = [0, 7, 30, 31, 90, bytes.length];
      for (let i = 0; i + 1 < cuts.length; i++) helper.restoreWrite(handle, bytes.subarray(cuts[i], cuts[i + 1]));
      const done = helper.restoreFinish(handle, info);
      expect(done.dataSize).to.equal(11);
      // Nothing else comes back: the layer writer keeps the other sub-streams from its own parse.
      expect(done).to.deep.equal({ dataSize: 11 });
      if (onUnix) expect(fs.readFileSync(file, 'utf8')).to.equal('hello world');
      expect(Math.trunc(fs.statSync(file).mtimeMs)).to.equal(Number(unixNsFromFiletime(info.lastWriteTime) / 1_000_000n));
      expect(helper.info().openHandles).to.equal(0);
    });

    it('gives the host a time before 1970 with a fraction of a second as the whole second before it (Mono refuses the fraction)', () => {
      for (const ns of [-500_000_000n, -631_151_999_876_543_300n]) {
        const file = path.join(tempDir(), 'old');
        const handle = helper.restoreCreate(file, 'Hives/old', false);
        helper.restoreWrite(handle, encodeStream(restoreStream));
        const t = filetimeFromUnixNs(ns);
        expect(helper.restoreFinish(handle, { ...info, lastWriteTime: t, lastAccessTime: t }).dataSize).to.equal(11);
        const whole = ns / 1_000_000_000n - (ns % 1_000_000_000n === 0n ? 0n : 1n);
        if (onUnix) expect(fs.statSync(file, { bigint: true }).mtimeNs, String(ns)).to.equal(whole * 1_000_000_000n);
        expect(helper.info().openHandles).to.equal(0);
      }
    });

    it('reports a stream that ends inside a sub-stream with ERR_BACKUP_STREAM_TRUNCATED and closes the file', () => {
      const file = path.join(tempDir(), 'f');
      const handle = helper.restoreCreate(file, 'UtilityVM/Files/f', true);
      helper.restoreWrite(handle, encodeStream(restoreStream).subarray(0, 90));
      expect(thrownCode(() => helper.restoreFinish(handle, info))).to.equal('ERR_BACKUP_STREAM_TRUNCATED');
      expect(helper.info().openHandles).to.equal(0);
      expect(thrownCode(() => helper.restoreFinish(handle, info))).to.equal('ERR_ARGUMENT_INVALID');
    });

    it('rejects a malformed header as it arrives, and closes the file', () => {
      const handle = helper.restoreCreate(path.join(tempDir(), 'f'), 'Hives/f', false);
      expect(thrownCode(() => helper.restoreWrite(handle, Buffer.alloc(20, 0xff)))).to.equal('ERR_BACKUP_STREAM_ID_UNKNOWN');
      expect(helper.info().openHandles).to.equal(0);
    });

    (onUnix ? it : it.skip)('refuses sparse blocks off Windows with ERR_SPARSE_UNSUPPORTED, as the portable writer does', () => {
      const handle = helper.restoreCreate(path.join(tempDir(), 'f'), 'Hives/f', false);
      const sparse = encodeStream([{ header: { id: BackupStreamId.SparseBlock, size: 1, offset: 0 }, payload: Buffer.from('a') }]);
      expect(thrownCode(() => helper.restoreWrite(handle, sparse))).to.equal('ERR_SPARSE_UNSUPPORTED');
      expect(helper.info().openHandles).to.equal(0);
    });

    it('restores a directory the caller made: its times set, nothing written into it', () => {
      const dir = path.join(tempDir(), 'Windows');
      fs.mkdirSync(dir);
      const dirStream = restoreStream.filter((p) => p.header.id !== BackupStreamId.Data);
      const handle = helper.restoreCreate(dir, 'Files/Windows', true, true);
      helper.restoreWrite(handle, encodeStream(dirStream));
      const done = helper.restoreFinish(handle, { ...info, fileAttributes: 0x10 });
      expect(done.dataSize).to.equal(0);
      expect(done).to.deep.equal({ dataSize: 0 });
      expect(fs.readdirSync(dir)).to.deep.equal([]);
      expect(Math.trunc(fs.statSync(dir).mtimeMs)).to.equal(Number(unixNsFromFiletime(info.lastWriteTime) / 1_000_000n));
      expect(helper.info().openHandles).to.equal(0);
    });

    (onUnix ? it : it.skip)('refuses a data stream on a directory with ERR_BACKUP_STREAM_INVALID, and closes it', () => {
      const dir = tempDir();
      const handle = helper.restoreCreate(dir, 'Files/d', true, true);
      expect(thrownCode(() => helper.restoreWrite(handle, encodeStream(restoreStream)))).to.equal('ERR_BACKUP_STREAM_INVALID');
      expect(helper.info().openHandles).to.equal(0);
    });

    it('restores a directory only where a directory is: a file or a missing path is refused', () => {
      const file = path.join(tempDir(), 'plain');
      fs.writeFileSync(file, 'keep');
      expect(thrownCode(() => helper.restoreCreate(file, 'Files/plain', true, true))).to.be.oneOf(['ERR_ARGUMENT_INVALID', 'ERR_NATIVE_CALL_FAILED']);
      // Off Windows the helper opens it itself: an OS error, ERR_IO with its errno and entry.
      const missing = thrown(() => helper.restoreCreate(path.join(tempDir(), 'missing'), 'Files/missing', true, true));
      if (onUnix) expect([missing.code, missing.data['errno'], missing.data['entry']]).to.deep.equal(['ERR_IO', 'ENOENT', 'Files/missing']);
      else expect(missing.code).to.be.oneOf(['ERR_ARGUMENT_INVALID', 'ERR_NATIVE_CALL_FAILED']);
      if (onUnix) {
        // A symbolic link planted where the directory should be is not followed.
        const link = path.join(tempDir(), 'link');
        fs.symlinkSync(tempDir(), link);
        expect(thrownCode(() => helper.restoreCreate(link, 'Files/link', true, true))).to.equal('ERR_ARGUMENT_INVALID');
      }
      expect(fs.readFileSync(file, 'utf8')).to.equal('keep');
      expect(helper.info().openHandles).to.equal(0);
    });

    it('never replaces an existing file', () => {
      const file = path.join(tempDir(), 'exists');
      fs.writeFileSync(file, 'keep');
      const e = thrown(() => helper.restoreCreate(file, 'Hives/exists', false));
      if (onUnix) expect([e.code, e.data['errno'], e.data['entry']]).to.deep.equal(['ERR_IO', 'EEXIST', 'Hives/exists']);
      else expect(e.code).to.equal('ERR_NATIVE_CALL_FAILED');
      expect(fs.readFileSync(file, 'utf8')).to.equal('keep');
    });

    it('rejects a handle that is not open, and bad arguments, with ERR_ARGUMENT_INVALID', () => {
      expect(thrownCode(() => helper.restoreWrite(987654, Buffer.from('x')))).to.equal('ERR_ARGUMENT_INVALID');
      expect(thrownCode(() => helper.restoreFinish(987654, info))).to.equal('ERR_ARGUMENT_INVALID');
      expect(thrownCode(() => helper.restoreWrite(Number.NaN, Buffer.from('x')))).to.equal('ERR_ARGUMENT_INVALID');
      helper.restoreAbort(987654);
      helper.closeHandle(987654);
    });
  });

  describe('file calls', () => {
    it('reads a file back as a backup stream', () => {
      const dir = tempDir();
      const file = path.join(dir, 'data.bin');
      const data = Buffer.from(Array.from({ length: 100_000 }, (_, i) => i % 253));
      fs.writeFileSync(file, data);
      const handle = helper.backupReadOpen(file, false);
      const parts: Buffer[] = [];
      for (let chunk = helper.backupReadChunk(handle, 4096); chunk.length > 0; chunk = helper.backupReadChunk(handle, 4096)) parts.push(chunk);
      helper.closeHandle(handle);
      const records = parseBackupStreamBuffer(Buffer.concat(parts));
      const dataRecord = records.find((r) => r.header.id === BackupStreamId.Data);
      expect(dataRecord?.payload.equals(data)).to.equal(true);
      expect(helper.info().openHandles).to.equal(0);
    });

    it('sets and gets the last write and access times', () => {
      const file = path.join(tempDir(), 'timed');
      fs.writeFileSync(file, 'x');
      const want: FileBasicInfo = { creationTime: T(1_500_000_000n), lastAccessTime: T(1_600_000_000n), lastWriteTime: T(1_700_000_000n), changeTime: T(1_700_000_001n), fileAttributes: 0x20 };
      helper.setFileBasicInfo(file, want);
      const got = helper.getFileBasicInfo(file);
      // POSIX file systems keep microseconds through this API; Windows keeps all four exactly.
      const us = (t: bigint): bigint => t / 10n;
      expect(us(got.lastWriteTime)).to.equal(us(want.lastWriteTime));
      expect(us(got.lastAccessTime)).to.equal(us(want.lastAccessTime));
    });

    it('makes hard links', () => {
      const dir = tempDir();
      fs.writeFileSync(path.join(dir, 'a'), 'a');
      helper.createHardLink(path.join(dir, 'b'), path.join(dir, 'a'));
      expect(fs.statSync(path.join(dir, 'b')).ino).to.equal(fs.statSync(path.join(dir, 'a')).ino);
      expect(thrownCode(() => helper.createHardLink(path.join(dir, 'b'), path.join(dir, 'a')))).to.equal('ERR_NATIVE_CALL_FAILED');
    });
  });

  describe('Win32 structures, as marshalled', () => {
    it('lays out WC_LAYER_DESCRIPTOR, DriverInfo and FILE_BASIC_INFO as the C declarations do', () => {
      const layers = [
        { path: 'C:\\ProgramData\\docker\\windowsfilter\\abc', id: '0b0c0d0e-0102-0304-0506-0708090a0b0c', flags: 0 },
        { path: 'C:\\long\\Ünïcødé 𝄞', id: 'ffffffff-0000-1111-2222-333333333333', flags: 0x80000000 },
      ];
      const r = helper.describeLayerDescriptors(layers);
      const is64 = helper.info().is64Bit;
      expect({ ...r, layers: undefined }).to.deep.equal({
        stride: is64 ? 32 : 24,
        layerIdOffset: 0,
        flagsOffset: 16,
        pathOffset: is64 ? 24 : 20,
        driverInfoSize: is64 ? 16 : 8,
        fileBasicInfoSize: 40,
        layers: undefined,
      });
      expect(r.layers).to.deep.equal([
        { id: layers[0]?.id, idBytes: '0e0d0c0b0201040305060708090a0b0c', flags: 0, path: layers[0]?.path },
        { id: layers[1]?.id, idBytes: 'ffffffff000011112222333333333333', flags: 0x80000000, path: layers[1]?.path },
      ]);
    });
  });

  (onUnix ? describe : describe.skip)('Windows-only calls elsewhere', () => {
    const calls: [string, (h: NativeHelper) => Promise<unknown>][] = [
      ['ActivateLayer', (h) => h.activateLayer('/l')],
      ['DeactivateLayer', (h) => h.deactivateLayer('/l')],
      ['CreateLayer', (h) => h.createLayer('/l', '/p')],
      ['CreateSandboxLayer', (h) => h.createSandboxLayer('/l', ['/p'])],
      ['ExpandSandboxSize', (h) => h.expandSandboxSize('/l', 127n * 1024n ** 3n)],
      ['DestroyLayer', (h) => h.destroyLayer('/l')],
      ['ImportLayer', (h) => h.importLayer('/l', '/in', ['/p'])],
      ['ExportLayer', (h) => h.exportLayer('/l', '/out', ['/p'])],
      ['PrepareLayer', (h) => h.prepareLayer('/l', ['/p'])],
      ['UnprepareLayer', (h) => h.unprepareLayer('/l')],
      ['GetLayerMountPath', (h) => h.getLayerMountPath('/l')],
      ['LayerExists', (h) => h.layerExists('/l')],
      ['NameToGuid', (h) => h.nameToGuid('l')],
      ['ProcessBaseImage', (h) => h.processBaseImage('/l')],
      ['ProcessUtilityImage', (h) => h.processUtilityImage('/l/UtilityVM')],
    ];
    for (const [name, call] of calls) {
      it(`${name} reports ERR_UNSUPPORTED_PLATFORM with Win32 code ERROR_NOT_SUPPORTED`, async () => {
        let error: unknown;
        await call(helper).catch((e: unknown) => (error = e));
        expect(isWinLayerError(error)).to.equal(true);
        const e = error as WinLayerError;
        expect({ code: e.code, win32Error: e.data.win32Error }).to.deep.equal({ code: 'ERR_UNSUPPORTED_PLATFORM', win32Error: 50 });
      });
    }

    it('EnablePrivileges reports ERR_UNSUPPORTED_PLATFORM', () => {
      expect(thrownCode(() => helper.enablePrivileges())).to.equal('ERR_UNSUPPORTED_PLATFORM');
    });
  });
});
