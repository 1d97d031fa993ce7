// The one place that decides between the Win32 code and the portable emulation. The
// Win32 declarations compile everywhere; they are only ever called when IsWindows holds,
// so the assembly loads and runs under Mono on Linux and macOS.
using System;
using System.Reflection;

namespace WinLayer.Native
{
    internal static class Platform
    {
        /// <summary>True on Windows (the P/Invoke paths); false on Unix (the managed emulation).</summary>
        public static readonly bool IsWindows = Environment.OSVersion.Platform == PlatformID.Win32NT;

        /// <summary>"windows" or "unix", as the bridge reports it.</summary>
        public static string Name
        {
            get { return IsWindows ? "windows" : "unix"; }
        }

        /// <summary>The runtime hosting us: Mono reports its display name, the .NET Framework its CLR version.</summary>
        public static string Runtime()
        {
            Type mono = Type.GetType("Mono.Runtime");
            if (mono != null)
            {
                MethodInfo display = mono.GetMethod("GetDisplayName", BindingFlags.NonPublic | BindingFlags.Static);
                object name = display == null ? null : display.Invoke(null, null);
                return "Mono " + (name == null ? Environment.Version.ToString() : name.ToString());
            }
            return ".NET Framework CLR " + Environment.Version;
        }

        public static string Describe()
        {
            return Name + ", " + Runtime();
        }
    }
}
