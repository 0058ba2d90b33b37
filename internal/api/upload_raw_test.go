package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hangar-oss/hangar/internal/archive"
	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/pgcluster/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// noArchives keeps no archive.
type noArchives struct{}

func (noArchives) KeptArchives(context.Context) (map[string]bool, error) { return nil, nil }

func TestReceiveZip(t *testing.T) {
	t.Parallel()
	const limit = 1000
	body := bytes.Repeat([]byte("z"), 600)
	sum := sha256.Sum256(body)
	for name, tc := range map[string]struct {
		body        io.Reader
		length      int64
		contentType string
		kind        hangar.Kind
		msg         string
	}{
		"OK":           {body: bytes.NewReader(body), length: 600, contentType: "application/zip"},
		"Chunked":      {body: io.MultiReader(bytes.NewReader(body)), length: -1, contentType: "application/zip"},
		"TooLarge":     {body: bytes.NewReader(make([]byte, 1001)), length: 1001, contentType: "application/zip", kind: hangar.KindTooLarge, msg: "the archive is 1001 bytes, over the limit of 1000 bytes"},
		"ChunkedLarge": {body: io.MultiReader(bytes.NewReader(make([]byte, 5000))), length: -1, contentType: "application/zip", kind: hangar.KindTooLarge, msg: "more than 1000 bytes arrived"},
		"Truncated":    {body: bytes.NewReader(body[:100]), length: 600, contentType: "application/zip", kind: hangar.KindInvalid, msg: "truncated: 100 of 600"},
		"NotZip":       {body: bytes.NewReader(body), length: 600, contentType: "application/json", kind: hangar.KindInvalid, msg: "Content-Type: application/zip"},
		"Empty":        {body: http.NoBody, length: 0, contentType: "application/zip", kind: hangar.KindInvalid, msg: "empty"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("POST", "/hangar/v1/o/applications/a/deploy", tc.body)
			r.ContentLength = tc.length
			r.Header.Set("Content-Type", tc.contentType)
			archives, err := archive.New(archive.Config{Dir: t.TempDir(), Limits: archive.Limits{MaxBytes: limit}}, noArchives{})
			if err != nil {
				t.Fatal(err)
			}
			digest, err := receiveZip(r, archives)
			if tc.kind != "" {
				if hangar.KindOf(err) != tc.kind || !strings.Contains(hangar.MessageOf(err), tc.msg) {
					t.Errorf("got %v, want %s error with %q", err, tc.kind, tc.msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			f, err := archives.Open(digest)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, _ := io.ReadAll(f)
			if !bytes.Equal(got, body) || digest != hex.EncodeToString(sum[:]) {
				t.Errorf("got %d bytes, digest %s; want the body and %x", len(got), digest, sum)
			}
		})
	}
}
