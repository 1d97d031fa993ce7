// A push parser for Win32 backup streams (WIN32_STREAM_ID framing, FORMATS.md §1), the
// same rules as src/backup/parser.ts: a 20-byte header (u32 id, u32 attributes, u64 size,
// u32 name size), a UTF-16LE name, then the payload; a SPARSE_BLOCK's size counts an
// 8-byte offset that starts its payload. Payload is never buffered: it is handed to the
// sink as it arrives, so memory stays bounded whatever the stream holds.
//
// Every header also keeps its bytes exactly as they arrived (header, name and, for a
// sparse block, the offset), so a sub-stream can be handed back to the caller re-encoded
// byte for byte.
using System;

namespace WinLayer.Native
{
    /// <summary>Stream ids (winbase.h BACKUP_*).</summary>
    public static class BackupStreamId
    {
        public const int Data = 1;
        public const int EaData = 2;
        public const int SecurityData = 3;
        public const int AlternateData = 4;
        public const int Link = 5;
        public const int PropertyData = 6;
        public const int ObjectId = 7;
        public const int ReparseData = 8;
        public const int SparseBlock = 9;
        public const int TxfsData = 10;
        public const int GhostedFileExtents = 11;

        public static bool IsKnown(uint id)
        {
            return id >= Data && id <= GhostedFileExtents;
        }
    }

    /// <summary>A decoded sub-stream header.</summary>
    public sealed class BackupHeader
    {
        public int Id;
        public uint Attributes;
        /// <summary>Payload bytes after the name; for a sparse block, excluding its 8-byte offset.</summary>
        public long Size;
        public string Name;
        /// <summary>Sparse blocks only: the file offset the payload belongs at.</summary>
        public long Offset;
        /// <summary>The header, name and (sparse) offset bytes exactly as they were read.</summary>
        public byte[] Encoded;
    }

    public interface IBackupStreamSink
    {
        /// <summary>A sub-stream starts; Size payload bytes follow through OnData.</summary>
        void OnHeader(BackupHeader header);

        /// <summary>The next piece of the current sub-stream's payload (a view of the input).</summary>
        void OnData(byte[] buffer, int offset, int count);
    }

    public sealed class BackupStreamParser
    {
        /// <summary>The on-wire header (the C struct's sizeof of 24 is padding, never on the wire).</summary>
        public const int HeaderSize = 20;
        public const int SparseOffsetSize = 8;
        /// <summary>Cap on a stream name in bytes, as src/backup/constants.ts.</summary>
        public const int MaxNameBytes = 1024;
        /// <summary>NTFS's own limits: 64 KiB for a security descriptor, 16 KiB of reparse data.</summary>
        public const int MaxMetadataBytes = 65536;
        /// <summary>
        /// An EA set of at most 65,535 bytes packed (NTFS's cap) as FILE_FULL_EA_INFORMATION, where each EA
        /// gains a 4-byte link and up to 3 bytes of padding: twice that at most (src/backup/ea.ts).
        /// </summary>
        public const int MaxEaStreamBytes = 2 * 65535 + 2;
        public const int MaxReparseBytes = 16 * 1024;

        private const int StateHeader = 0;
        private const int StateName = 1;
        private const int StateOffset = 2;
        private const int StatePayload = 3;

        private readonly IBackupStreamSink sink;
        private readonly string subject;
        private readonly byte[] pending = new byte[HeaderSize + MaxNameBytes + SparseOffsetSize];
        private int pendingLength;
        private int need = HeaderSize;
        private int state = StateHeader;
        private int id;
        private uint attributes;
        private long size;
        private int nameSize;
        private string name = "";
        private long remaining;
        private long bytesRead;
        private bool ended;

        /// <param name="subject">The entry the stream belongs to, for messages.</param>
        public BackupStreamParser(IBackupStreamSink sink, string subject)
        {
            this.sink = sink;
            this.subject = subject;
        }

        public long BytesRead
        {
            get { return bytesRead; }
        }

        /// <summary>Feeds the next bytes of the stream.</summary>
        public void Write(byte[] buffer, int offset, int count)
        {
            if (ended) throw Error(NativeError.StreamInvalid, "bytes after the end of the backup stream");
            int pos = offset;
            int end = offset + count;
            while (pos < end)
            {
                if (state == StatePayload)
                {
                    int n = (int)Math.Min(remaining, end - pos);
                    remaining -= n;
                    bytesRead += n;
                    int at = pos;
                    pos += n;
                    sink.OnData(buffer, at, n);
                    if (remaining == 0) ToHeader();
                    continue;
                }
                int want = Math.Min(need - pendingLength + Start(), end - pos);
                Buffer.BlockCopy(buffer, pos, pending, pendingLength, want);
                pendingLength += want;
                bytesRead += want;
                pos += want;
                if (pendingLength - Start() == need) CompleteField();
            }
        }

