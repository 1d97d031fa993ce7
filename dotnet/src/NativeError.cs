// The one exception type the helper throws. edge-js copies an exception's public
// properties onto the JavaScript error it raises, so Code, Operation and Win32Error reach
// src/native/edge.ts, which turns them into a typed WinLayerError.
//
// The source is kept to C# 5 so that the .NET Framework's own csc (C# 5) can build it
// on a Windows machine without Visual Studio.
using System;
using System.ComponentModel;

namespace WinLayer.Native
{
    /// <summary>A failure with a winlayer error code and, for OS failures, the Win32 code.</summary>
    public sealed class NativeError : Exception
    {
        /// <summary>Codes the helper itself assigns; edge.ts passes the listed ones through as they are.</summary>
        public const string CallFailed = "ERR_NATIVE_CALL_FAILED";
        public const string Truncated = "ERR_BACKUP_STREAM_TRUNCATED";
        public const string StreamInvalid = "ERR_BACKUP_STREAM_INVALID";
        public const string StreamIdUnknown = "ERR_BACKUP_STREAM_ID_UNKNOWN";
        public const string MetadataTooLarge = "ERR_METADATA_TOO_LARGE";
        public const string SizeMismatch = "ERR_SIZE_MISMATCH";
        public const string SparseUnsupported = "ERR_SPARSE_UNSUPPORTED";
        public const string UnsupportedPlatform = "ERR_UNSUPPORTED_PLATFORM";
        public const string ArgumentInvalid = "ERR_ARGUMENT_INVALID";
        /// <summary>An operating-system error of a file the helper writes itself (the portable restore).</summary>
        public const string Io = "ERR_IO";

        /// <summary>ERROR_NOT_SUPPORTED: what a Windows-only call reports elsewhere.</summary>
        public const int ErrorNotSupported = 50;
        /// <summary>ERROR_INVALID_PARAMETER: bad input to a call.</summary>
        public const int ErrorInvalidParameter = 87;

        private readonly string code;
        private readonly string operation;
        private readonly int win32Error;

        public NativeError(string code, string operation, string message, int win32Error, int hresult)
            : base(message)
        {
            this.code = code;
            this.operation = operation;
            this.win32Error = win32Error;
            HResult = hresult;
        }

        /// <summary>A winlayer error code (ERR_*).</summary>
        public string Code { get { return code; } }

        /// <summary>The helper entry point or Win32/vmcompute function that failed.</summary>
        public string Operation { get { return operation; } }

        /// <summary>The Win32 error code (GetLastError, or an HRESULT's FACILITY_WIN32 code); 0 if none.</summary>
        public int Win32Error { get { return win32Error; } }

        /// <summary>The layer entry being restored when the error happened; null if none.</summary>
        public string Entry { get; private set; }

        /// <summary>
        /// An operating-system error (an IOException: a full disk, a file too large, a denied
        /// open) of `entry`'s file, which the helper opens and writes itself. Mono and .NET give
        /// such an exception a FACILITY_WIN32 HRESULT, whose low word is the Win32 code.
        /// </summary>
        public static NativeError FromIo(string operation, string entry, string message, Exception e)
        {
            int hresult = e.HResult;
            NativeError error = new NativeError(Io, operation, message, Win32FromHResult(hresult), hresult);
            error.Entry = entry;
            return error;
        }

        /// <summary>The Win32 code of a FACILITY_WIN32 HRESULT; 0 for any other.</summary>
        public static int Win32FromHResult(int hresult)
        {
            return (hresult & 0x1fff0000) == 0x00070000 ? hresult & 0xffff : 0;
        }

        /// <summary>A Win32 failure of `function` on `subject`, with the system's message for the code.</summary>
        public static NativeError FromWin32(string function, string subject, int error)
        {
            string message = subject + ": " + function + " failed: " + SystemMessage(error) + " (Win32 error " + error + ")";
            return new NativeError(CallFailed, function, message, error, HResultFromWin32(error));
        }

        /// <summary>
        /// A failed HRESULT. FACILITY_WIN32 results carry a Win32 code in their low word,
        /// which is what hcsshim's generated vmcompute wrappers report too.
        /// </summary>
        public static NativeError FromHResult(string function, string subject, int hresult)
        {
            int win32 = Win32FromHResult(hresult);
            string message = subject + ": " + function + " failed: " + SystemMessage(win32 != 0 ? win32 : hresult)
                + " (HRESULT 0x" + hresult.ToString("x8") + ")";
            return new NativeError(CallFailed, function, message, win32, hresult);
        }

        /// <summary>An operation that exists only on Windows.</summary>
        public static NativeError Unsupported(string operation)
        {
            return new NativeError(UnsupportedPlatform, operation,
                operation + " is unsupported on this platform (" + Platform.Describe() + "): it needs Windows",
                ErrorNotSupported, HResultFromWin32(ErrorNotSupported));
        }

        /// <summary>Bad input (a malformed stream, a missing argument).</summary>
        public static NativeError Invalid(string code, string operation, string message)
        {
            return new NativeError(code, operation, message, ErrorInvalidParameter, HResultFromWin32(ErrorInvalidParameter));
        }

        /// <summary>HRESULT_FROM_WIN32.</summary>
        public static int HResultFromWin32(int error)
        {
            return error <= 0 ? error : (int)(((uint)error & 0xffff) | 0x80070000u);
        }

        private static string SystemMessage(int code)
        {
            try
            {
                return new Win32Exception(code).Message;
            }
            catch (Exception)
            {
                return "error " + code;
            }
        }
    }
}
