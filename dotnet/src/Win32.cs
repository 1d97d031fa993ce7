// kernel32 and advapi32: the file and token calls a Windows layer import needs. Every
// function here is only called when Platform.IsWindows holds (see Platform.cs); the
// declarations themselves compile and load anywhere. docs/windows.md lists each call,
// its signature and the hcsshim/go-winio/moby behaviour it mirrors.
using System;
using System.Collections.Generic;
using System.IO;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace WinLayer.Native
{
    /// <summary>FILE_BASIC_INFO: four FILETIMEs and the attributes (40 bytes with its trailing padding).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct FileBasicInfo
    {
        public long CreationTime;
        public long LastAccessTime;
        public long LastWriteTime;
        public long ChangeTime;
        public uint FileAttributes;
    }

    internal static class Win32
    {
        public const uint GenericRead = 0x80000000;
        public const uint GenericWrite = 0x40000000;
        public const uint WriteDac = 0x00040000;
        public const uint WriteOwner = 0x00080000;
        public const uint AccessSystemSecurity = 0x01000000;
        public const uint FileReadAttributes = 0x0080;
        public const uint FileWriteAttributes = 0x0100;
        public const uint FileShareRead = 0x1;
        public const uint FileShareWrite = 0x2;
        public const uint FileShareDelete = 0x4;
        public const uint CreateNew = 1;
        public const uint OpenExisting = 3;
        public const uint FileFlagBackupSemantics = 0x02000000;
        public const uint FileFlagOpenReparsePoint = 0x00200000;
        public const uint FileFlagSequentialScan = 0x08000000;
        /// <summary>FILE_INFO_BY_HANDLE_CLASS.FileBasicInfo.</summary>
        public const int FileBasicInfoClass = 0;
        public const uint TokenAdjustPrivileges = 0x0020;
        public const uint TokenQuery = 0x0008;
        public const uint SePrivilegeEnabled = 0x00000002;
        public const int ErrorNotAllAssigned = 1300;

        [DllImport("kernel32.dll", CharSet = CharSet.Unicode, SetLastError = true, ExactSpelling = true)]
        private static extern SafeFileHandle CreateFileW(string fileName, uint desiredAccess, uint shareMode, IntPtr securityAttributes,
            uint creationDisposition, uint flagsAndAttributes, IntPtr templateFile);

        [DllImport("kernel32.dll", SetLastError = true, ExactSpelling = true)]
        [return: MarshalAs(UnmanagedType.Bool)]
        private static extern bool BackupRead(SafeFileHandle file, [Out] byte[] buffer, uint numberOfBytesToRead, out uint numberOfBytesRead,
            [MarshalAs(UnmanagedType.Bool)] bool abort, [MarshalAs(UnmanagedType.Bool)] bool processSecurity, ref IntPtr context);

        [DllImport("kernel32.dll", SetLastError = true, ExactSpelling = true)]
        [return: MarshalAs(UnmanagedType.Bool)]
        private static extern bool BackupWrite(SafeFileHandle file, byte[] buffer, uint numberOfBytesToWrite, out uint numberOfBytesWritten,
            [MarshalAs(UnmanagedType.Bool)] bool abort, [MarshalAs(UnmanagedType.Bool)] bool processSecurity, ref IntPtr context);

        [DllImport("kernel32.dll", SetLastError = true, ExactSpelling = true)]
        [return: MarshalAs(UnmanagedType.Bool)]
        private static extern bool GetFileInformationByHandleEx(SafeFileHandle file, int fileInformationClass, out FileBasicInfo info, uint bufferSize);

        [DllImport("kernel32.dll", SetLastError = true, ExactSpelling = true)]
        [return: MarshalAs(UnmanagedType.Bool)]
        private static extern bool SetFileInformationByHandle(SafeFileHandle file, int fileInformationClass, ref FileBasicInfo info, uint bufferSize);

        [DllImport("kernel32.dll", CharSet = CharSet.Unicode, SetLastError = true, ExactSpelling = true)]
        [return: MarshalAs(UnmanagedType.Bool)]
        private static extern bool CreateHardLinkW(string fileName, string existingFileName, IntPtr securityAttributes);

        [DllImport("kernel32.dll", ExactSpelling = true)]
        private static extern IntPtr GetCurrentProcess();

        [DllImport("kernel32.dll", SetLastError = true, ExactSpelling = true)]
        [return: MarshalAs(UnmanagedType.Bool)]
        private static extern bool CloseHandle(IntPtr handle);

        [DllImport("advapi32.dll", SetLastError = true, ExactSpelling = true)]
        [return: MarshalAs(UnmanagedType.Bool)]
        private static extern bool OpenProcessToken(IntPtr process, uint desiredAccess, out IntPtr token);

        [DllImport("advapi32.dll", CharSet = CharSet.Unicode, SetLastError = true, ExactSpelling = true)]
        [return: MarshalAs(UnmanagedType.Bool)]
        private static extern bool LookupPrivilegeValueW(string systemName, string name, out long luid);

        [DllImport("advapi32.dll", SetLastError = true, ExactSpelling = true)]
        [return: MarshalAs(UnmanagedType.Bool)]
        private static extern bool AdjustTokenPrivileges(IntPtr token, [MarshalAs(UnmanagedType.Bool)] bool disableAllPrivileges,
            byte[] newState, uint bufferLength, IntPtr previousState, IntPtr returnLength);

        /// <summary>
        /// The `\\?\` form of a path, so paths past MAX_PATH work (moby's DiffGetter and
        /// hcsshim's safefile open layer files the same way). `\\?\` turns off the OS's
        /// path normalisation, so anything not already absolute and clean is normalised here.
        /// </summary>
        public static string LongPath(string path)
        {
            if (path.StartsWith(@"\\?\", StringComparison.Ordinal) || path.StartsWith(@"\\.\", StringComparison.Ordinal)) return path;
            string p = path.Replace('/', '\\');
            bool isClean = p.Length >= 3 && p[1] == ':' && p[2] == '\\' && p.IndexOf(@"\.\", StringComparison.Ordinal) < 0
                && p.IndexOf(@"\..\", StringComparison.Ordinal) < 0 && !p.EndsWith(@"\.", StringComparison.Ordinal) && !p.EndsWith(@"\..", StringComparison.Ordinal);
            if (!isClean) p = Path.GetFullPath(p);
            if (p.StartsWith(@"\\", StringComparison.Ordinal)) return @"\\?\UNC\" + p.Substring(2);
            return @"\\?\" + p;
        }

        /// <summary>CreateFileW with FILE_FLAG_BACKUP_SEMANTICS (so backup/restore privileges apply, and directories open).</summary>
        public static SafeFileHandle Open(string path, uint access, uint share, uint disposition, uint flags)
        {
            SafeFileHandle h = CreateFileW(LongPath(path), access, share, IntPtr.Zero, disposition, flags | FileFlagBackupSemantics, IntPtr.Zero);
            if (h.IsInvalid)
            {
                int error = Marshal.GetLastWin32Error();
                h.Dispose();
                throw NativeError.FromWin32("CreateFileW", path, error);
            }
            return h;
        }

        public static FileBasicInfo GetBasicInfo(SafeFileHandle file, string subject)
        {
            FileBasicInfo info;
            if (!GetFileInformationByHandleEx(file, FileBasicInfoClass, out info, (uint)Marshal.SizeOf(typeof(FileBasicInfo))))
            {
                throw NativeError.FromWin32("GetFileInformationByHandleEx", subject, Marshal.GetLastWin32Error());
            }
            return info;
        }

        /// <summary>Sets all four times and the attributes (0 would mean "leave unchanged", as in go-winio's SetFileBasicInfo).</summary>
        public static void SetBasicInfo(SafeFileHandle file, FileBasicInfo info, string subject)
        {
            if (!SetFileInformationByHandle(file, FileBasicInfoClass, ref info, (uint)Marshal.SizeOf(typeof(FileBasicInfo))))
            {
                throw NativeError.FromWin32("SetFileInformationByHandle", subject, Marshal.GetLastWin32Error());
            }
        }

        /// <summary>BackupWrite of a whole buffer; a short write is an error, as in go-winio's BackupFileWriter.</summary>
        public static void BackupWriteAll(SafeFileHandle file, byte[] buffer, bool processSecurity, ref IntPtr context, string subject)
        {
            uint written;
            if (!BackupWrite(file, buffer, (uint)buffer.Length, out written, false, processSecurity, ref context))
            {
                throw NativeError.FromWin32("BackupWrite", subject, Marshal.GetLastWin32Error());
            }
            if (written != (uint)buffer.Length)
            {
                throw NativeError.Invalid(NativeError.SizeMismatch, "BackupWrite", subject + ": BackupWrite took " + written + " of " + buffer.Length + " bytes");
            }
        }

        /// <summary>BackupRead into `buffer`; 0 at the end of the stream.</summary>
        public static int BackupReadSome(SafeFileHandle file, byte[] buffer, bool processSecurity, ref IntPtr context, string subject)
        {
            uint read;
            if (!BackupRead(file, buffer, (uint)buffer.Length, out read, false, processSecurity, ref context))
            {
                throw NativeError.FromWin32("BackupRead", subject, Marshal.GetLastWin32Error());
            }
            return (int)read;
        }

        /// <summary>Frees a BackupRead/BackupWrite context (bAbort = TRUE); errors are moot at this point.</summary>
        public static void ReleaseBackupContext(SafeFileHandle file, bool isWrite, bool processSecurity, ref IntPtr context)
        {
            if (context == IntPtr.Zero) return;
            uint n;
            if (isWrite) BackupWrite(file, null, 0, out n, true, processSecurity, ref context);
            else BackupRead(file, null, 0, out n, true, processSecurity, ref context);
            context = IntPtr.Zero;
        }

        public static void CreateHardLink(string link, string target)
        {
            if (!CreateHardLinkW(LongPath(link), LongPath(target), IntPtr.Zero))
            {
                throw NativeError.FromWin32("CreateHardLinkW", link, Marshal.GetLastWin32Error());
            }
        }

        /// <summary>
        /// Enables privileges on the process token (not a thread token): see docs/windows.md
        /// for why process scope is the right one for a single-purpose worker driven through
        /// edge-js. Fails when any privilege is not held (ERROR_NOT_ALL_ASSIGNED), i.e. when
        /// the worker is not elevated.
        /// </summary>
        public static void EnableProcessPrivileges(IList<string> names)
        {
            IntPtr token;
            if (!OpenProcessToken(GetCurrentProcess(), TokenAdjustPrivileges | TokenQuery, out token))
            {
                throw NativeError.FromWin32("OpenProcessToken", "the current process", Marshal.GetLastWin32Error());
            }
            try
            {
                // TOKEN_PRIVILEGES: u32 count, then per privilege a LUID (u32 low, i32 high) and u32 attributes.
                byte[] state = new byte[4 + 12 * names.Count];
                WriteU32(state, 0, (uint)names.Count);
                for (int i = 0; i < names.Count; i++)
                {
                    long luid;
                    if (!LookupPrivilegeValueW(null, names[i], out luid))
                    {
                        throw NativeError.FromWin32("LookupPrivilegeValueW", names[i], Marshal.GetLastWin32Error());
                    }
                    WriteU32(state, 4 + 12 * i, (uint)(luid & 0xffffffffL));
                    WriteU32(state, 8 + 12 * i, (uint)(luid >> 32));
                    WriteU32(state, 12 + 12 * i, SePrivilegeEnabled);
                }
                bool ok = AdjustTokenPrivileges(token, false, state, (uint)state.Length, IntPtr.Zero, IntPtr.Zero);
                // AdjustTokenPrivileges succeeds even when it enabled nothing; the last error tells.
                int error = Marshal.GetLastWin32Error();
                if (!ok || error == ErrorNotAllAssigned)
                {
                    throw NativeError.FromWin32("AdjustTokenPrivileges", string.Join(", ", ToArray(names)), error);
                }
            }
            finally
            {
                CloseHandle(token);
            }
        }

        private static void WriteU32(byte[] buffer, int at, uint value)
        {
            buffer[at] = (byte)value;
            buffer[at + 1] = (byte)(value >> 8);
            buffer[at + 2] = (byte)(value >> 16);
            buffer[at + 3] = (byte)(value >> 24);
        }

        private static string[] ToArray(IList<string> names)
        {
            string[] a = new string[names.Count];
            names.CopyTo(a, 0);
            return a;
        }
    }
}
