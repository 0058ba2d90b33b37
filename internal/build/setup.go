package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode"
)

// Setup runs the app's runtimeConfig.setup commands in the app folder, in
// order, with the job's environment. It stops at the first failure, a
// KindInvalid error naming the command and its exit code. With a Runner
// that runs commands on images, their writes outside the app folder land
// in the app's setup layer, and a layer that the same commands already
// wrote on the same base is reused without running them again.
func (b *Builder) Setup(ctx context.Context, j Job) error {
	if len(j.Config.Runtime.Setup) == 0 {
		return nil
	}
	if b.layers == nil {
		for _, c := range j.Config.Runtime.Setup {
			if err := b.run(ctx, j, "setup", c, b.env(j.Env...), b.opts.CommandTimeout); err != nil {
				return err
			}
		}
		return nil
	}
	img := j.image()
	ready, err := b.layers.LayerReady(ctx, img)
	if err != nil {
		return fmt.Errorf("setup layer: %w", err)
	}
	if ready {
		fmt.Fprintf(j.log(), "==> setup: commands unchanged (layer %s): reusing the image they built\n", img.Layer)
		return nil
	}
	if err := b.layers.ResetLayer(ctx, img); err != nil {
		return fmt.Errorf("setup layer: %w", err)
	}
	for _, c := range j.Config.Runtime.Setup {
		cmd := Cmd{Shell: c, Env: b.env(append([]string{"DEBIAN_FRONTEND=noninteractive"}, j.Env...)...), Timeout: b.opts.CommandTimeout, WriteLayer: true}
		if err := b.runCmd(ctx, j, "setup", cmd); err != nil {
			return err
		}
	}
	return b.layers.CommitLayer(ctx, img)
}

// SetupLayer names the image layer that the setup commands of cfg write
// in app folder dir: a digest of the commands and of the app's files they
// name (./install.sh, sh scripts/setup.sh, -r packages.txt), so that
// changing such a file builds the layer again; "" without any command.
// A file counts when a word of a command, split at blanks and shell
// punctuation, is the relative path of a regular file in dir; symbolic
// links leaving dir are not followed.
func SetupLayer(dir string, cfg Config) string {
	if len(cfg.Runtime.Setup) == 0 {
		return ""
	}
	h := sha256.New()
	for _, c := range cfg.Runtime.Setup {
		fmt.Fprintf(h, "%d:%s\n", len(c), c)
	}
	root, err := os.OpenRoot(dir)
	if err == nil {
		defer root.Close()
		for _, name := range setupFiles(root, cfg.Runtime.Setup) {
			fmt.Fprintf(h, "file %d:%s\n", len(name), name)
			hashFile(h, root, name)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// setupFiles returns the regular files of root that commands name, sorted.
func setupFiles(root *os.Root, commands []string) []string {
	var names []string
	for _, c := range commands {
		for _, word := range strings.FieldsFunc(c, func(r rune) bool {
			return unicode.IsSpace(r) || strings.ContainsRune(";&|()<>'\"`=$", r)
		}) {
			name := filepath.Clean(word)
			if !filepath.IsLocal(name) || slices.Contains(names, name) {
				continue
			}
			if fi, err := root.Stat(name); err == nil && fi.Mode().IsRegular() {
				names = append(names, name)
			}
		}
	}
	slices.Sort(names)
	return names
}

// hashFile writes name's size and content to h; an unreadable file
// writes its error instead, which differs from any content.
func hashFile(h io.Writer, root *os.Root, name string) {
	f, err := root.Open(name)
	if err == nil {
		defer f.Close()
		var n int64
		n, err = io.Copy(h, f)
		fmt.Fprintf(h, "\n%d\n", n)
	}
	if err != nil {
		fmt.Fprintf(h, "\nerror %v\n", err)
	}
}
