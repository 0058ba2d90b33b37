package image

import (
	"context"
	"log/slog"
	"os/exec"
	"strings"
	"time"
)

// DiskConfig configures Disks. The zero value means every default.
type DiskConfig struct {
	// InstalledBytes is what a build may write to a disk before Open: the
	// installed app, held while the build runs. Default 2 GiB (SPEC §3).
	InstalledBytes int64
	// WritableBytes is the room Open leaves beyond what the disk holds
	// then: what the app's executors may write. Default 2 GiB.
	WritableBytes int64
	// Logger receives what Restore mounts or detaches. Default: discard.
	Logger *slog.Logger
}

// Disks gives directories a size the kernel enforces (docs/disk.md): each
// is the data directory of a sparse ext4 image of its own, loop-mounted,
// so that a write past its size fails with ENOSPC, whoever writes. A
// reserve file beside the data directory, outside what anyone else sees,
// holds what the disk must not give yet: InstalledBytes are free while
// the build runs, and Open shrinks the reserve so that exactly
// WritableBytes are free for the executors. Disks work only as root on
// Linux.
type Disks struct {
	cfg DiskConfig
	// run runs a command: mkfs.ext4, mount and losetup (a seam for tests).
	run func(ctx context.Context, name string, args ...string) error
}

// NewDisks returns Disks.
func NewDisks(cfg DiskConfig) *Disks {
	if cfg.InstalledBytes == 0 {
		cfg.InstalledBytes = 2 << 30
	}
	if cfg.WritableBytes == 0 {
		cfg.WritableBytes = 2 << 30
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Disks{cfg: cfg, run: runCommand}
}

// InstalledBytes returns the room a disk has before Open.
func (d *Disks) InstalledBytes() int64 { return d.cfg.InstalledBytes }

// imageSize is the size of a disk's (sparse) image: what it must hold,
// plus room for ext4's own metadata (about 4 % at these sizes).
func (d *Disks) imageSize() int64 {
	n := d.cfg.InstalledBytes + d.cfg.WritableBytes
	return n + n/20 + 64<<20
}

// runCommand runs name with args, its output in the error.
func runCommand(ctx context.Context, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return &commandError{cmd: name + " " + strings.Join(args, " "), out: strings.TrimSpace(string(out)), err: err}
	}
	return nil
}

type commandError struct {
	cmd, out string
	err      error
}

func (e *commandError) Error() string { return e.cmd + ": " + e.err.Error() + ": " + e.out }
func (e *commandError) Unwrap() error { return e.err }
