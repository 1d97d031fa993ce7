// The edge-js entry points. edge-js calls a public instance method shaped
// `Task<object> Method(object input)` through
//   edge.func({ assemblyFile: 'WinLayer.Native.dll', typeName: 'WinLayer.Native.Helper', methodName })
// and marshals the JavaScript payload as IDictionary<string, object> (Buffer -> byte[],
// number -> int or double, array -> object[]) and the result back (byte[] -> Buffer,
// dictionary -> object). FILETIMEs cross as decimal strings: a JavaScript number cannot
// hold them exactly.
//
// Every method returns a completed (or faulted) Task for the file operations, so
// JavaScript may call them synchronously, `func(payload, true)`, once per chunk. The
// vmcompute calls run on a pool thread and must be called with a callback.
//
// State that outlives a call (open restores and backup readers) sits in one handle table
// shared by every Helper instance, as edge-js creates one instance per edge.func.
using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Reflection;
using System.Threading.Tasks;

namespace WinLayer.Native
{
    public sealed class Helper
    {
        /// <summary>Bumped when an entry point's shape changes; edge.ts checks it.</summary>
        public const int ProtocolVersion = 1;

        private static readonly object Gate = new object();
        private static readonly Dictionary<int, IDisposable> Handles = new Dictionary<int, IDisposable>();
        private static int nextHandle;

        private delegate object Body(IDictionary<string, object> args);

        /// <summary>Platform, runtime and protocol: what the bridge is talking to.</summary>
        public Task<object> Info(object input)
        {
            return Run("Info", input, delegate (IDictionary<string, object> a)
            {
                Dictionary<string, object> r = new Dictionary<string, object>();
                r["platform"] = Platform.Name;
                r["runtime"] = Platform.Runtime();
                r["protocol"] = ProtocolVersion;
                r["is64Bit"] = IntPtr.Size == 8;
                r["assemblyVersion"] = Assembly.GetExecutingAssembly().GetName().Version.ToString();
                lock (Gate) r["openHandles"] = Handles.Count;
                r["fileApi"] = FileApiWorks();
                return r;
            });
        }

        /// <summary>
        /// Whether the runtime's own file API works in this process. Under Mono it depends on
        /// libmono-native.so loading, which needs the runtime's symbols in the global scope
        /// (src/native/edge.ts sees to that); when it fails, every System.IO call would.
        /// </summary>
        private static bool FileApiWorks()
        {
            try
            {
                return File.Exists(typeof(Helper).Assembly.Location);
            }
            catch (Exception)
            {
                return false;
            }
        }

        /// <summary>Does nothing: the fixed cost of one call across the bridge.</summary>
        public Task<object> Noop(object input)
        {
            return Task.FromResult<object>(null);
        }

        /// <summary>Returns its input: a marshalling check for buffers, strings and numbers.</summary>
        public Task<object> Echo(object input)
        {
            return Task.FromResult(input);
        }

        /// <summary>Parses a whole backup stream and describes its sub-streams (the parser, seen from JavaScript).</summary>
        public Task<object> ParseBackupStream(object input)
        {
            return Run("ParseBackupStream", input, delegate (IDictionary<string, object> a)
            {
                byte[] data = Args.Bytes(a, "data", "ParseBackupStream");
                Collector c = new Collector();
                BackupStreamParser parser = new BackupStreamParser(c, Args.OptionalString(a, "entry", ""));
                int chunk = Args.OptionalInt(a, "chunkSize", data.Length);
                if (chunk <= 0) chunk = Math.Max(1, data.Length);
                for (int at = 0; at < data.Length; at += chunk) parser.Write(data, at, Math.Min(chunk, data.Length - at));
                parser.End();
                Dictionary<string, object> r = new Dictionary<string, object>();
                r["streams"] = c.Streams.ToArray();
                r["bytesRead"] = parser.BytesRead;
                return r;
            });
        }

