// Restoring one file or directory from its backup stream: the role of hcsshim's
// BackupWrite-based writers (the legacy writer for Hives/ and UtilityVM/, the base-layer
// writer for every entry of a base layer).
//
// A directory is created by the caller (its children need it before its metadata is
// final) and opened here; a file is created here, and must not exist.
//
// Both platforms run the same parser over the bytes, so both report the same thing: the
// data size. The non-data sub-streams are not held here (an alternate data stream may be
// gigabytes): the caller parses the same bytes and keeps them in the layer's metadata
// index as they come. What differs is where the bytes go:
//   Windows  every byte goes to BackupWrite on a handle opened with
//            FILE_FLAG_BACKUP_SEMANTICS, so the OS restores data, ADS, EAs, reparse data
//            and (with processSecurity) the security descriptor; FILE_BASIC_INFO is set
//            on the handle at the end.
//   Unix     the DATA payload is written into the file (the portable store's rule: the
//            file on disk is its data stream); the last write and access times are set
//            through the file API, the index keeping the exact four.
using System;
using System.IO;
using Microsoft.Win32.SafeHandles;

namespace WinLayer.Native
{
    /// <summary>What Finish reports.</summary>
    internal sealed class RestoreResult
    {
        public long DataSize;
    }

    /// <summary>The four FILETIMEs and the attributes the caller wants on the file.</summary>
    internal sealed class BasicInfo
    {
        public long CreationTime;
        public long LastAccessTime;
        public long LastWriteTime;
        public long ChangeTime;
        public uint FileAttributes;
    }

    internal abstract class RestoreTarget : IBackupStreamSink, IDisposable
    {
        private const int TargetNone = 0;
        private const int TargetData = 1;

        protected readonly string FilePath;
        protected readonly string Entry;
        private readonly BackupStreamParser parser;
        private int target = TargetNone;
        private long dataSize;
        private bool isDone;

        protected RestoreTarget(string filePath, string entry)
        {
            FilePath = filePath;
            Entry = entry;
            parser = new BackupStreamParser(this, entry);
        }

        /// <summary>The next bytes of the stream: parsed first, so the OS only ever sees bytes that parsed.</summary>
        public void Write(byte[] chunk)
        {
            if (isDone) throw NativeError.Invalid(NativeError.ArgumentInvalid, "RestoreWrite", Entry + ": the restore is already finished");
            parser.Write(chunk, 0, chunk.Length);
            WriteRaw(chunk);
        }

        /// <summary>Checks the stream ended between sub-streams, applies the times and closes the file.</summary>
        public RestoreResult Finish(BasicInfo info)
        {
            if (isDone) throw NativeError.Invalid(NativeError.ArgumentInvalid, "RestoreFinish", Entry + ": the restore is already finished");
            isDone = true;
            parser.End();
            Complete(info);
            RestoreResult r = new RestoreResult();
            r.DataSize = dataSize;
            return r;
        }

        public void OnHeader(BackupHeader h)
        {
            if (h.Id == BackupStreamId.Data)
            {
                dataSize = h.Size;
                target = TargetData;
                return;
            }
            if (h.Id == BackupStreamId.SparseBlock)
            {
                OnSparseBlock(h);
                target = TargetNone;
                return;
            }
            // The caller keeps the other sub-streams from its own parse: none is held here.
            target = TargetNone;
        }

        public void OnData(byte[] buffer, int offset, int count)
        {
            if (target == TargetData) WriteData(buffer, offset, count);
        }

        /// <summary>Every byte of the stream, after it parsed (Windows: BackupWrite).</summary>
        protected abstract void WriteRaw(byte[] chunk);

        /// <summary>A piece of the DATA stream's payload (Unix: into the file).</summary>
        protected abstract void WriteData(byte[] buffer, int offset, int count);

        protected abstract void OnSparseBlock(BackupHeader h);

        protected abstract void Complete(BasicInfo info);

        /// <summary>Closes the file after a failure; the caller removes it.</summary>
        public abstract void Dispose();
    }

    /// <summary>The portable restore (Mono on Linux/macOS).</summary>
    internal sealed class UnixRestoreTarget : RestoreTarget
    {
        private FileStream file;

        public UnixRestoreTarget(string filePath, string entry) : base(filePath, entry)
        {
            try
            {
                // CreateNew is O_CREAT|O_EXCL: an existing file, or a symbolic link planted there, fails.
                file = new FileStream(filePath, FileMode.CreateNew, FileAccess.Write, FileShare.None, 64 * 1024);
            }
            catch (IOException e)
            {
                throw Io("open", e);
            }
            catch (UnauthorizedAccessException e)
            {
                throw Io("open", e);
            }
        }

        protected override void WriteRaw(byte[] chunk)
        {
        }

