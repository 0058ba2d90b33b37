package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// archiveSettings returns the server settings that archive every completed
// WAL segment into dir. The command never overwrites a segment: one already
// archived (the server may retry after a crash between archiving and
// recording it) counts as done. Files appear atomically (written under a
// temporary name, then renamed) and are synced, so the archive never holds
// a truncated segment. Commands run as the server's OS user in PGDATA.
func archiveSettings(dir, gzip string, timeout time.Duration) map[string]string {
	q := shellQuote(dir)
	cmd := fmt.Sprintf(`test -f %[1]s/%%f || { cp %%p %[1]s/%%f.tmp && sync %[1]s/%%f.tmp && mv %[1]s/%%f.tmp %[1]s/%%f; }`, q)
	if gzip != "" {
		cmd = fmt.Sprintf(`test -f %[1]s/%%f.gz || { %[2]s -1 -c %%p > %[1]s/%%f.gz.tmp && sync %[1]s/%%f.gz.tmp && mv %[1]s/%%f.gz.tmp %[1]s/%%f.gz; }`, q, shellQuote(gzip))
	}
	return map[string]string{
		"wal_level":       "replica",
		"archive_mode":    "on",
		"archive_command": cmd,
		"archive_timeout": strconv.Itoa(int(timeout/time.Second)) + "s",
	}
}

// restoreCommand returns the restore_command that reads segments archived
// by archiveSettings from dir, compressed or not. It fails for files the
// archive does not hold, as PostgreSQL expects.
func restoreCommand(dir, gzip string) string {
	if gzip == "" {
		gzip = "gzip"
	}
	q := shellQuote(dir)
	return fmt.Sprintf(`if test -f %[1]s/%%f.gz; then %[2]s -dc %[1]s/%%f.gz > %%p; else cp %[1]s/%%f %%p; fi`, q, shellQuote(gzip))
}

// ArchivedSegment reports whether the WAL segment (or history file) named
// name is in the archive.
func (c *Cluster) ArchivedSegment(name string) bool {
	for _, n := range []string{name, name + ".gz"} {
		if _, err := os.Stat(filepath.Join(c.cfg.ArchiveDir, n)); err == nil {
			return true
		}
	}
	return false
}

// SwitchWAL makes everything committed so far reach the archive: it commits
// a transaction (so that a recovery to any earlier time finds a commit
// after it and stops there), switches to a new WAL segment and waits until
// the completed one is archived. The server must be running with
// Config.ArchiveDir.
func (c *Cluster) SwitchWAL(ctx context.Context) error {
	if c.cfg.ArchiveDir == "" {
		return errors.New("pgcluster: SwitchWAL needs Config.ArchiveDir")
	}
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("switch WAL: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var seg string
	if _, err := conn.Exec(ctx, "SELECT pg_current_xact_id()"); err != nil {
		return fmt.Errorf("switch WAL: %w", err)
	}
	if err := conn.QueryRow(ctx, "SELECT pg_walfile_name(pg_switch_wal())").Scan(&seg); err != nil {
		return fmt.Errorf("switch WAL: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !c.ArchivedSegment(seg) {
		select {
		case <-ctx.Done():
			var failed string
			_ = conn.QueryRow(context.WithoutCancel(ctx), "SELECT coalesce(last_failed_wal, '') FROM pg_stat_archiver").Scan(&failed)
			return fmt.Errorf("switch WAL: segment %s not archived (last failure: %q; see %s): %w", seg, failed, c.logFile(), ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

// BaseBackup takes a base backup of the running server into dest, a
// directory that must not exist yet, in plain format with the WAL it needs
// (so that it is consistent on its own). Recover restores from it.
func (c *Cluster) BaseBackup(ctx context.Context, dest string) error {
	if _, err := os.Stat(dest); err == nil {
		return fmt.Errorf("base backup: %s already exists", dest)
	}
	if err := c.mkdirOwned(filepath.Dir(dest)); err != nil {
		return fmt.Errorf("base backup: %w", err)
	}
	c.mu.Lock()
	password := c.cfg.Password
	c.mu.Unlock()
	// The password goes through a passfile, not the command line, which
	// every local user can read.
	passfile := filepath.Join(c.cfg.DataDir, fmt.Sprintf(".pgpass-%d", time.Now().UnixNano()))
	line := strings.Join([]string{pgpassEscape(c.host), strconv.Itoa(c.cfg.Port), "*", pgpassEscape(c.cfg.Superuser), pgpassEscape(password)}, ":")
	if err := c.writeFile(passfile, line+"\n", 0o600); err != nil {
		return fmt.Errorf("base backup: %w", err)
	}
	defer os.Remove(passfile)
	conninfo := fmt.Sprintf("host=%s port=%d user=%s passfile=%s sslmode=disable",
		connQuote(c.host), c.cfg.Port, connQuote(c.cfg.Superuser), connQuote(passfile))
	args := []string{"-D", dest, "--format=plain", "--wal-method=stream", "--checkpoint=fast", "--no-password", "-d", conninfo}
	if c.cfg.Settings["fsync"] == "off" {
		args = append(args, "--no-sync") // tests: as durable as the server itself
	}
	if out, err := c.run(ctx, c.cfg.DataDir, filepath.Join(c.cfg.BinDir, "pg_basebackup"), args...); err != nil {
		os.RemoveAll(dest)
		return fmt.Errorf("base backup: %w\n%s", err, out)
	}
	return nil
}

// pgpassEscape escapes a .pgpass field.
func pgpassEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(s)
}

// connQuote quotes a libpq key=value connection parameter value.
func connQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