        /// <summary>
        /// Creates `path` (it must not exist) and returns a handle that restores the entry's backup
        /// stream into it; with `directory`, opens the directory the caller made at `path` instead.
        /// </summary>
        public Task<object> RestoreCreate(object input)
        {
            return Run("RestoreCreate", input, delegate (IDictionary<string, object> a)
            {
                string path = Args.String(a, "path", "RestoreCreate");
                string entry = Args.OptionalString(a, "entry", path);
                bool processSecurity = Args.OptionalBool(a, "processSecurity", true);
                bool directory = Args.OptionalBool(a, "directory", false);
                RestoreTarget t;
                if (Platform.IsWindows) t = new WindowsRestoreTarget(path, entry, processSecurity, directory);
                else if (directory) t = new UnixDirectoryRestoreTarget(path, entry);
                else t = new UnixRestoreTarget(path, entry);
                return Add(t);
            });
        }

        /// <summary>The next bytes of the backup stream.</summary>
        public Task<object> RestoreWrite(object input)
        {
            return Run("RestoreWrite", input, delegate (IDictionary<string, object> a)
            {
                RestoreTarget t = Get<RestoreTarget>(a, "RestoreWrite");
                try
                {
                    t.Write(Args.Bytes(a, "chunk", "RestoreWrite"));
                }
                catch
                {
                    Close(a);
                    throw;
                }
                return null;
            });
        }

        /// <summary>Ends the stream, sets the times, closes the file: {dataSize}.</summary>
        public Task<object> RestoreFinish(object input)
        {
            return Run("RestoreFinish", input, delegate (IDictionary<string, object> a)
            {
                RestoreTarget t = Get<RestoreTarget>(a, "RestoreFinish");
                try
                {
                    RestoreResult done = t.Finish(Args.BasicInfo(a, "RestoreFinish"));
                    Dictionary<string, object> r = new Dictionary<string, object>();
                    r["dataSize"] = done.DataSize;
                    return r;
                }
                finally
                {
                    Close(a);
                }
            });
        }

        /// <summary>Closes a restore after a failure (the caller removes the staging directory).</summary>
        public Task<object> RestoreAbort(object input)
        {
            return Run("RestoreAbort", input, delegate (IDictionary<string, object> a)
            {
                Close(a);
                return null;
            });
        }

        /// <summary>Opens `path` for BackupRead; off Windows, a stream of one DATA sub-stream.</summary>
        public Task<object> BackupReadOpen(object input)
        {
            return Run("BackupReadOpen", input, delegate (IDictionary<string, object> a)
            {
                string path = Args.String(a, "path", "BackupReadOpen");
                bool processSecurity = Args.OptionalBool(a, "processSecurity", true);
                BackupSource s = Platform.IsWindows ? (BackupSource)new WindowsBackupSource(path, processSecurity) : new UnixBackupSource(path);
                return Add(s);
            });
        }

        /// <summary>Up to `size` bytes of the backup stream; an empty buffer at its end.</summary>
        public Task<object> BackupReadChunk(object input)
        {
            return Run("BackupReadChunk", input, delegate (IDictionary<string, object> a)
            {
                BackupSource s = Get<BackupSource>(a, "BackupReadChunk");
                int size = Args.OptionalInt(a, "size", 64 * 1024);
                if (size < BackupStreamParser.HeaderSize || size > 16 * 1024 * 1024)
                {
                    throw NativeError.Invalid(NativeError.ArgumentInvalid, "BackupReadChunk", "chunk size " + size + " is outside 20 bytes to 16 MiB");
                }
                return s.Read(size);
            });
        }

        /// <summary>Closes any handle (restore or reader); closing twice is not an error.</summary>
        public Task<object> CloseHandle(object input)
        {
            return Run("CloseHandle", input, delegate (IDictionary<string, object> a)
            {
                Close(a);
                return null;
            });
        }