        /// <summary>Declares the end of the stream, which must fall between sub-streams.</summary>
        public void End()
        {
            if (ended) return;
            ended = true;
            if (state != StateHeader || pendingLength != 0)
            {
                string what = state == StateHeader ? "a sub-stream header"
                    : state == StatePayload ? "the payload of stream " + id
                    : "the name of stream " + id;
                throw Error(NativeError.Truncated, "backup stream ends inside " + what + " after " + bytesRead + " bytes");
            }
        }

        /// <summary>Where the field being gathered starts in `pending` (fields of one header sit back to back).</summary>
        private int Start()
        {
            switch (state)
            {
                case StateName: return HeaderSize;
                case StateOffset: return HeaderSize + nameSize;
                default: return 0;
            }
        }

        private void ToHeader()
        {
            state = StateHeader;
            need = HeaderSize;
            pendingLength = 0;
        }

        private void CompleteField()
        {
            switch (state)
            {
                case StateHeader:
                    ReadHeader();
                    return;
                case StateName:
                    for (int i = HeaderSize; i + 1 < HeaderSize + nameSize; i += 2)
                    {
                        if (pending[i] == 0 && pending[i + 1] == 0) throw Error(NativeError.StreamInvalid, "backup stream " + id + " name contains NUL");
                    }
                    name = System.Text.Encoding.Unicode.GetString(pending, HeaderSize, nameSize);
                    AfterName();
                    return;
                case StateOffset:
                    int at = HeaderSize + nameSize;
                    long offset = (long)((ulong)ReadU32(at) | ((ulong)ReadU32(at + 4) << 32));
                    if (offset < 0 || offset > 9007199254740991L) throw Error(NativeError.StreamInvalid, "sparse block offset " + offset + " is not a byte offset");
                    Emit(size - SparseOffsetSize, offset);
                    return;
            }
        }

        private void ReadHeader()
        {
            uint rawId = ReadU32(0);
            if (!BackupStreamId.IsKnown(rawId)) throw Error(NativeError.StreamIdUnknown, "backup stream id " + rawId + " is unknown");
            id = (int)rawId;
            attributes = ReadU32(4);
            ulong rawSize = (ulong)ReadU32(8) | ((ulong)ReadU32(12) << 32);
            // 2^53 - 1, the largest size the TypeScript side can count exactly.
            if (rawSize > 9007199254740991UL) throw Error(NativeError.StreamInvalid, "backup stream " + id + " declares " + rawSize + " bytes");
            size = (long)rawSize;
            uint rawNameSize = ReadU32(16);
            if (rawNameSize % 2 != 0) throw Error(NativeError.StreamInvalid, "backup stream " + id + " has an odd name size " + rawNameSize);
            if (rawNameSize > MaxNameBytes) throw Error(NativeError.MetadataTooLarge, "backup stream " + id + " name of " + rawNameSize + " bytes exceeds " + MaxNameBytes);
            nameSize = (int)rawNameSize;
            if (id == BackupStreamId.SparseBlock && size < SparseOffsetSize)
            {
                throw Error(NativeError.StreamInvalid, "sparse block of " + size + " bytes cannot hold its 8-byte offset");
            }
            long cap = id == BackupStreamId.ReparseData ? MaxReparseBytes : id == BackupStreamId.EaData ? MaxEaStreamBytes : MaxMetadataBytes;
            bool isMetadata = id == BackupStreamId.SecurityData || id == BackupStreamId.EaData || id == BackupStreamId.ReparseData;
            if (isMetadata && size > cap) throw Error(NativeError.MetadataTooLarge, "backup stream " + id + " of " + size + " bytes exceeds " + cap);
            name = "";
            if (nameSize > 0)
            {
                state = StateName;
                need = nameSize;
                return;
            }
            AfterName();
        }

        private void AfterName()
        {
            if (id == BackupStreamId.SparseBlock)
            {
                state = StateOffset;
                need = SparseOffsetSize;
                return;
            }
            Emit(size, 0);
        }

        private void Emit(long payloadSize, long offset)
        {
            BackupHeader h = new BackupHeader();
            h.Id = id;
            h.Attributes = attributes;
            h.Size = payloadSize;
            h.Name = name;
            h.Offset = offset;
            h.Encoded = new byte[pendingLength];
            Buffer.BlockCopy(pending, 0, h.Encoded, 0, pendingLength);
            if (payloadSize == 0)
            {
                ToHeader();
                sink.OnHeader(h);
                return;
            }
            state = StatePayload;
            remaining = payloadSize;
            pendingLength = 0;
            sink.OnHeader(h);
        }

        private uint ReadU32(int at)
        {
            return (uint)(pending[at] | (pending[at + 1] << 8) | (pending[at + 2] << 16) | (pending[at + 3] << 24));
        }

        private NativeError Error(string code, string message)
        {
            string prefix = string.IsNullOrEmpty(subject) ? "" : subject + ": ";
            return NativeError.Invalid(code, "BackupStreamParser", prefix + message);
        }
    }
}
