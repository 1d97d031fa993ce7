// vmcompute.dll: the Host Compute Service's layer calls, the ones moby's windowsfilter
// driver makes through hcsshim's internal/wclayer. Every export returns an HRESULT. The
// structures are laid out as the C declarations hcsshim documents:
//
//   struct DriverInfo { GraphDriverType Flavour; LPCWSTR HomeDir; };   // Flavour 1 = filter driver
//   typedef struct _WC_LAYER_DESCRIPTOR { GUID LayerId; ULONG Flags; PCWSTR Path; } WC_LAYER_DESCRIPTOR;
//
// hcsshim always passes Flavour 1 with an empty (not NULL) HomeDir and full layer paths as
// ids, and builds each parent's descriptor from NameToGuid(basename(path)) with Flags 0;
// this file does the same.
using System;
using System.Collections.Generic;
using System.IO;
using System.Runtime.InteropServices;
using System.Text;

namespace WinLayer.Native
{
    [StructLayout(LayoutKind.Sequential)]
    internal struct DriverInfo
    {
        /// <summary>GraphDriverType: 0 DiffDriver, 1 FilterDriver.</summary>
        public int Flavour;
        public IntPtr HomeDir;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct WcLayerDescriptor
    {
        public Guid LayerId;
        /// <summary>Bit 31 is "Dirty" (created from a sandbox snapshot); hcsshim passes 0.</summary>
        public uint Flags;
        /// <summary>PCWSTR: the layer directory, NUL-terminated.</summary>
        public IntPtr Path;
    }

    /// <summary>A WC_LAYER_DESCRIPTOR[] in unmanaged memory, with the path strings it points at.</summary>
    internal sealed class LayerDescriptorArray : IDisposable
    {
        public static readonly int Stride = Marshal.SizeOf(typeof(WcLayerDescriptor));

        private readonly List<IntPtr> strings = new List<IntPtr>();
        private IntPtr pointer;
        private readonly int count;

        public LayerDescriptorArray(IList<string> paths, IList<Guid> ids, IList<uint> flags)
        {
            count = paths.Count;
            pointer = count == 0 ? IntPtr.Zero : Marshal.AllocHGlobal(Stride * count);
            try
            {
                for (int i = 0; i < count; i++)
                {
                    IntPtr s = Marshal.StringToHGlobalUni(paths[i]);
                    strings.Add(s);
                    WcLayerDescriptor d = new WcLayerDescriptor();
                    d.LayerId = ids[i];
                    d.Flags = flags == null ? 0u : flags[i];
                    d.Path = s;
                    Marshal.StructureToPtr(d, Offset(i), false);
                }
            }
            catch
            {
                Dispose();
                throw;
            }
        }

        public IntPtr Pointer { get { return pointer; } }
        public uint Count { get { return (uint)count; } }

        public IntPtr Offset(int index)
        {
            return new IntPtr(pointer.ToInt64() + (long)Stride * index);
        }

        /// <summary>Reads descriptor `index` back from unmanaged memory (the marshalling check).</summary>
        public WcLayerDescriptor Read(int index)
        {
            return (WcLayerDescriptor)Marshal.PtrToStructure(Offset(index), typeof(WcLayerDescriptor));
        }

        public void Dispose()
        {
            foreach (IntPtr s in strings) Marshal.FreeHGlobal(s);
            strings.Clear();
            if (pointer != IntPtr.Zero) Marshal.FreeHGlobal(pointer);
            pointer = IntPtr.Zero;
        }
    }

    internal static class Vmcompute
    {
        private const string Dll = "vmcompute.dll";

        [DllImport(Dll, EntryPoint = "ActivateLayer", CharSet = CharSet.Unicode, ExactSpelling = true)]
        private static extern int ActivateLayerNative(ref DriverInfo info, string id);

        [DllImport(Dll, EntryPoint = "CreateLayer", CharSet = CharSet.Unicode, ExactSpelling = true)]
        private static extern int CreateLayerNative(ref DriverInfo info, string id, string parent);

        [DllImport(Dll, EntryPoint = "CreateSandboxLayer", CharSet = CharSet.Unicode, ExactSpelling = true)]
        private static extern int CreateSandboxLayerNative(ref DriverInfo info, string id, IntPtr parent, IntPtr descriptors, uint descriptorCount);

        [DllImport(Dll, EntryPoint = "ExpandSandboxSize", CharSet = CharSet.Unicode, ExactSpelling = true)]
        private static extern int ExpandSandboxSizeNative(ref DriverInfo info, string id, ulong size);

        [DllImport(Dll, EntryPoint = "DeactivateLayer", CharSet = CharSet.Unicode, ExactSpelling = true)]
        private static extern int DeactivateLayerNative(ref DriverInfo info, string id);