        /// <summary>FILE_BASIC_INFO of `path` (Unix: what the runtime's file API reports).</summary>
        public Task<object> GetFileBasicInfo(object input)
        {
            return Run("GetFileBasicInfo", input, delegate (IDictionary<string, object> a)
            {
                string path = Args.String(a, "path", "GetFileBasicInfo");
                BasicInfo info = new BasicInfo();
                if (Platform.IsWindows)
                {
                    using (var h = Win32.Open(path, Win32.FileReadAttributes, Win32.FileShareRead | Win32.FileShareWrite | Win32.FileShareDelete,
                        Win32.OpenExisting, Win32.FileFlagOpenReparsePoint))
                    {
                        FileBasicInfo b = Win32.GetBasicInfo(h, path);
                        info.CreationTime = b.CreationTime;
                        info.LastAccessTime = b.LastAccessTime;
                        info.LastWriteTime = b.LastWriteTime;
                        info.ChangeTime = b.ChangeTime;
                        info.FileAttributes = b.FileAttributes;
                    }
                }
                else
                {
                    if (!File.Exists(path) && !Directory.Exists(path))
                    {
                        throw new NativeError(NativeError.CallFailed, "GetFileBasicInfo", path + ": no such file or directory", 2, NativeError.HResultFromWin32(2));
                    }
                    // POSIX has no creation or change time: both report the last write.
                    info.LastWriteTime = File.GetLastWriteTimeUtc(path).ToFileTimeUtc();
                    info.LastAccessTime = File.GetLastAccessTimeUtc(path).ToFileTimeUtc();
                    info.CreationTime = info.LastWriteTime;
                    info.ChangeTime = info.LastWriteTime;
                    info.FileAttributes = (uint)File.GetAttributes(path);
                }
                return Args.FromBasicInfo(info);
            });
        }

        /// <summary>Sets FILE_BASIC_INFO on `path` (Unix: the last write and access times only).</summary>
        public Task<object> SetFileBasicInfo(object input)
        {
            return Run("SetFileBasicInfo", input, delegate (IDictionary<string, object> a)
            {
                string path = Args.String(a, "path", "SetFileBasicInfo");
                BasicInfo info = Args.BasicInfo(a, "SetFileBasicInfo");
                if (Platform.IsWindows)
                {
                    using (var h = Win32.Open(path, Win32.FileWriteAttributes, Win32.FileShareRead | Win32.FileShareWrite | Win32.FileShareDelete,
                        Win32.OpenExisting, Win32.FileFlagOpenReparsePoint))
                    {
                        FileBasicInfo b = new FileBasicInfo();
                        b.CreationTime = info.CreationTime;
                        b.LastAccessTime = info.LastAccessTime;
                        b.LastWriteTime = info.LastWriteTime;
                        b.ChangeTime = info.ChangeTime;
                        b.FileAttributes = info.FileAttributes;
                        Win32.SetBasicInfo(h, b, path);
                    }
                }
                else if (Directory.Exists(path))
                {
                    Directory.SetLastWriteTimeUtc(path, DateTime.FromFileTimeUtc(info.LastWriteTime));
                    Directory.SetLastAccessTimeUtc(path, DateTime.FromFileTimeUtc(info.LastAccessTime));
                }
                else
                {
                    File.SetLastWriteTimeUtc(path, DateTime.FromFileTimeUtc(info.LastWriteTime));
                    File.SetLastAccessTimeUtc(path, DateTime.FromFileTimeUtc(info.LastAccessTime));
                }
                return null;
            });
        }

        /// <summary>A hard link `link` to the existing file `target`.</summary>
        public Task<object> CreateHardLink(object input)
        {
            return Run("CreateHardLink", input, delegate (IDictionary<string, object> a)
            {
                string link = Args.String(a, "link", "CreateHardLink");
                string target = Args.String(a, "target", "CreateHardLink");
                if (Platform.IsWindows) Win32.CreateHardLink(link, target);
                else Posix.Link(link, target);
                return null;
            });
        }

