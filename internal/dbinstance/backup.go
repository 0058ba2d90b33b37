package dbinstance

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// Backup is one base backup of a managed instance.
type Backup struct {
	// Dir holds the backup: a plain copy of the cluster with its WAL.
	Dir string
	// End is when the backup had completed: the instance can be restored
	// to any time from End on.
	End time.Time
}

// backupStamp names a backup's directory after its end time; it sorts in
// time order.
const backupStamp = "20060102T150405.000000000Z"

// baseDir holds inst's base backups.
func (m *Manager) baseDir(inst hangar.DBInstance) string { return filepath.Join(m.dir(inst), "base") }

// Backups lists inst's complete base backups, oldest first.
func (m *Manager) Backups(inst hangar.DBInstance) ([]Backup, error) {
	if err := validateID(inst.ID); err != nil {
		return nil, err
	}
	var entries []fs.DirEntry
	err := m.inInstance(inst, func(r *os.Root) (err error) {
		entries, err = fs.ReadDir(r.FS(), "base")
		return err
	})
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list backups of %s: %w", inst.ID, err)
	}
	var bs []Backup
	for _, de := range entries {
		end, err := time.Parse(backupStamp, de.Name())
		if err != nil || !de.IsDir() {
			continue // a backup in progress, or not ours
		}
		bs = append(bs, Backup{Dir: filepath.Join(m.baseDir(inst), de.Name()), End: end})
	}
	slices.SortFunc(bs, func(a, b Backup) int { return a.End.Compare(b.End) })
	return bs, nil
}

// BaseBackup takes a base backup of inst, which must be running, and then
// removes the backups and archived WAL that Config.Retention no longer
// needs.
func (m *Manager) BaseBackup(ctx context.Context, inst hangar.DBInstance) (Backup, error) {
	b, _, err := m.backup(ctx, inst, false)
	return b, err
}

// BackupIfDue takes a base backup of inst when its newest one is older than
// Config.BackupInterval (or it has none) and reports whether it did.
func (m *Manager) BackupIfDue(ctx context.Context, inst hangar.DBInstance) (bool, error) {
	_, did, err := m.backup(ctx, inst, true)
	return did, err
}

// backup takes a base backup of inst, when it is due if ifDue is set.
func (m *Manager) backup(ctx context.Context, inst hangar.DBInstance, ifDue bool) (Backup, bool, error) {
	if err := validateID(inst.ID); err != nil {
		return Backup{}, false, err
	}
	c := m.running(inst)
	m.mu.Lock()
	e := m.insts[inst.ID]
	m.mu.Unlock()
	if c == nil || e == nil {
		return Backup{}, false, fmt.Errorf("back up database instance %s: not running", inst.ID)
	}
	e.backupMu.Lock()
	defer e.backupMu.Unlock()
	if ifDue {
		bs, err := m.Backups(inst)
		if err != nil {
			return Backup{}, false, err
		}
		if len(bs) > 0 && m.cfg.Now().Sub(bs[len(bs)-1].End) < m.cfg.BackupInterval {
			return Backup{}, false, nil
		}
	}
	if err := m.removePartialBackups(inst); err != nil {
		return Backup{}, false, err
	}
	started := m.cfg.Now()
	tmp := filepath.Join(m.baseDir(inst), "partial-"+started.UTC().Format(backupStamp))
	if err := c.BaseBackup(ctx, tmp); err != nil {
		return Backup{}, false, fmt.Errorf("back up database instance %s: %w", inst.ID, err)
	}
	// The backup is consistent as of some point before pg_basebackup
	// returned: any time from now on is safely after it.
	b := Backup{End: m.cfg.Now().UTC()}
	b.Dir = filepath.Join(m.baseDir(inst), b.End.Format(backupStamp))
	err := m.inInstance(inst, func(r *os.Root) error {
		return r.Rename(filepath.Join("base", filepath.Base(tmp)), filepath.Join("base", filepath.Base(b.Dir)))
	})
	if err != nil {
		return Backup{}, false, fmt.Errorf("back up database instance %s: %w", inst.ID, err)
	}
	m.log.InfoContext(ctx, "took base backup", "dbinstance", inst.ID, "dir", b.Dir, "duration", b.End.Sub(started))
	if err := m.prune(inst); err != nil {
		m.log.WarnContext(ctx, "prune backups", "dbinstance", inst.ID, "err", err)
	}
	return b, true, nil
}

