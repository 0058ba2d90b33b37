package netns

import (
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var discard = slog.New(slog.DiscardHandler)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// golden compares got with testdata/name.golden, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
	}
}

func TestNewDriver_Config(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"Defaults", Config{}, true},
		{"Custom", Config{Subnet: "172.31.128.0/20", Prefix: "t1"}, true},
		{"IPv6", Config{Subnet: "fd00::/64"}, false},
		{"TooSmall", Config{Subnet: "10.0.0.0/31"}, false},
		{"NotAPrefix", Config{Subnet: "10.0.0.1"}, false},
		{"DashInPrefix", Config{Prefix: "hg-x"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := newDriver(tc.cfg, discard, nil, "ip", "")
			if (err == nil) != tc.ok {
				t.Errorf("got error %v, want ok: %v", err, tc.ok)
			}
		})
	}
}