        [DllImport(Dll, EntryPoint = "DestroyLayer", CharSet = CharSet.Unicode, ExactSpelling = true)]
        private static extern int DestroyLayerNative(ref DriverInfo info, string id);

        [DllImport(Dll, EntryPoint = "ExportLayer", CharSet = CharSet.Unicode, ExactSpelling = true)]
        private static extern int ExportLayerNative(ref DriverInfo info, string id, string path, IntPtr descriptors, uint descriptorCount);

        [DllImport(Dll, EntryPoint = "GetLayerMountPath", CharSet = CharSet.Unicode, ExactSpelling = true)]
        private static extern int GetLayerMountPathNative(ref DriverInfo info, string id, ref UIntPtr length, [Out] char[] buffer);

        [DllImport(Dll, EntryPoint = "ImportLayer", CharSet = CharSet.Unicode, ExactSpelling = true)]
        private static extern int ImportLayerNative(ref DriverInfo info, string id, string path, IntPtr descriptors, uint descriptorCount);

        [DllImport(Dll, EntryPoint = "LayerExists", CharSet = CharSet.Unicode, ExactSpelling = true)]
        private static extern int LayerExistsNative(ref DriverInfo info, string id, out uint exists);

        [DllImport(Dll, EntryPoint = "NameToGuid", CharSet = CharSet.Unicode, ExactSpelling = true)]
        private static extern int NameToGuidNative(string name, out Guid guid);

        [DllImport(Dll, EntryPoint = "PrepareLayer", CharSet = CharSet.Unicode, ExactSpelling = true)]
        private static extern int PrepareLayerNative(ref DriverInfo info, string id, IntPtr descriptors, uint descriptorCount);

        [DllImport(Dll, EntryPoint = "UnprepareLayer", CharSet = CharSet.Unicode, ExactSpelling = true)]
        private static extern int UnprepareLayerNative(ref DriverInfo info, string id);

        [DllImport(Dll, EntryPoint = "ProcessBaseImage", CharSet = CharSet.Unicode, ExactSpelling = true)]
        private static extern int ProcessBaseImageNative(string path);

        [DllImport(Dll, EntryPoint = "ProcessUtilityImage", CharSet = CharSet.Unicode, ExactSpelling = true)]
        private static extern int ProcessUtilityImageNative(string path);

        /// <summary>The size of DriverInfo as marshalled (16 on 64-bit: a 4-byte enum, padding, a pointer).</summary>
        public static readonly int DriverInfoSize = Marshal.SizeOf(typeof(DriverInfo));

        private delegate int HcsCall(ref DriverInfo info);

        /// <summary>Runs one vmcompute export with the filter-driver DriverInfo; a failed HRESULT throws.</summary>
        private static void Call(string function, string subject, HcsCall call)
        {
            if (!Platform.IsWindows) throw NativeError.Unsupported(function);
            IntPtr home = Marshal.StringToHGlobalUni("");
            try
            {
                DriverInfo info = new DriverInfo();
                info.Flavour = 1;
                info.HomeDir = home;
                int hr;
                try
                {
                    hr = call(ref info);
                }
                catch (DllNotFoundException)
                {
                    throw new NativeError(NativeError.UnsupportedPlatform, function,
                        subject + ": " + function + " needs vmcompute.dll, which is missing: enable the Windows Containers feature",
                        NativeError.ErrorNotSupported, NativeError.HResultFromWin32(NativeError.ErrorNotSupported));
                }
                catch (EntryPointNotFoundException)
                {
                    throw new NativeError(NativeError.UnsupportedPlatform, function,
                        subject + ": this Windows version's vmcompute.dll has no " + function,
                        NativeError.ErrorNotSupported, NativeError.HResultFromWin32(NativeError.ErrorNotSupported));
                }
                if (hr < 0) throw NativeError.FromHResult(function, subject, hr);
            }
            finally
            {
                Marshal.FreeHGlobal(home);
            }
        }

        /// <summary>A layer's id as vmcompute knows it: NameToGuid of the directory's base name (hcsshim LayerID).</summary>
        public static Guid LayerId(string layerPath)
        {
            return NameToGuid(Path.GetFileName(layerPath.TrimEnd('\\', '/')));
        }

        public static Guid NameToGuid(string name)
        {
            Guid g = Guid.Empty;
            Call("NameToGuid", name, delegate (ref DriverInfo info) { return NameToGuidNative(name, out g); });
            return g;
        }

        /// <summary>Descriptors for parent layers, nearest first (hcsshim layerPathsToDescriptors).</summary>
        private static LayerDescriptorArray Descriptors(IList<string> parents)
        {
            List<Guid> ids = new List<Guid>();
            foreach (string p in parents) ids.Add(LayerId(p));
            return new LayerDescriptorArray(parents, ids, null);
        }