// RestoreWindow returns the earliest time inst can be restored to: the end
// of its oldest base backup. The latest is now. It returns
// hangar.KindUnavailable when inst has no base backup yet.
func (m *Manager) RestoreWindow(inst hangar.DBInstance) (time.Time, error) {
	bs, err := m.Backups(inst)
	if err != nil {
		return time.Time{}, err
	}
	if len(bs) == 0 {
		return time.Time{}, hangar.Errorf(hangar.KindUnavailable, "database %s has no backup to restore from yet: try again in a minute", inst.Name)
	}
	return bs[0].End, nil
}

// removePartialBackups removes what interrupted backups left.
func (m *Manager) removePartialBackups(inst hangar.DBInstance) error {
	return m.inInstance(inst, func(r *os.Root) error {
		partial, _ := fs.Glob(r.FS(), "base/partial-*")
		for _, p := range partial {
			if err := r.RemoveAll(p); err != nil {
				return fmt.Errorf("remove partial backup: %w", err)
			}
		}
		return nil
	})
}

// prune removes the base backups that Config.Retention no longer needs
// (all but those that ended within it and the newest one before it), then
// the archived WAL older than the oldest backup left.
func (m *Manager) prune(inst hangar.DBInstance) error {
	bs, err := m.Backups(inst)
	if err != nil || len(bs) == 0 {
		return err
	}
	horizon := m.cfg.Now().Add(-m.cfg.Retention)
	keepFrom := 0 // the newest backup that ended before the horizon, if any
	for i, b := range bs {
		if !b.End.After(horizon) {
			keepFrom = i
		}
	}
	return m.inInstance(inst, func(r *os.Root) error {
		for _, b := range bs[:keepFrom] {
			if err := r.RemoveAll(filepath.Join("base", filepath.Base(b.Dir))); err != nil {
				return err
			}
		}
		first, err := startSegment(r, filepath.Join("base", filepath.Base(bs[keepFrom].Dir)))
		if err != nil {
			return err
		}
		return pruneWAL(r, "wal-archive", first)
	})
}

// inInstance runs fn on an os.Root of inst's directory. The files in it
// are the instance's user's, who may have replaced any of them with a
// symbolic link: Hangar, as root, must never follow one out of it.
func (m *Manager) inInstance(inst hangar.DBInstance, fn func(r *os.Root) error) error {
	r, err := os.OpenRoot(m.dir(inst))
	if err != nil {
		return err
	}
	defer r.Close()
	return fn(r)
}

var startWALRE = regexp.MustCompile(`^START WAL LOCATION: \S+ \(file ([0-9A-F]{24})\)$`)

// startSegment reads the first WAL segment a base backup (dir, in r) needs
// from its backup_label.
func startSegment(r *os.Root, dir string) (string, error) {
	f, err := r.Open(filepath.Join(dir, "backup_label"))
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := startWALRE.FindStringSubmatch(sc.Text()); m != nil {
			return m[1], nil
		}
	}
	return "", fmt.Errorf("%s/backup_label has no START WAL LOCATION", dir)
}

// walFileRE matches archived WAL segments and backup history files, maybe
// compressed; timeline history files (NNNNNNNN.history) do not match and
// are always kept.
var walFileRE = regexp.MustCompile(`^([0-9A-F]{24})(\.partial|\.[0-9A-F]{8}\.backup)?(\.gz)?$`)

// pruneWAL removes from the archive dir (in r) the WAL files that precede
// segment first on any timeline, as pg_archivecleanup does.
func pruneWAL(r *os.Root, dir, first string) error {
	entries, err := fs.ReadDir(r.FS(), dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, de := range entries {
		m := walFileRE.FindStringSubmatch(de.Name())
		if m == nil || strings.Compare(m[1][8:], first[8:]) >= 0 {
			continue
		}
		if err := r.Remove(filepath.Join(dir, de.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