        protected override void WriteData(byte[] buffer, int offset, int count)
        {
            try
            {
                file.Write(buffer, offset, count);
            }
            catch (IOException e)
            {
                throw Io("write", e);
            }
        }

        /// <summary>As the portable writer: sparse files cannot be restored off Windows.</summary>
        protected override void OnSparseBlock(BackupHeader h)
        {
            throw NativeError.Invalid(NativeError.SparseUnsupported, "RestoreWrite",
                Entry + ": sparse blocks cannot be restored by the portable backend");
        }

        protected override void Complete(BasicInfo info)
        {
            try
            {
                file.Flush();
                file.Dispose();
                file = null;
                // Only the times a POSIX file system holds; DateTime cannot hold a FILETIME
                // outside its range, and the index keeps the exact values anyway.
                File.SetLastWriteTimeUtc(FilePath, HostTime(info.LastWriteTime));
                File.SetLastAccessTimeUtc(FilePath, HostTime(info.LastAccessTime));
            }
            catch (IOException e)
            {
                throw Io("close", e);
            }
        }

        public override void Dispose()
        {
            if (file != null) file.Dispose();
            file = null;
        }

        /// <summary>1970-01-01 as a FILETIME: before it, Mono refuses a time with a fraction of a second (EINVAL).</summary>
        private const long UnixEpochFiletime = 116444736000000000L;
        private const long FiletimeTicksPerSecond = 10000000L;

        internal static DateTime HostTime(long filetime)
        {
            if (filetime <= 0) return DateTime.FromFileTimeUtc(0);
            if (filetime > DateTime.MaxValue.ToFileTimeUtc()) return DateTime.MaxValue;
            // Before 1970, the host gets the whole second at or before it (the index keeps the exact time).
            if (filetime < UnixEpochFiletime)
            {
                long before = UnixEpochFiletime - filetime;
                long whole = (before + FiletimeTicksPerSecond - 1) / FiletimeTicksPerSecond * FiletimeTicksPerSecond;
                filetime = UnixEpochFiletime - whole;
                if (filetime <= 0) return DateTime.FromFileTimeUtc(0);
            }
            return DateTime.FromFileTimeUtc(filetime);
        }

        private NativeError Io(string what, Exception e)
        {
            return NativeError.FromIo("Restore", Entry, Entry + ": cannot " + what + " " + FilePath + ": " + e.Message, e);
        }
    }

    /// <summary>The portable restore of a directory the caller made: its times set (the caller keeps its streams).</summary>
    internal sealed class UnixDirectoryRestoreTarget : RestoreTarget
    {
        public UnixDirectoryRestoreTarget(string dirPath, string entry) : base(dirPath, entry)
        {
            // Not through a symbolic link: the caller made a real directory here.
            FileAttributes a;
            try
            {
                a = File.GetAttributes(dirPath);
            }
            catch (IOException e)
            {
                throw NativeError.FromIo("RestoreCreate", entry, entry + ": cannot open directory " + dirPath + ": " + e.Message, e);
            }
            if ((a & FileAttributes.Directory) == 0 || (a & FileAttributes.ReparsePoint) != 0)
            {
                throw NativeError.Invalid(NativeError.ArgumentInvalid, "RestoreCreate", entry + ": " + dirPath + " is not a directory");
            }
        }

        protected override void WriteRaw(byte[] chunk)
        {
        }

        protected override void WriteData(byte[] buffer, int offset, int count)
        {
            throw NativeError.Invalid(NativeError.StreamInvalid, "RestoreWrite", Entry + ": a directory cannot have a data stream");
        }

        protected override void OnSparseBlock(BackupHeader h)
        {
            throw NativeError.Invalid(NativeError.StreamInvalid, "RestoreWrite", Entry + ": a directory cannot have sparse blocks");
        }

        protected override void Complete(BasicInfo info)
        {
            try
            {
                Directory.SetLastWriteTimeUtc(FilePath, UnixRestoreTarget.HostTime(info.LastWriteTime));
                Directory.SetLastAccessTimeUtc(FilePath, UnixRestoreTarget.HostTime(info.LastAccessTime));
            }
            catch (IOException e)
            {
                throw NativeError.FromIo("RestoreFinish", Entry, Entry + ": cannot set the times of " + FilePath + ": " + e.Message, e);
            }
        }

        public override void Dispose()
        {
        }
    }

    /// <summary>The Windows restore: CreateFileW + BackupWrite + SetFileInformationByHandle.</summary>
    internal sealed class WindowsRestoreTarget : RestoreTarget
    {
        private readonly bool processSecurity;
        private SafeFileHandle file;
        private IntPtr context = IntPtr.Zero;

