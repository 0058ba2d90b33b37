package upload

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
	"github.com/hangar-oss/hangar/internal/hangar"
)

// randomBytes returns n deterministic pseudo-random bytes.
func randomBytes(tb testing.TB, n int, seed uint64) []byte {
	tb.Helper()
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed)}).Read(b)
	return b
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func TestDecode_RoundTrip(t *testing.T) {
	t.Parallel()
	archive := randomBytes(t, 20<<20, 1)
	body := `{"application_archive":"` + b64(archive) + `"}`
	// HalfReader and DataErrReader exercise short reads and data arriving
	// together with io.EOF.
	readers := map[string]func(io.Reader) io.Reader{
		"Plain":   func(r io.Reader) io.Reader { return r },
		"DataErr": iotest.DataErrReader,
		"Half":    iotest.HalfReader,
	}
	for name, wrap := range readers {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			got, err := Decode(wrap(strings.NewReader(body)), &out, 0)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			want := Request{HasArchive: true, ArchiveBytes: int64(len(archive)), ArchiveSHA256: digest(archive)}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Request (-want +got):\n%s", diff)
			}
			if got := digest(out.Bytes()); got != want.ArchiveSHA256 {
				t.Errorf("written archive sha256 = %s, want %s", got, want.ArchiveSHA256)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	t.Parallel()
	small := randomBytes(t, 3000, 2)
	enc := b64(small)
	// Base64 with a '/' so the escaped-slash case means something.
	slashy := []byte{0xff, 0xff, 0xff, 0xfc, 0x00, 0x3f}
	encSlashy := b64(slashy)
	if !strings.Contains(encSlashy, "/") {
		t.Fatalf("test data %q has no '/'", encSlashy)
	}
	archive := func(b []byte) Request {
		return Request{HasArchive: true, ArchiveBytes: int64(len(b)), ArchiveSHA256: digest(b)}
	}
	mime := func(s string) string { // line breaks every 76 chars, as JSON "\n" escapes
		var b strings.Builder
		for len(s) > 76 {
			b.WriteString(s[:76] + `\n`)
			s = s[76:]
		}
		return b.String() + s + `\r\n`
	}
	tests := []struct {
		name string
		body string
		want Request
		kind hangar.Kind // error kind; "" for success
	}{
		{name: "ArchiveOnly", body: `{"application_archive":"` + enc + `"}`, want: archive(small)},
		{name: "PreviousVersionOnly", body: `{"previous_version":"01JDXYZ"}`, want: Request{PreviousVersion: "01JDXYZ"}},
		{name: "ArchiveThenTarget", body: `{"application_archive":"` + enc + `","target_database_name":"db2"}`,
			want: Request{TargetDatabaseName: "db2", HasArchive: true, ArchiveBytes: 3000, ArchiveSHA256: digest(small)}},
		{name: "TargetThenArchive", body: `{"target_database_name":"db2","application_archive":"` + enc + `"}`,
			want: Request{TargetDatabaseName: "db2", HasArchive: true, ArchiveBytes: 3000, ArchiveSHA256: digest(small)}},
		{name: "PreviousVersionAndTarget", body: `{"target_database_name":"db2","previous_version":"v1"}`,
			want: Request{PreviousVersion: "v1", TargetDatabaseName: "db2"}},
		{name: "Whitespace", body: " \r\n\t{ \n \"application_archive\" \t:\r\n \"" + enc + "\" \n , \"previous_version\" : \"v1\"\n}\n\t ",
			want: Request{PreviousVersion: "v1", HasArchive: true, ArchiveBytes: 3000, ArchiveSHA256: digest(small)}},
		{name: "EscapedSlash", body: `{"application_archive":"` + strings.ReplaceAll(encSlashy, "/", `\/`) + `"}`, want: archive(slashy)},
		{name: "EscapedNewlines", body: `{"application_archive":"` + mime(enc) + `"}`, want: archive(small)},
		{name: "UnicodeEscapes", body: `{"application_archive":"` + strings.ReplaceAll(encSlashy, "/", `\u002F`) + `"}`, want: archive(slashy)},
		{name: "EscapedKeys", body: `{"application\u005farchive":"` + enc + `","previous\u005Fversion":"v\u00e9"}`,
			want: Request{PreviousVersion: "vé", HasArchive: true, ArchiveBytes: 3000, ArchiveSHA256: digest(small)}},
		{name: "EmptyArchive", body: `{"application_archive":""}`, want: archive(nil)},
		{name: "EmptyObject", body: `{}`, want: Request{}},
		{name: "NullValues", body: `{"application_archive":null,"previous_version":null,"target_database_name":null}`, want: Request{}},
		{name: "NullArchiveWithVersion", body: `{"application_archive" : null , "previous_version":"v2"}`, want: Request{PreviousVersion: "v2"}},
		{name: "UnknownKeys", body: `{"x":{"a":[1,{"b":"}]\"{"}],"c":null},"application_archive":"` + enc + `","y":[[]],"z":-1.5e3,"w":true,"v":"\\\""}`,
			want: archive(small)},
		{name: "UnknownKeyRepeated", body: `{"x":1,"x":2,"previous_version":"v1"}`, want: Request{PreviousVersion: "v1"}},

		{name: "Empty", body: ``, kind: hangar.KindInvalid},
		{name: "NotObject", body: `["application_archive"]`, kind: hangar.KindInvalid},
		{name: "TruncatedInArchive", body: `{"application_archive":"` + enc[:1000], kind: hangar.KindInvalid},
		{name: "TruncatedAfterArchive", body: `{"application_archive":"` + enc + `"`, kind: hangar.KindInvalid},
		{name: "TruncatedInKey", body: `{"applicat`, kind: hangar.KindInvalid},
		{name: "TruncatedInValue", body: `{"x":{"a":[1,2`, kind: hangar.KindInvalid},
		{name: "TruncatedScalar", body: `{"x":123`, kind: hangar.KindInvalid},
		{name: "InvalidBase64", body: `{"application_archive":"` + enc[:100] + `!` + enc[101:] + `"}`, kind: hangar.KindInvalid},
		{name: "Base64BadLength", body: `{"application_archive":"` + enc[:101] + `"}`, kind: hangar.KindInvalid},
		{name: "Base64AfterPadding", body: `{"application_archive":"Zg==Zg=="}`, kind: hangar.KindInvalid},
		{name: "RawControlChar", body: "{\"application_archive\":\"Zm9v\tYmFy\"}", kind: hangar.KindInvalid},
		{name: "Base64EscapedTab", body: `{"application_archive":"Zm9v\tYmFy"}`, kind: hangar.KindInvalid},
		{name: "Base64NonASCIIEscape", body: `{"application_archive":"Zm9v\u00e9Fy"}`, kind: hangar.KindInvalid},
		{name: "BadEscape", body: `{"application_archive":"Zm9v\xYmFy"}`, kind: hangar.KindInvalid},
		{name: "ArchiveNotString", body: `{"application_archive":123}`, kind: hangar.KindInvalid},
		{name: "ArchiveObject", body: `{"application_archive":{"a":1}}`, kind: hangar.KindInvalid},
		{name: "DuplicateArchive", body: `{"application_archive":"Zm9v","application_archive":"YmFy"}`, kind: hangar.KindInvalid},
		{name: "VersionNotString", body: `{"previous_version":12}`, kind: hangar.KindInvalid},
		{name: "MissingColon", body: `{"previous_version" "v1"}`, kind: hangar.KindInvalid},
		{name: "MissingValue", body: `{"previous_version":}`, kind: hangar.KindInvalid},
		{name: "TrailingComma", body: `{"previous_version":"v1",}`, kind: hangar.KindInvalid},
		{name: "MissingComma", body: `{"previous_version":"v1" "x":1}`, kind: hangar.KindInvalid},
		{name: "UnquotedKey", body: `{previous_version:"v1"}`, kind: hangar.KindInvalid},
		{name: "MalformedUnknown", body: `{"x":tru,"previous_version":"v1"}`, kind: hangar.KindInvalid},
		{name: "MalformedNested", body: `{"x":{"a":1]}`, kind: hangar.KindInvalid},
		{name: "DataAfterObject", body: `{"previous_version":"v1"} {}`, kind: hangar.KindInvalid},
		{name: "HugeUnknownValue", body: `{"x":"` + strings.Repeat("a", MaxValueBytes) + `"}`, kind: hangar.KindTooLarge},
		{name: "HugeKey", body: `{"` + strings.Repeat("a", MaxValueBytes) + `":1}`, kind: hangar.KindTooLarge},
		{name: "HugeNested", body: `{"x":[` + strings.Repeat("1,", MaxValueBytes/2) + `1]}`, kind: hangar.KindTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			got, err := Decode(strings.NewReader(tt.body), &out, 0)
			if tt.kind != "" {
				if err == nil {
					t.Fatalf("Decode = %+v, want a %s error", got, tt.kind)
				}
				if k := hangar.KindOf(err); k != tt.kind {
					t.Fatalf("error kind = %s (%v), want %s", k, err, tt.kind)
				}
				if hangar.MessageOf(err) == "" {
					t.Errorf("error %v has no user-safe message", err)
				}
				t.Logf("%s: %s", hangar.KindOf(err), hangar.MessageOf(err))
				return
			}
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Request (-want +got):\n%s", diff)
			}
			if got.HasArchive {
				if d := digest(out.Bytes()); d != tt.want.ArchiveSHA256 {
					t.Errorf("written archive sha256 = %s, want %s", d, tt.want.ArchiveSHA256)
				}
			} else if out.Len() != 0 {
				t.Errorf("wrote %d archive bytes without an archive", out.Len())
			}
		})
	}
}

