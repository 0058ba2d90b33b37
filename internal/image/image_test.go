package image_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hangar-oss/hangar/internal/image"
	"github.com/hangar-oss/hangar/internal/image/imagetest"
)

func TestCache_Base(t *testing.T) {
	t.Parallel()
	c := imagetest.Cache(t)
	root, err := c.Base(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range append([]string{"/usr/bin/python3", "/usr/bin/apt", "/etc/ssl/certs/ca-certificates.crt", "/etc/apt/apt.conf.d/90hangar"}, image.MountPoints...) {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("base lacks %s: %v", p, err)
		}
	}
	again, err := c.Base(t.Context())
	if err != nil || again != root {
		t.Errorf("second Base() = %q, %v; want the cached %q", again, err, root)
	}
}

func TestCache_Node(t *testing.T) {
	t.Parallel()
	c := imagetest.Cache(t)
	dir, err := c.Node(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for tool, want := range map[string]string{"node": "v22.", "npm": "10."} {
		cmd := exec.Command(filepath.Join(dir, "bin", tool), "--version")
		cmd.Env = []string{"PATH=" + filepath.Join(dir, "bin") + ":/usr/bin:/bin"}
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), want) {
			t.Errorf("%s --version = %q, %v; want %s…", tool, out, err, want)
		}
	}
}
