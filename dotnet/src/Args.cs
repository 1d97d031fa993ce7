// Reading the payloads edge-js hands over. A JavaScript object arrives as
// IDictionary<string, object>; numbers as int or double; Buffers as byte[]; arrays as
// object[]. A missing or mistyped argument is ERR_ARGUMENT_INVALID, never a crash.
using System;
using System.Collections.Generic;
using System.Globalization;

namespace WinLayer.Native
{
    internal static class Args
    {
        public static IDictionary<string, object> Of(object input, string operation)
        {
            if (input == null) return new Dictionary<string, object>();
            IDictionary<string, object> d = input as IDictionary<string, object>;
            if (d == null) throw Bad(operation, "the payload is not an object");
            return d;
        }

        public static string String(IDictionary<string, object> a, string key, string operation)
        {
            string s = Value(a, key, operation) as string;
            if (s == null) throw Bad(operation, key + " is not a string");
            if (s.IndexOf('\0') >= 0) throw Bad(operation, key + " contains NUL");
            return s;
        }

        public static string OptionalString(IDictionary<string, object> a, string key, string fallback)
        {
            object v;
            if (!a.TryGetValue(key, out v) || v == null) return fallback;
            string s = v as string;
            if (s == null) throw Bad(key, key + " is not a string");
            return s;
        }

        public static byte[] Bytes(IDictionary<string, object> a, string key, string operation)
        {
            byte[] b = Value(a, key, operation) as byte[];
            if (b == null) throw Bad(operation, key + " is not a Buffer");
            return b;
        }

        public static int Int(IDictionary<string, object> a, string key, string operation)
        {
            long v = Long(Value(a, key, operation), key, operation);
            if (v < int.MinValue || v > int.MaxValue) throw Bad(operation, key + " is out of range");
            return (int)v;
        }

        public static int OptionalInt(IDictionary<string, object> a, string key, int fallback)
        {
            object v;
            if (!a.TryGetValue(key, out v) || v == null) return fallback;
            long l = Long(v, key, key);
            if (l < int.MinValue || l > int.MaxValue) throw Bad(key, key + " is out of range");
            return (int)l;
        }

        public static long OptionalLong(IDictionary<string, object> a, string key, long fallback)
        {
            object v;
            if (!a.TryGetValue(key, out v) || v == null) return fallback;
            return Long(v, key, key);
        }

        public static bool OptionalBool(IDictionary<string, object> a, string key, bool fallback)
        {
            object v;
            if (!a.TryGetValue(key, out v) || v == null) return fallback;
            if (!(v is bool)) throw Bad(key, key + " is not a boolean");
            return (bool)v;
        }

        public static object[] Array(IDictionary<string, object> a, string key, string operation)
        {
            object[] v = Value(a, key, operation) as object[];
            if (v == null) throw Bad(operation, key + " is not an array");
            return v;
        }

        public static List<string> Strings(IDictionary<string, object> a, string key, string operation)
        {
            List<string> r = new List<string>();
            foreach (object o in Array(a, key, operation))
            {
                string s = o as string;
                if (s == null || s.IndexOf('\0') >= 0) throw Bad(operation, key + " holds something other than a string");
                r.Add(s);
            }
            return r;
        }

        /// <summary>FILETIMEs arrive as decimal strings (a JavaScript number cannot hold them).</summary>
        public static long FileTime(IDictionary<string, object> a, string key, string operation)
        {
            object v = Value(a, key, operation);
            string s = v as string;
            long t;
            if (s != null && long.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out t)) return t;
            if (s == null) return Long(v, key, operation);
            throw Bad(operation, key + " is not a FILETIME");
        }

        public static BasicInfo BasicInfo(IDictionary<string, object> a, string operation)
        {
            BasicInfo i = new BasicInfo();
            i.CreationTime = FileTime(a, "creationTime", operation);
            i.LastAccessTime = FileTime(a, "lastAccessTime", operation);
            i.LastWriteTime = FileTime(a, "lastWriteTime", operation);
            i.ChangeTime = FileTime(a, "changeTime", operation);
            long attributes = Long(Value(a, "fileAttributes", operation), "fileAttributes", operation);
            if (attributes < 0 || attributes > uint.MaxValue) throw Bad(operation, "fileAttributes is not a u32");
            i.FileAttributes = (uint)attributes;
            return i;
        }

        public static Dictionary<string, object> FromBasicInfo(BasicInfo i)
        {
            Dictionary<string, object> r = new Dictionary<string, object>();
            r["creationTime"] = i.CreationTime.ToString(CultureInfo.InvariantCulture);
            r["lastAccessTime"] = i.LastAccessTime.ToString(CultureInfo.InvariantCulture);
            r["lastWriteTime"] = i.LastWriteTime.ToString(CultureInfo.InvariantCulture);
            r["changeTime"] = i.ChangeTime.ToString(CultureInfo.InvariantCulture);
            r["fileAttributes"] = (long)i.FileAttributes;
            return r;
        }

        private static object Value(IDictionary<string, object> a, string key, string operation)
        {
            object v;
            if (!a.TryGetValue(key, out v) || v == null) throw Bad(operation, key + " is missing");
            return v;
        }

        private static long Long(object v, string key, string operation)
        {
            if (v is int) return (int)v;
            if (v is long) return (long)v;
            // edge-js picks the CLR type by value (int, uint, double...): accept any integral number.
            if (v is uint || v is double || v is float || v is short || v is ushort || v is byte || v is sbyte || v is ulong || v is decimal)
            {
                double d = Convert.ToDouble(v, CultureInfo.InvariantCulture);
                if (d != Math.Floor(d) || d < -9007199254740991.0 || d > 9007199254740991.0) throw Bad(operation, key + " is not a safe integer");
                return (long)d;
            }
            throw Bad(operation, key + " is not a number");
        }

        private static NativeError Bad(string operation, string message)
        {
            return NativeError.Invalid(NativeError.ArgumentInvalid, operation, operation + ": " + message);
        }
    }
}