func TestDecode_TooLarge(t *testing.T) {
	t.Parallel()
	archive := randomBytes(t, 1<<20+1, 3)
	body := `{"application_archive":"` + b64(archive) + `"}`
	tests := []struct {
		name string
		max  int64
		kind hangar.Kind
		msg  string
	}{
		{name: "OneOver", max: 1 << 20, kind: hangar.KindTooLarge, msg: "the application archive exceeds the size limit of 1 MiB"},
		{name: "Odd", max: 1000, kind: hangar.KindTooLarge, msg: "the application archive exceeds the size limit of 1000 bytes"},
		{name: "Exact", max: 1<<20 + 1},
		{name: "Unbounded", max: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			got, err := Decode(strings.NewReader(body), &out, tt.max)
			if tt.kind == "" {
				if err != nil || got.ArchiveBytes != int64(len(archive)) {
					t.Fatalf("Decode = %+v, %v; want the whole archive", got, err)
				}
				return
			}
			if hangar.KindOf(err) != tt.kind || hangar.MessageOf(err) != tt.msg {
				t.Fatalf("error = %v (kind %s), want %s %q", err, hangar.KindOf(err), tt.kind, tt.msg)
			}
			if int64(out.Len()) > tt.max {
				t.Errorf("wrote %d bytes, more than the %d limit", out.Len(), tt.max)
			}
		})
	}
}