        public WindowsRestoreTarget(string filePath, string entry, bool processSecurity, bool directory) : base(filePath, entry)
        {
            this.processSecurity = processSecurity;
            // As hcsshim: with security, the rights BackupWrite needs to restore the owner, DACL
            // and SACL; without (Hives/), plain read/write.
            uint access = Win32.GenericRead | Win32.GenericWrite;
            if (processSecurity) access |= Win32.WriteDac | Win32.WriteOwner | Win32.AccessSystemSecurity;
            // A directory exists already (the caller made it); backup semantics open it, and
            // not following a reparse point keeps the handle on the directory itself.
            file = directory
                ? Win32.Open(filePath, access, Win32.FileShareRead, Win32.OpenExisting, Win32.FileFlagOpenReparsePoint)
                : Win32.Open(filePath, access, Win32.FileShareRead, Win32.CreateNew, 0);
        }

        protected override void WriteRaw(byte[] chunk)
        {
            Win32.BackupWriteAll(file, chunk, processSecurity, ref context, Entry);
        }

        protected override void WriteData(byte[] buffer, int offset, int count)
        {
        }

        /// <summary>BackupWrite restores sparse ranges itself.</summary>
        protected override void OnSparseBlock(BackupHeader h)
        {
        }

        protected override void Complete(BasicInfo info)
        {
            Win32.ReleaseBackupContext(file, true, processSecurity, ref context);
            FileBasicInfo b = new FileBasicInfo();
            b.CreationTime = info.CreationTime;
            b.LastAccessTime = info.LastAccessTime;
            b.LastWriteTime = info.LastWriteTime;
            b.ChangeTime = info.ChangeTime;
            b.FileAttributes = info.FileAttributes;
            // After the last write, so nothing the restore does can move the times again.
            Win32.SetBasicInfo(file, b, Entry);
            file.Dispose();
            file = null;
        }

        public override void Dispose()
        {
            if (file == null) return;
            try
            {
                Win32.ReleaseBackupContext(file, true, processSecurity, ref context);
            }
            finally
            {
                file.Dispose();
                file = null;
            }
        }
    }

    /// <summary>A source of backup-stream bytes for one file (export).</summary>
    internal abstract class BackupSource : IDisposable
    {
        /// <summary>Up to `max` bytes; an empty array at the end.</summary>
        public abstract byte[] Read(int max);

        public abstract void Dispose();
    }

    /// <summary>BackupRead on a handle opened with FILE_FLAG_BACKUP_SEMANTICS.</summary>
    internal sealed class WindowsBackupSource : BackupSource
    {
        private readonly string path;
        private readonly bool processSecurity;
        private SafeFileHandle file;
        private IntPtr context = IntPtr.Zero;

        public WindowsBackupSource(string path, bool processSecurity)
        {
            this.path = path;
            this.processSecurity = processSecurity;
            uint access = Win32.GenericRead | (processSecurity ? Win32.AccessSystemSecurity : 0);
            file = Win32.Open(path, access, Win32.FileShareRead, Win32.OpenExisting, Win32.FileFlagOpenReparsePoint | Win32.FileFlagSequentialScan);
        }

        public override byte[] Read(int max)
        {
            byte[] buffer = new byte[max];
            int n = Win32.BackupReadSome(file, buffer, processSecurity, ref context, path);
            if (n == max) return buffer;
            byte[] part = new byte[n];
            Buffer.BlockCopy(buffer, 0, part, 0, n);
            return part;
        }

        public override void Dispose()
        {
            if (file == null) return;
            try
            {
                Win32.ReleaseBackupContext(file, false, processSecurity, ref context);
            }
            finally
            {
                file.Dispose();
                file = null;
            }
        }
    }

    /// <summary>What BackupRead would give for a plain file: one DATA sub-stream; nothing for a directory.</summary>
    internal sealed class UnixBackupSource : BackupSource
    {
        private readonly FileStream file;
        private byte[] header;
        private long left;

        public UnixBackupSource(string path)
        {
            if (Directory.Exists(path))
            {
                header = new byte[0];
                return;
            }
            file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 64 * 1024);
            left = file.Length;
            header = new byte[BackupStreamParser.HeaderSize];
            header[0] = (byte)BackupStreamId.Data;
            for (int i = 0; i < 8; i++) header[8 + i] = (byte)(left >> (8 * i));
        }

        public override byte[] Read(int max)
        {
            if (header.Length > 0)
            {
                byte[] h = header;
                header = new byte[0];
                return h;
            }
            if (file == null || left == 0) return new byte[0];
            byte[] buffer = new byte[(int)Math.Min(max, left)];
            int done = 0;
            while (done < buffer.Length)
            {
                int n = file.Read(buffer, done, buffer.Length - done);
                if (n == 0) throw new NativeError(NativeError.CallFailed, "BackupRead", "the file shrank while it was read", 0, 0);
                done += n;
            }
            left -= done;
            return buffer;
        }

        public override void Dispose()
        {
            if (file != null) file.Dispose();
        }
    }
}
