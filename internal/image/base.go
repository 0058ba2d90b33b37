package image

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// aptConf makes apt in the image work as the seed's example expects
// ("apt install traceroute": no -y, no terminal), and keeps it as root:
// inside a user namespace, dropping to _apt buys nothing.
const aptConf = `APT::Get::Assume-Yes "true";
APT::Sandbox::User "root";
APT::Install-Recommends "false";
`

// buildBase bootstraps a minimal Debian into dir.
func (c *Cache) buildBase(ctx context.Context, dir string) error {
	args := []string{"--variant=minbase", "--components=main"}
	if len(c.cfg.Packages) > 0 {
		args = append(args, "--include="+strings.Join(c.cfg.Packages, ","))
	}
	args = append(args, c.cfg.Suite, dir, c.cfg.Mirror)
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, c.cfg.Debootstrap, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	// debootstrap must not inherit Hangar's environment (its secrets).
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "DEBIAN_FRONTEND=noninteractive"}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("debootstrap %s: %w: %s", strings.Join(args, " "), err, tail(out.String(), 2000))
	}
	// Downloaded .debs are not needed; the package lists are, for setup's
	// "apt install" without "apt update".
	debs, _ := filepath.Glob(filepath.Join(dir, "var/cache/apt/archives/*.deb"))
	for _, f := range debs {
		if err := os.Remove(f); err != nil {
			return err
		}
	}
	// The operator's own certificate authorities (a TLS-inspecting proxy's,
	// an internal registry's): builds and apps must trust what the host
	// trusts.
	cas, err := c.localCAs()
	if err != nil {
		return err
	}
	for name, pem := range cas {
		if err := os.WriteFile(filepath.Join(dir, "usr/local/share/ca-certificates", name), pem, 0o644); err != nil {
			return err
		}
	}
	if len(cas) > 0 {
		cmd := exec.CommandContext(ctx, "chroot", dir, "update-ca-certificates")
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("update-ca-certificates: %w: %s", err, tail(string(out), 2000))
		}
	}
	for _, p := range MountPoints {
		if err := os.MkdirAll(filepath.Join(dir, p), 0o755); err != nil {
			return err
		}
	}
	files := map[string]string{
		"etc/apt/apt.conf.d/90hangar": aptConf,
		// Bound over by the sandbox; they must exist in a read-only root.
		"etc/resolv.conf": "",
		"etc/hosts":       "127.0.0.1\tlocalhost\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// localCAs returns the host's local certificate authorities
// (Config.LocalCAs/*.crt) by file name.
func (c *Cache) localCAs() (map[string][]byte, error) {
	files, err := filepath.Glob(filepath.Join(c.cfg.LocalCAs, "*.crt"))
	if err != nil {
		return nil, err
	}
	cas := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		cas[filepath.Base(f)] = b
	}
	return cas, nil
}

// hostMirror returns the Debian mirror the host's apt sources under
// aptDir use for suite, or deb.debian.org.
func hostMirror(aptDir, suite string) string {
	files, _ := filepath.Glob(filepath.Join(aptDir, "sources.list.d", "*.sources"))
	files = append(files, filepath.Join(aptDir, "sources.list"))
	lists, _ := filepath.Glob(filepath.Join(aptDir, "sources.list.d", "*.list"))
	files = append(files, lists...)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if m := mirrorIn(string(b), suite); m != "" {
			return m
		}
	}
	return "http://deb.debian.org/debian"
}

// mirrorIn finds the URI of a source for suite in the one-line (.list) or
// deb822 (.sources) format.
func mirrorIn(text, suite string) string {
	var uris, suites []string
	flush := func() string {
		defer func() { uris, suites = nil, nil }()
		for _, s := range suites {
			if s == suite && len(uris) > 0 {
				return uris[0]
			}
		}
		return ""
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
			if m := flush(); m != "" {
				return m
			}
		case f[0] == "deb":
			f = f[1:]
			if len(f) > 0 && strings.HasPrefix(f[0], "[") { // [signed-by=…] options
				for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
					f = f[1:]
				}
				if len(f) > 0 {
					f = f[1:]
				}
			}
			if len(f) >= 2 && f[1] == suite {
				return f[0]
			}
		case strings.EqualFold(f[0], "URIs:"):
			uris = f[1:]
		case strings.EqualFold(f[0], "Suites:"):
			suites = f[1:]
		}
	}
	return flush()
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
