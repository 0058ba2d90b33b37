package sandbox

import (
	"encoding/json"
	"github.com/hangar-oss/hangar/internal/golden"
	"strings"
	"testing"
)

func TestOCISpec_Golden(t *testing.T) {
	t.Parallel()
	s := ociSpec(specParams{
		ID:          "app-v1-0",
		Rootfs:      "/run/hangar/sandbox/hg/bundles/hg-app-v1-0/rootfs",
		Dir:         "/var/lib/hangar/apps/app/versions/v1",
		Command:     []string{"/bin/sh", "-c", initScript, "init", "/bin/sh", "-c", "npm start"},
		Env:         []string{"PORT=3000"},
		UID:         200001,
		GID:         200000,
		Netns:       "/var/run/netns/hg-app-v1-0",
		CgroupsPath: "/hangar/hg/app-v1-0/ctr",
		TmpMiB:      64,
		Hidden:      []string{"/var/lib/hangar", "/root", "/home"},
		Veils:       map[string]string{"/var/lib/hangar": "/run/hangar/sandbox/hg/bundles/hg-app-v1-0/veil/0"},
		Etc:         "/run/hangar/sandbox/hg/bundles/hg-app-v1-0",
	})
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, golden.File("config"), string(b)+"\n")
}

func TestOCISpec_KeepsHOME(t *testing.T) {
	t.Parallel()
	s := ociSpec(specParams{Env: []string{"HOME=/app"}})
	if got := strings.Join(s.Process.Env, " "); got != "HOME=/app" {
		t.Errorf("got env %q, want HOME=/app only", got)
	}
}

func TestCleanPaths(t *testing.T) {
	t.Parallel()
	got, err := cleanPaths([]string{"/a/", "/b", "/a"})
	if err != nil || strings.Join(got, " ") != "/a /b" {
		t.Errorf("got %v, %v; want [/a /b]", got, err)
	}
	for _, bad := range []string{"/", "rel"} {
		if _, err := cleanPaths([]string{bad}); err == nil {
			t.Errorf("cleanPaths accepted %q", bad)
		}
	}
}

func TestWithin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		path, dir string
		want      bool
	}{
		{"/data/apps/a", "/data", true},
		{"/data", "/data", true},
		{"/database", "/data", false},
		{"/srv", "/data", false},
	} {
		if got := within(tc.path, tc.dir); got != tc.want {
			t.Errorf("within(%q, %q) = %v, want %v", tc.path, tc.dir, got, tc.want)
		}
	}
}
