// Command gen-tar-golden writes the golden tar fixtures that test/tar/encode.test.ts compares
// encodeTarHeader against, byte for byte.
//
// It uses only Go's standard archive/tar, and builds headers the way the Windows producers do
// (docs: /work/shared/FORMATS.md §2.2–2.5): go-winio's backuptar (Format PAX, type bits in
// Mode, MSWINDOWS.* and LIBARCHIVE.creationtime records, atime/ctime), hcsshim's hard links,
// and moby/hcsshim whiteouts (a bare tar.Header{Name: ...}). For every entry it records the
// Header it gave Go (as JSON, in the shape of our TarHeaderInput), where the bytes Go wrote for
// that header start and how long they are.
//
// Run from the repository root:  go run scripts/golden/gen-tar-golden.go
package main

import (
	"archive/tar"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

const outDir = "test/fixtures/tar"

// Win32 file attributes and the tar mode type bits go-winio uses.
const (
	attrReadOnly     = 0x1
	attrHidden       = 0x2
	attrDirectory    = 0x10
	attrArchive      = 0x20
	attrReparsePoint = 0x400
	modeDir          = 0o40000
	modeRegular      = 0o100000
	modeSymlink      = 0o120000
)

// Record keys of Windows layer tars.
const (
	keyFileAttr     = "MSWINDOWS.fileattr"
	keyRawSD        = "MSWINDOWS.rawsd"
	keyMountPoint   = "MSWINDOWS.mountpoint"
	keyEAPrefix     = "MSWINDOWS.xattr."
	keyCreationTime = "LIBARCHIVE.creationtime"
)

// input mirrors TarHeaderInput in src/tar/encode.ts; times are Unix nanoseconds in decimal.
type input struct {
	Name       string            `json:"name"`
	Typeflag   string            `json:"typeflag"`
	Mode       int64             `json:"mode"`
	Size       int64             `json:"size"`
	Linkname   string            `json:"linkname,omitempty"`
	Mtime      string            `json:"mtime"`
	Atime      string            `json:"atime,omitempty"`
	Ctime      string            `json:"ctime,omitempty"`
	PaxRecords map[string]string `json:"paxRecords,omitempty"`
	Format     string            `json:"format"`
}

type goldenEntry struct {
	Title string `json:"title"`
	Input input  `json:"input"`
	// ZeroModTime: Go got the zero time.Time (moby whiteouts); Input.Mtime is then "0".
	ZeroModTime  bool   `json:"zeroModTime,omitempty"`
	Offset       int    `json:"offset"`
	HeaderLength int    `json:"headerLength"`
	Body         string `json:"body"` // base64 of the data written after the header
}

type goldenFile struct {
	File string `json:"file"`
	// Complete: a whole archive closed with Writer.Close; otherwise only headers, back to back.
	Complete bool          `json:"complete"`
	Entries  []goldenEntry `json:"entries"`
}

type golden struct {
	GoVersion string       `json:"goVersion"`
	Files     []goldenFile `json:"files"`
}

type entry struct {
	title string
	hdr   *tar.Header
	body  []byte
}

// utc builds a UTC time; FILETIMEs have 100 ns resolution, so callers keep ns a multiple of 100.
func utc(year int, month time.Month, day, hour, min, sec, ns int) int64 {
	return time.Date(year, month, day, hour, min, sec, ns, time.UTC).UnixNano()
}

// paxTime renders Unix nanoseconds the way go-winio writes LIBARCHIVE.creationtime: whole
// seconds, then a dot and the fraction without trailing zeros; a negative time with a fraction
// is written as its magnitude with a leading minus sign.
func paxTime(ns int64) string {
	t := time.Unix(0, ns)
	secs, frac := t.Unix(), int64(t.Nanosecond())
	if frac == 0 {
		return strconv.FormatInt(secs, 10)
	}
	sign := ""
	if secs < 0 {
		sign, secs, frac = "-", -secs-1, 1_000_000_000-frac
	}
	return strings.TrimRight(fmt.Sprintf("%s%d.%09d", sign, secs, frac), "0")
}

type times struct{ creation, access, write, change int64 }

// winioHeader builds what go-winio's BasicInfoHeader builds for a file or directory.
func winioHeader(name string, size int64, attrs uint32, t times) *tar.Header {
	hdr := &tar.Header{
		Format:     tar.FormatPAX,
		Name:       name,
		Size:       size,
		Typeflag:   tar.TypeReg,
		ModTime:    time.Unix(0, t.write),
		AccessTime: time.Unix(0, t.access),
		ChangeTime: time.Unix(0, t.change),
		PAXRecords: map[string]string{
			keyFileAttr:     strconv.FormatUint(uint64(attrs), 10),
			keyCreationTime: paxTime(t.creation),
		},
	}
	if attrs&attrDirectory != 0 {
		hdr.Mode |= modeDir
		hdr.Size = 0
		hdr.Typeflag = tar.TypeDir
	}
	return hdr
}

// withData marks the header as having a DATA stream, as WriteTarFileFromBackupStream does.
func withData(hdr *tar.Header) *tar.Header { hdr.Mode |= modeRegular; return hdr }

// asLink turns the header into a reparse point entry (symlink or junction).
func asLink(hdr *tar.Header, target string, junction bool) *tar.Header {
	hdr.Typeflag = tar.TypeSymlink
	hdr.Mode |= modeSymlink
	hdr.Linkname = target
	if junction {
		hdr.PAXRecords[keyMountPoint] = "1"
	}
	return hdr
}

func withSD(hdr *tar.Header, sd []byte) *tar.Header {
	hdr.PAXRecords[keyRawSD] = base64.StdEncoding.EncodeToString(sd)
	return hdr
}

// ads builds an alternate-data-stream entry as go-winio does; old releases left Format unset.
func ads(file *tar.Header, stream string, body []byte, keepFormat bool) entry {
	hdr := &tar.Header{
		Name:       file.Name + ":" + stream,
		Mode:       file.Mode,
		Typeflag:   tar.TypeReg,
		Size:       int64(len(body)),
		ModTime:    file.ModTime,
		AccessTime: file.AccessTime,
		ChangeTime: file.ChangeTime,
	}
	if keepFormat {
		hdr.Format = file.Format
	}
	return entry{"ADS " + stream, hdr, body}
}

// whiteout is the bare header moby and hcsshim write for a deletion.
func whiteout(title, name string) entry {
	return entry{title, &tar.Header{Name: name}, nil}
}

// A fake self-relative security descriptor: only its bytes matter here.
var sd = []byte{1, 0, 4, 0x80, 0x14, 0, 0, 0, 0x24, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 5, 0x20, 0, 0, 0, 0x21, 2, 0, 0}

func winioEntries() []entry {
	whole := times{utc(2020, 1, 2, 3, 4, 5, 0), utc(2020, 1, 2, 3, 4, 6, 0), utc(2020, 1, 2, 3, 4, 7, 0), utc(2020, 1, 2, 3, 4, 8, 0)}
	frac := times{utc(2021, 6, 7, 8, 9, 10, 123_456_700), utc(2021, 6, 7, 8, 9, 11, 100), utc(2021, 6, 7, 8, 9, 12, 500_000_000), utc(2021, 6, 7, 8, 9, 13, 999_999_900)}
	old := times{utc(1900, 1, 1, 0, 0, 0, 100), -1_500_000_000, utc(1969, 12, 31, 23, 59, 59, 0), utc(1700, 3, 4, 5, 6, 7, 800)}
	far := times{utc(2250, 1, 1, 0, 0, 0, 0), utc(2250, 1, 1, 0, 0, 1, 0), utc(2250, 1, 1, 0, 0, 2, 0), utc(2250, 1, 1, 0, 0, 3, 300)}

	hello := withSD(withData(winioHeader("Files/hello.txt", 13, attrArchive, frac)), sd)
	eas := withData(winioHeader("Files/with-eas.txt", 3, attrArchive|attrHidden, whole))
	eas.PAXRecords[keyEAPrefix+"USER.COMMENT"] = base64.StdEncoding.EncodeToString([]byte("hello"))
	eas.PAXRecords[keyEAPrefix+"$KERNEL.PURGE.ESBCACHE"] = base64.StdEncoding.EncodeToString([]byte{0, 1, 2, 3, 0xff})
	eas.PAXRecords[keyEAPrefix+"Z"] = ""

	deep := "Files"
	for i := 0; deep == "Files" || len(deep) <= 300; i++ {
		deep += fmt.Sprintf("/segment-%02d", i)
	}
	deepUnicode := "Files"
	for i := 0; len(deepUnicode) <= 280; i++ {
		deepUnicode += fmt.Sprintf("/Ünïcödé-ディレクトリ-%d", i)
	}

	entries := []entry{
		{"Files directory, whole-second times", withSD(winioHeader("Files", 0, attrDirectory, whole), sd), nil},
		{"Hives directory", winioHeader("Hives", 0, attrDirectory, whole), nil},
		{"plain file, 100-ns times", hello, []byte("hello, world\n")},
		ads(hello, "stream1", []byte("ads!\n"), true),
		ads(hello, "old-winio", []byte("old ADS"), false),
		{"empty file without a DATA stream (mode 0)", winioHeader("Files/empty-nodata.txt", 0, attrArchive, whole), nil},
		{"empty file with a DATA stream", withData(winioHeader("Files/empty.txt", 0, attrArchive, whole)), nil},
		{"file symlink", asLink(winioHeader("Files/link-to-hello", 0, attrArchive|attrReparsePoint, whole), "hello.txt", false), nil},
		{"directory symlink (mode 0o160000)", asLink(winioHeader("Files/dirlink", 0, attrDirectory|attrReparsePoint, frac), `..\Files`, false), nil},
		{"junction", asLink(winioHeader("Files/junction", 0, attrDirectory|attrReparsePoint, whole), `C:\ProgramData`, true), nil},
		{"symlink with a long target", asLink(winioHeader("Files/longlink", 0, attrArchive|attrReparsePoint, whole), `..\`+strings.Repeat(`deep\`, 30)+"target.txt", false), nil},
		{"symlink with a non-ASCII target", asLink(winioHeader("Files/unilink", 0, attrArchive|attrReparsePoint, whole), `Ünï\ziel-😀.txt`, false), nil},
		{"extended attributes", eas, []byte("EA!")},
		{"name over 100 bytes", withData(winioHeader("Files/"+strings.Repeat("a", 120)+".txt", 4, attrArchive, whole)), []byte("long")},
		{"name with '/' at byte 100", withData(winioHeader("Files/"+strings.Repeat("b", 93)+"/tail.txt", 0, attrArchive, whole)), nil},
		{"name with '//' at bytes 99-100", withData(winioHeader("Files/"+strings.Repeat("c", 92)+"//tail.txt", 0, attrArchive, whole)), nil},
		{"non-ASCII name", withData(winioHeader("Files/日本語/ファイル.txt", 2, attrArchive, whole)), []byte("jp")},
		{"name outside the BMP", withData(winioHeader("Files/emoji-😀-𝄞.txt", 1, attrArchive, frac)), []byte("!")},
		{"non-ASCII directory", winioHeader("Files/Ünïcödé", 0, attrDirectory|attrReadOnly, whole), nil},
		{"path over 260 characters", withData(winioHeader(deep+"/file.txt", 0, attrArchive, whole)), nil},
		{"non-ASCII path over 260 bytes", winioHeader(deepUnicode, 0, attrDirectory, frac), nil},
		{"pre-1970 times", withData(winioHeader("Files/old.txt", 3, attrArchive, old)), []byte("old")},
		{"mtime beyond the octal field (2250)", withData(winioHeader("Files/future.txt", 0, attrArchive, far)), nil},
	}
	link := winioHeader("Files/hardlink.txt", 0, attrArchive, frac)
	link.Typeflag = tar.TypeLink
	link.Linkname = "Files/hello.txt"
	link.Mode = 0o644
	return append(entries, entry{"hard link (hcsshim)", link, nil})
}

func whiteoutEntries() []entry {
	return []entry{
		whiteout("whiteout, short name", "Files/.wh.deleted.txt"),
		whiteout("whiteout, long splittable name", "Files/"+strings.Repeat("averyveryverylongdirectoryname/", 4)+".wh.gone"),
		whiteout("whiteout, non-ASCII name", "Files/Ünï/.wh.naïve.txt"),
		whiteout("whiteout, basename over 100 bytes", "Files/.wh."+strings.Repeat("x", 120)),
		whiteout("whiteout, prefix over 155 bytes", "Files/"+strings.Repeat("p", 170)+"/.wh.f"),
		whiteout("opaque whiteout", "Files/dir/.wh..wh..opq"),
	}
}

func edgeEntries() []entry {
	base := time.Unix(1_600_000_000, 0)
	pax := func(name string, typeflag byte, records map[string]string) *tar.Header {
		return &tar.Header{Format: tar.FormatPAX, Name: name, Typeflag: typeflag, Mode: modeRegular, ModTime: base, PAXRecords: records}
	}
	attr := func() map[string]string { return map[string]string{keyFileAttr: "32"} }
	long := strings.Repeat("averyveryverylongdirectoryname/", 4) + "file.txt"
	lengths := map[string]string{}
	for n := 84; n <= 92; n++ {
		lengths[fmt.Sprintf("TEST.len%03d", n)] = strings.Repeat("v", n)
	}
	for n := 983; n <= 990; n++ {
		lengths[fmt.Sprintf("TEST.len%03d", n)] = strings.Repeat("w", n)
	}
	return []entry{
		{"PAX format without records (ggcr directory) stays USTAR", &tar.Header{Format: tar.FormatPAX, Name: "Files", Typeflag: tar.TypeDir, Mode: 0o555, ModTime: base}, nil},
		{"PAX format without records, long name: USTAR prefix", &tar.Header{Format: tar.FormatPAX, Name: long, Typeflag: tar.TypeReg, ModTime: base}, nil},
		{"PAX format without records, sub-second mtime", &tar.Header{Format: tar.FormatPAX, Name: "subsecond.txt", Typeflag: tar.TypeReg, ModTime: time.Unix(5, 250_000_000)}, nil},
		{"legacy type with trailing slash", &tar.Header{Name: "legacy-dir/", ModTime: base}, nil},
		{"legacy type without slash", &tar.Header{Name: "legacy-file", Size: 2, ModTime: base}, []byte("ok")},
		{"unknown format rounds mtime up", &tar.Header{Name: "round-up", Typeflag: tar.TypeReg, ModTime: time.Unix(10, 600_000_000), AccessTime: time.Unix(3, 0), ChangeTime: time.Unix(4, 0)}, nil},
		{"unknown format rounds mtime down", &tar.Header{Name: "round-down", Typeflag: tar.TypeReg, ModTime: time.Unix(10, 400_000_000)}, nil},
		{"unknown format rounds a half second up", &tar.Header{Name: "round-half", Typeflag: tar.TypeReg, ModTime: time.Unix(10, 500_000_000)}, nil},
		{"unknown format, negative mtime", &tar.Header{Name: "negative", Typeflag: tar.TypeReg, ModTime: time.Unix(-2, 500_000_000)}, nil},
		{"unknown format with records", &tar.Header{Name: "records-no-format", Typeflag: tar.TypeReg, ModTime: base, PAXRecords: attr()}, nil},
		{"x-header name: dot segments", pax("./dot/./seg/../file.txt", tar.TypeReg, attr()), nil},
		{"x-header name: double slashes", pax("a//b///c.txt", tar.TypeReg, attr()), nil},
		{"x-header name: rooted", pax("/abs/x.txt", tar.TypeReg, attr()), nil},
		{"x-header name: parent", pax("../up/x.txt", tar.TypeReg, attr()), nil},
		{"x-header name: rooted parent", pax("/../x.txt", tar.TypeReg, attr()), nil},
		{"x-header name: trailing slash", pax("trailing-dir/", tar.TypeDir, attr()), nil},
		{"x-header name: no directory", pax("just-a-name.txt", tar.TypeReg, attr()), nil},
		{"x-header name: non-ASCII", pax("日本/ü/ファイル.txt", tar.TypeReg, attr()), nil},
		{"x-header name: truncated at a slash", pax(strings.Repeat("d", 86)+"/file.txt", tar.TypeReg, attr()), nil},
		{"basic keys in user records", pax("basic.txt", tar.TypeReg, map[string]string{
			"path": "basic.txt", "mtime": "123", "size": "99", "uid": "0", "uname": "", "GNU.sparse.major": "1", keyFileAttr: "32",
		}), nil},
		{"only dropped user records: PAX without an x entry", pax("dropped.txt", tar.TypeReg, map[string]string{"size": "99"}), nil},
		{"only dropped user records, long name: path record, no prefix split", pax(long, tar.TypeReg, map[string]string{"size": "99"}), nil},
		{"record keys sorted by UTF-8 bytes", pax("sorted.txt", tar.TypeReg, map[string]string{
			keyEAPrefix + "é": "1", keyEAPrefix + "z": "2", keyEAPrefix + "Z": "3", keyEAPrefix + "Ａ": "4", keyEAPrefix + "😀": "5", "atime.x": "6",
		}), nil},
		{"record value with NUL and newline", pax("binary.txt", tar.TypeReg, map[string]string{keyEAPrefix + "bin": "a\x00b\nc"}), nil},
		{"record lengths crossing digit counts", pax("lengths.txt", tar.TypeReg, lengths), nil},
	}
}

func headerOnlyEntries() []entry {
	base := time.Unix(1_600_000_000, 0)
	attr := func() map[string]string { return map[string]string{keyFileAttr: "32"} }
	return []entry{
		{"size 8 GiB - 1 fits octal", &tar.Header{Format: tar.FormatPAX, Name: "big-fits", Typeflag: tar.TypeReg, Mode: modeRegular, Size: 1<<33 - 1, ModTime: base, PAXRecords: attr()}, nil},
		{"size 8 GiB needs a size record", &tar.Header{Format: tar.FormatPAX, Name: "big-8g", Typeflag: tar.TypeReg, Mode: modeRegular, Size: 1 << 33, ModTime: base, PAXRecords: attr()}, nil},
		{"size 10 GiB, unknown format", &tar.Header{Name: "big-10g", Typeflag: tar.TypeReg, Size: 10 << 30, ModTime: base}, nil},
		{"size 2^53 - 1", &tar.Header{Format: tar.FormatPAX, Name: "big-max", Typeflag: tar.TypeReg, Mode: modeRegular, Size: 1<<53 - 1, ModTime: base, AccessTime: base}, nil},
	}
}

func describe(e entry) (input, bool) {
	h := e.hdr
	in := input{Name: h.Name, Typeflag: string([]byte{h.Typeflag}), Mode: h.Mode, Size: h.Size, Linkname: h.Linkname, PaxRecords: h.PAXRecords}
	zero := h.ModTime.IsZero()
	in.Mtime = "0"
	if !zero {
		in.Mtime = strconv.FormatInt(h.ModTime.UnixNano(), 10)
	}
	if !h.AccessTime.IsZero() {
		in.Atime = strconv.FormatInt(h.AccessTime.UnixNano(), 10)
	}
	if !h.ChangeTime.IsZero() {
		in.Ctime = strconv.FormatInt(h.ChangeTime.UnixNano(), 10)
	}
	switch h.Format {
	case tar.FormatPAX:
		in.Format = "pax"
	case tar.FormatUnknown:
		in.Format = "unknown"
	default:
		panic("unexpected format " + h.Format.String())
	}
	return in, zero
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// writeArchive writes a complete archive; headersOnly writes each header with a fresh Writer and no data.
func writeArchive(file string, entries []entry, headersOnly bool) goldenFile {
	var buf bytes.Buffer
	out := goldenFile{File: file, Complete: !headersOnly}
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		if headersOnly {
			tw = tar.NewWriter(&buf)
		}
		must(tw.Flush()) // pad the previous entry first, so the offset is where this header starts
		in, zero := describe(e)
		start := buf.Len()
		must(tw.WriteHeader(e.hdr))
		headerLength := buf.Len() - start
		if !headersOnly {
			_, err := tw.Write(e.body)
			must(err)
		}
		out.Entries = append(out.Entries, goldenEntry{
			Title: e.title, Input: in, ZeroModTime: zero, Offset: start, HeaderLength: headerLength,
			Body: base64.StdEncoding.EncodeToString(e.body),
		})
	}
	if !headersOnly {
		must(tw.Close())
	}
	must(os.WriteFile(filepath.Join(outDir, file), buf.Bytes(), 0o644))
	return out
}

func main() {
	must(os.MkdirAll(outDir, 0o755))
	g := golden{GoVersion: runtime.Version()}
	g.Files = append(g.Files,
		writeArchive("golden-winio.tar", winioEntries(), false),
		writeArchive("golden-whiteout.tar", whiteoutEntries(), false),
		writeArchive("golden-edge.tar", edgeEntries(), false),
		writeArchive("golden-headers-only.bin", headerOnlyEntries(), true),
	)
	data, err := json.MarshalIndent(g, "", "  ")
	must(err)
	must(os.WriteFile(filepath.Join(outDir, "golden.json"), append(data, '\n'), 0o644))
}
