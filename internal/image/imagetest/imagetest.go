// Package imagetest gives tests the image cache they all share, so that
// debootstrap runs once per machine (and per CI run), not once per test.
// Only tests import it.
package imagetest

import (
	"cmp"
	"os"
	"os/exec"
	"testing"

	"github.com/hangar-oss/hangar/internal/image"
)

// DefaultDir is the shared cache of tests; HANGAR_TEST_IMAGE_CACHE
// overrides it.
const DefaultDir = "/var/cache/hangar-test-images"

// Dir returns the image cache directory tests share.
func Dir() string { return cmp.Or(os.Getenv("HANGAR_TEST_IMAGE_CACHE"), DefaultDir) }

// Cache returns a cache on the shared directory. It skips the test when
// the host cannot build images: not root, or no debootstrap.
func Cache(t testing.TB) *image.Cache {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("building images needs root")
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		t.Skip("debootstrap not installed (scripts/setup.sh installs it)")
	}
	c, err := image.New(image.Config{Dir: Dir()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