        /// <summary>Enables privileges (SeBackupPrivilege, SeRestorePrivilege, SeSecurityPrivilege) for the whole process.</summary>
        public Task<object> EnablePrivileges(object input)
        {
            return Run("EnablePrivileges", input, delegate (IDictionary<string, object> a)
            {
                List<string> names = Args.Strings(a, "names", "EnablePrivileges");
                if (!Platform.IsWindows) throw NativeError.Unsupported("AdjustTokenPrivileges");
                Win32.EnableProcessPrivileges(names);
                return names.ToArray();
            });
        }

        /// <summary>
        /// Marshals WC_LAYER_DESCRIPTORs into unmanaged memory and reads them back, with the
        /// layout: the one piece of the vmcompute path that can be checked off Windows.
        /// </summary>
        public Task<object> DescribeLayerDescriptors(object input)
        {
            return Run("DescribeLayerDescriptors", input, delegate (IDictionary<string, object> a)
            {
                object[] layers = Args.Array(a, "layers", "DescribeLayerDescriptors");
                List<string> paths = new List<string>();
                List<Guid> ids = new List<Guid>();
                List<uint> flags = new List<uint>();
                foreach (object o in layers)
                {
                    IDictionary<string, object> l = Args.Of(o, "DescribeLayerDescriptors");
                    paths.Add(Args.String(l, "path", "DescribeLayerDescriptors"));
                    ids.Add(new Guid(Args.String(l, "id", "DescribeLayerDescriptors")));
                    flags.Add((uint)Args.OptionalLong(l, "flags", 0));
                }
                List<object> back = new List<object>();
                using (LayerDescriptorArray d = new LayerDescriptorArray(paths, ids, flags))
                {
                    for (int i = 0; i < paths.Count; i++)
                    {
                        WcLayerDescriptor w = d.Read(i);
                        Dictionary<string, object> e = new Dictionary<string, object>();
                        e["id"] = w.LayerId.ToString();
                        e["idBytes"] = Vmcompute.Hex(w.LayerId.ToByteArray());
                        e["flags"] = (long)w.Flags;
                        e["path"] = System.Runtime.InteropServices.Marshal.PtrToStringUni(w.Path);
                        back.Add(e);
                    }
                }
                Dictionary<string, object> r = new Dictionary<string, object>();
                r["stride"] = LayerDescriptorArray.Stride;
                r["layerIdOffset"] = (int)System.Runtime.InteropServices.Marshal.OffsetOf(typeof(WcLayerDescriptor), "LayerId");
                r["flagsOffset"] = (int)System.Runtime.InteropServices.Marshal.OffsetOf(typeof(WcLayerDescriptor), "Flags");
                r["pathOffset"] = (int)System.Runtime.InteropServices.Marshal.OffsetOf(typeof(WcLayerDescriptor), "Path");
                r["driverInfoSize"] = Vmcompute.DriverInfoSize;
                r["fileBasicInfoSize"] = System.Runtime.InteropServices.Marshal.SizeOf(typeof(FileBasicInfo));
                r["layers"] = back.ToArray();
                return r;
            });
        }

        // ---- vmcompute (HCS) layer calls: asynchronous, on a pool thread ----

        public Task<object> ActivateLayer(object input)
        {
            return RunHcs("ActivateLayer", input, delegate (IDictionary<string, object> a)
            {
                Vmcompute.ActivateLayer(Args.String(a, "path", "ActivateLayer"));
                return null;
            });
        }

        public Task<object> DeactivateLayer(object input)
        {
            return RunHcs("DeactivateLayer", input, delegate (IDictionary<string, object> a)
            {
                Vmcompute.DeactivateLayer(Args.String(a, "path", "DeactivateLayer"));
                return null;
            });
        }