func TestDecode_IOErrors(t *testing.T) {
	t.Parallel()
	t.Run("Reader", func(t *testing.T) {
		t.Parallel()
		boom := errors.New("connection reset")
		r := io.MultiReader(strings.NewReader(`{"application_archive":"Zm9v`), iotest.ErrReader(boom))
		_, err := Decode(r, io.Discard, 0)
		if !errors.Is(err, boom) || hangar.KindOf(err) != hangar.KindInternal {
			t.Errorf("got %v (kind %s), want an internal error wrapping %v", err, hangar.KindOf(err), boom)
		}
	})
	t.Run("CutShort", func(t *testing.T) {
		t.Parallel()
		// net/http reports a body shorter than its Content-Length so.
		r := io.MultiReader(strings.NewReader(`{"application_archive":"Zm9v`), iotest.ErrReader(io.ErrUnexpectedEOF))
		if _, err := Decode(r, io.Discard, 0); hangar.KindOf(err) != hangar.KindInvalid {
			t.Errorf("got %v (kind %s), want %s", err, hangar.KindOf(err), hangar.KindInvalid)
		}
	})
	t.Run("Writer", func(t *testing.T) {
		t.Parallel()
		boom := errors.New("disk full")
		_, err := Decode(strings.NewReader(`{"application_archive":"Zm9vYmFy"}`), errWriter{boom}, 0)
		if !errors.Is(err, boom) || hangar.KindOf(err) != hangar.KindInternal {
			t.Errorf("got %v (kind %s), want an internal error wrapping %v", err, hangar.KindOf(err), boom)
		}
	})
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

// streamBody returns a deploy body whose archive is n pseudo-random bytes,
// generated while it is read so that the test itself never holds it, and
// the archive's sha256 once the body has been read.
func streamBody(n int64, seed byte) (io.Reader, func() string) {
	pr, pw := io.Pipe()
	h := sha256.New()
	go func() {
		enc := base64.NewEncoder(base64.StdEncoding, pw)
		src := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{seed}), n), h)
		_, err := io.CopyBuffer(enc, src, make([]byte, 32<<10))
		if err == nil {
			err = enc.Close()
		}
		pw.CloseWithError(err)
	}()
	body := io.MultiReader(
		strings.NewReader(`{"previous_version":null, "application_archive": "`),
		pr,
		strings.NewReader(`", "target_database_name": "db"}`),
	)
	return body, func() string { return hex.EncodeToString(h.Sum(nil)) }
}

// TestDecode_Memory decodes a 64 MB body and checks that the bytes allocated
// meanwhile stay far below the archive size: Decode never buffers the
// archive. Not parallel, so that other tests' allocations don't count.
func TestDecode_Memory(t *testing.T) {
	const archiveSize = 48 << 20 // 64 MiB of base64
	body, sum := streamBody(archiveSize, 4)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	got, err := Decode(body, io.Discard, archiveSize)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	want := Request{TargetDatabaseName: "db", HasArchive: true, ArchiveBytes: archiveSize, ArchiveSHA256: sum()}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Request (-want +got):\n%s", diff)
	}
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("allocated %d KiB while decoding a %d MiB archive", allocated>>10, archiveSize>>20)
	if allocated > 4<<20 {
		t.Errorf("allocated %d bytes while decoding, want under 4 MiB for a %d-byte archive", allocated, archiveSize)
	}
}

func BenchmarkDecode(b *testing.B) {
	archive := randomBytes(b, 16<<20, 5)
	body := []byte(`{"application_archive":"` + b64(archive) + `"}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	r := bytes.NewReader(body)
	for b.Loop() {
		r.Reset(body)
		if _, err := Decode(r, io.Discard, 0); err != nil {
			b.Fatal(err)
		}
	}
}