        public static void ActivateLayer(string path)
        {
            Call("ActivateLayer", path, delegate (ref DriverInfo info) { return ActivateLayerNative(ref info, path); });
        }

        public static void DeactivateLayer(string path)
        {
            Call("DeactivateLayer", path, delegate (ref DriverInfo info) { return DeactivateLayerNative(ref info, path); });
        }

        public static void CreateLayer(string path, string parent)
        {
            Call("CreateLayer", path, delegate (ref DriverInfo info) { return CreateLayerNative(ref info, path, parent); });
        }

        /// <summary>A read-write (sandbox) layer over `parents`; hcsshim passes a NULL parent id and the full chain.</summary>
        public static void CreateSandboxLayer(string path, IList<string> parents)
        {
            RequireWindows("CreateSandboxLayer");
            using (LayerDescriptorArray d = Descriptors(parents))
            {
                Call("CreateSandboxLayer", path, delegate (ref DriverInfo info) { return CreateSandboxLayerNative(ref info, path, IntPtr.Zero, d.Pointer, d.Count); });
            }
        }

        public static void ExpandSandboxSize(string path, ulong size)
        {
            Call("ExpandSandboxSize", path, delegate (ref DriverInfo info) { return ExpandSandboxSizeNative(ref info, path, size); });
        }

        public static void DestroyLayer(string path)
        {
            Call("DestroyLayer", path, delegate (ref DriverInfo info) { return DestroyLayerNative(ref info, path); });
        }

        public static void ImportLayer(string path, string importFolder, IList<string> parents)
        {
            RequireWindows("ImportLayer");
            using (LayerDescriptorArray d = Descriptors(parents))
            {
                Call("ImportLayer", path, delegate (ref DriverInfo info) { return ImportLayerNative(ref info, path, importFolder, d.Pointer, d.Count); });
            }
        }

        public static void ExportLayer(string path, string exportFolder, IList<string> parents)
        {
            RequireWindows("ExportLayer");
            using (LayerDescriptorArray d = Descriptors(parents))
            {
                Call("ExportLayer", path, delegate (ref DriverInfo info) { return ExportLayerNative(ref info, path, exportFolder, d.Pointer, d.Count); });
            }
        }

        public static void PrepareLayer(string path, IList<string> parents)
        {
            RequireWindows("PrepareLayer");
            using (LayerDescriptorArray d = Descriptors(parents))
            {
                Call("PrepareLayer", path, delegate (ref DriverInfo info) { return PrepareLayerNative(ref info, path, d.Pointer, d.Count); });
            }
        }

        public static void UnprepareLayer(string path)
        {
            Call("UnprepareLayer", path, delegate (ref DriverInfo info) { return UnprepareLayerNative(ref info, path); });
        }

        /// <summary>The volume path of an activated, prepared layer; "" when it has none. Two calls: length, then text.</summary>
        public static string GetLayerMountPath(string path)
        {
            UIntPtr length = UIntPtr.Zero;
            Call("GetLayerMountPath", path, delegate (ref DriverInfo info) { return GetLayerMountPathNative(ref info, path, ref length, null); });
            if (length == UIntPtr.Zero) return "";
            char[] buffer = new char[(int)length.ToUInt64()];
            Call("GetLayerMountPath", path, delegate (ref DriverInfo info) { return GetLayerMountPathNative(ref info, path, ref length, buffer); });
            int end = Array.IndexOf(buffer, '\0');
            return new string(buffer, 0, end < 0 ? buffer.Length : end);
        }

        public static bool LayerExists(string path)
        {
            uint exists = 0;
            Call("LayerExists", path, delegate (ref DriverInfo info) { return LayerExistsNative(ref info, path, out exists); });
            return exists != 0;
        }

        public static void ProcessBaseImage(string path)
        {
            Call("ProcessBaseImage", path, delegate (ref DriverInfo info) { return ProcessBaseImageNative(path); });
        }

        public static void ProcessUtilityImage(string path)
        {
            Call("ProcessUtilityImage", path, delegate (ref DriverInfo info) { return ProcessUtilityImageNative(path); });
        }

        /// <summary>Fails before any descriptor work (NameToGuid) when not on Windows.</summary>
        private static void RequireWindows(string function)
        {
            if (!Platform.IsWindows) throw NativeError.Unsupported(function);
        }

        /// <summary>The GUID's bytes as they sit in memory (Data1..3 little-endian), for the marshalling check.</summary>
        public static string Hex(byte[] bytes)
        {
            StringBuilder sb = new StringBuilder(bytes.Length * 2);
            foreach (byte b in bytes) sb.Append(b.ToString("x2"));
            return sb.ToString();
        }
    }
}