        public Task<object> CreateLayer(object input)
        {
            return RunHcs("CreateLayer", input, delegate (IDictionary<string, object> a)
            {
                Vmcompute.CreateLayer(Args.String(a, "path", "CreateLayer"), Args.String(a, "parent", "CreateLayer"));
                return null;
            });
        }

        public Task<object> CreateSandboxLayer(object input)
        {
            return RunHcs("CreateSandboxLayer", input, delegate (IDictionary<string, object> a)
            {
                Vmcompute.CreateSandboxLayer(Args.String(a, "path", "CreateSandboxLayer"), Args.Strings(a, "parents", "CreateSandboxLayer"));
                return null;
            });
        }

        public Task<object> ExpandSandboxSize(object input)
        {
            return RunHcs("ExpandSandboxSize", input, delegate (IDictionary<string, object> a)
            {
                ulong size = ulong.Parse(Args.String(a, "size", "ExpandSandboxSize"), NumberStyles.None, CultureInfo.InvariantCulture);
                Vmcompute.ExpandSandboxSize(Args.String(a, "path", "ExpandSandboxSize"), size);
                return null;
            });
        }

        public Task<object> DestroyLayer(object input)
        {
            return RunHcs("DestroyLayer", input, delegate (IDictionary<string, object> a)
            {
                Vmcompute.DestroyLayer(Args.String(a, "path", "DestroyLayer"));
                return null;
            });
        }

        public Task<object> ImportLayer(object input)
        {
            return RunHcs("ImportLayer", input, delegate (IDictionary<string, object> a)
            {
                Vmcompute.ImportLayer(Args.String(a, "path", "ImportLayer"), Args.String(a, "importFolder", "ImportLayer"), Args.Strings(a, "parents", "ImportLayer"));
                return null;
            });
        }

        public Task<object> ExportLayer(object input)
        {
            return RunHcs("ExportLayer", input, delegate (IDictionary<string, object> a)
            {
                Vmcompute.ExportLayer(Args.String(a, "path", "ExportLayer"), Args.String(a, "exportFolder", "ExportLayer"), Args.Strings(a, "parents", "ExportLayer"));
                return null;
            });
        }

        public Task<object> PrepareLayer(object input)
        {
            return RunHcs("PrepareLayer", input, delegate (IDictionary<string, object> a)
            {
                Vmcompute.PrepareLayer(Args.String(a, "path", "PrepareLayer"), Args.Strings(a, "parents", "PrepareLayer"));
                return null;
            });
        }

        public Task<object> UnprepareLayer(object input)
        {
            return RunHcs("UnprepareLayer", input, delegate (IDictionary<string, object> a)
            {
                Vmcompute.UnprepareLayer(Args.String(a, "path", "UnprepareLayer"));
                return null;
            });
        }

        public Task<object> GetLayerMountPath(object input)
        {
            return RunHcs("GetLayerMountPath", input, delegate (IDictionary<string, object> a)
            {
                return Vmcompute.GetLayerMountPath(Args.String(a, "path", "GetLayerMountPath"));
            });
        }

        public Task<object> LayerExists(object input)
        {
            return RunHcs("LayerExists", input, delegate (IDictionary<string, object> a)
            {
                return Vmcompute.LayerExists(Args.String(a, "path", "LayerExists"));
            });
        }

        public Task<object> NameToGuid(object input)
        {
            return RunHcs("NameToGuid", input, delegate (IDictionary<string, object> a)
            {
                return Vmcompute.NameToGuid(Args.String(a, "name", "NameToGuid")).ToString();
            });
        }

        public Task<object> ProcessBaseImage(object input)
        {
            return RunHcs("ProcessBaseImage", input, delegate (IDictionary<string, object> a)
            {
                Vmcompute.ProcessBaseImage(Args.String(a, "path", "ProcessBaseImage"));
                return null;
            });
        }

        public Task<object> ProcessUtilityImage(object input)
        {
            return RunHcs("ProcessUtilityImage", input, delegate (IDictionary<string, object> a)
            {
                Vmcompute.ProcessUtilityImage(Args.String(a, "path", "ProcessUtilityImage"));
                return null;
            });
        }

