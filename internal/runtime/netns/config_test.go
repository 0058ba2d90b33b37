package netns

import (
	"log/slog"
	"testing"
)

var discard = slog.New(slog.DiscardHandler)

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
			_, err := newDriver(tc.cfg, discard, "ip", "", nil)
			if (err == nil) != tc.ok {
				t.Errorf("got error %v, want ok: %v", err, tc.ok)
			}
		})
	}
}
