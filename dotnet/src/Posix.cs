// The few libc calls the Unix emulation needs that the .NET Framework API lacks.
// Only called when Platform.IsWindows is false; Mono maps "libc" to the C library.
using System;
using System.Runtime.InteropServices;

namespace WinLayer.Native
{
    internal static class Posix
    {
        [DllImport("libc", EntryPoint = "link", SetLastError = true)]
        private static extern int LinkNative(string existing, string newPath);

        [DllImport("libc", EntryPoint = "strerror")]
        private static extern IntPtr StrErrorNative(int errno);

        /// <summary>link(2): the Unix counterpart of CreateHardLinkW.</summary>
        public static void Link(string link, string target)
        {
            if (LinkNative(target, link) == 0) return;
            int errno = Marshal.GetLastWin32Error();
            throw new NativeError(NativeError.CallFailed, "link", link + ": link to " + target + " failed: " + StrError(errno) + " (errno " + errno + ")", 0, 0);
        }

        private static string StrError(int errno)
        {
            IntPtr p = StrErrorNative(errno);
            return p == IntPtr.Zero ? "error " + errno : Marshal.PtrToStringAnsi(p);
        }
    }
}