        // ---- plumbing ----

        /// <summary>Runs a file operation to completion; any failure becomes a faulted task carrying a NativeError.</summary>
        private static Task<object> Run(string operation, object input, Body body)
        {
            TaskCompletionSource<object> done = new TaskCompletionSource<object>();
            try
            {
                done.SetResult(body(Args.Of(input, operation)));
            }
            catch (Exception e)
            {
                done.SetException(Wrap(operation, e));
            }
            return done.Task;
        }

        /// <summary>Runs an HCS call on a pool thread (they can take minutes); Windows-only calls fail at once elsewhere.</summary>
        private static Task<object> RunHcs(string operation, object input, Body body)
        {
            if (!Platform.IsWindows) return Run(operation, input, delegate (IDictionary<string, object> a) { throw NativeError.Unsupported(operation); });
            IDictionary<string, object> args;
            try
            {
                args = Args.Of(input, operation);
            }
            catch (Exception e)
            {
                return Run(operation, input, delegate (IDictionary<string, object> a) { throw Wrap(operation, e); });
            }
            return Task.Factory.StartNew(delegate ()
            {
                try
                {
                    return body(args);
                }
                catch (Exception e)
                {
                    throw Wrap(operation, e);
                }
            });
        }

        private static NativeError Wrap(string operation, Exception e)
        {
            NativeError n = e as NativeError;
            if (n != null) return n;
            if (e is InvalidCastException || e is FormatException || e is OverflowException || e is ArgumentException)
            {
                return NativeError.Invalid(NativeError.ArgumentInvalid, operation, operation + ": " + e.Message);
            }
            string message = e.GetType().FullName + ": " + e.Message;
            for (Exception inner = e.InnerException; inner != null; inner = inner.InnerException)
            {
                message += " <- " + inner.GetType().FullName + ": " + inner.Message;
            }
            return new NativeError(NativeError.CallFailed, operation, operation + ": " + message, 0, e.HResult);
        }

        private static int Add(IDisposable d)
        {
            lock (Gate)
            {
                nextHandle = nextHandle == int.MaxValue ? 1 : nextHandle + 1;
                Handles[nextHandle] = d;
                return nextHandle;
            }
        }

        private static T Get<T>(IDictionary<string, object> a, string operation) where T : class
        {
            int handle = Args.Int(a, "handle", operation);
            IDisposable d;
            lock (Gate)
            {
                Handles.TryGetValue(handle, out d);
            }
            T t = d as T;
            if (t == null) throw NativeError.Invalid(NativeError.ArgumentInvalid, operation, operation + ": handle " + handle + " is not open");
            return t;
        }

        private static void Close(IDictionary<string, object> a)
        {
            int handle = Args.Int(a, "handle", "CloseHandle");
            IDisposable d;
            lock (Gate)
            {
                if (!Handles.TryGetValue(handle, out d)) return;
                Handles.Remove(handle);
            }
            d.Dispose();
        }

        /// <summary>Collects the headers a parse produced, for ParseBackupStream.</summary>
        private sealed class Collector : IBackupStreamSink
        {
            public readonly List<object> Streams = new List<object>();
            private Dictionary<string, object> current;
            private long payload;

            public void OnHeader(BackupHeader h)
            {
                current = new Dictionary<string, object>();
                current["id"] = h.Id;
                current["attributes"] = (long)h.Attributes;
                current["size"] = h.Size;
                current["name"] = h.Name;
                current["offset"] = h.Offset;
                current["encoded"] = h.Encoded;
                current["payloadBytes"] = 0L;
                payload = 0;
                Streams.Add(current);
            }

            public void OnData(byte[] buffer, int offset, int count)
            {
                payload += count;
                current["payloadBytes"] = payload;
            }
        }
    }
}
