package pgcluster

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"
)

// recoveredMarker, in DataDir, says that Recover completed.
const recoveredMarker = "recovered"

// trustLine lets the superuser in over the Unix socket without a password
// while Recover runs: the recovered cluster's role has the password it had
// at the target time, which may differ from Config.Password. The socket is
// in DataDir, which only the server's OS user (and root) can enter.
func trustLine(superuser string) string {
	return "local all " + superuser + " trust # Hangar: recovery in progress\n"
}

// Recover creates this cluster from a base backup (a directory BaseBackup
// made) and the WAL in archiveDir, recovered to the state at target: every
// transaction committed at or before target, none after. The server then
// runs as a new, writable cluster (on a new timeline) on Config.Port, with
// the superuser's password set to Config.Password and, when
// Config.ArchiveDir is set, its own WAL archived there.
//
// The archive must hold a commit after target (SwitchWAL makes sure of it),
// or recovery fails rather than stop short. Recover is idempotent: it
// starts again from the backup unless an earlier call completed.
// size: the recovery procedure in order, each step needing the one before.
func (c *Cluster) Recover(ctx context.Context, base, archiveDir string, target time.Time) error {
	marker := filepath.Join(c.cfg.DataDir, recoveredMarker)
	if _, err := os.Stat(marker); err == nil {
		return c.Start(ctx)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := os.Stat(filepath.Join(base, "PG_VERSION")); err != nil {
		return fmt.Errorf("recover: base backup: %w", err)
	}
	if err := c.prepareDir(); err != nil {
		return err
	}
	if err := c.prepareArchiveDir(); err != nil {
		return err
	}
	// Start over from the backup: an interrupted recovery is not resumed.
	if pid, _, err := c.postmaster(ctx); err != nil {
		return err
	} else if pid != 0 {
		c.track(pid)
		if err := c.stop(ctx); err != nil {
			return err
		}
	}
	tmp := c.pgdata() + ".recover"
	for _, d := range []string{c.pgdata(), tmp} {
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("recover: %w", err)
		}
	}
	if c.jail != nil {
		// The backup and the archive belong to another instance's uid and
		// lie outside this sandbox: copy them in, as root, for this uid.
		walCopy := filepath.Join(c.cfg.DataDir, "restore-wal")
		for _, cp := range [][2]string{{base, tmp}, {archiveDir, walCopy}} {
			if err := c.copyOwned(ctx, cp[0], cp[1]); err != nil {
				return fmt.Errorf("recover: %w", err)
			}
		}
		defer os.RemoveAll(walCopy)
		archiveDir = walCopy
	} else if out, err := c.run(ctx, c.cfg.DataDir, "cp", "-a", "--", base, tmp); err != nil {
		// cp runs as the server's OS user, so the copy is owned by it.
		return fmt.Errorf("recover: copy base backup: %w\n%s", err, out)
	}
	for _, f := range []string{"standby.signal", "postmaster.pid", "postmaster.opts"} {
		os.Remove(filepath.Join(tmp, f))
	}
	if err := c.writeFile(filepath.Join(tmp, "recovery.signal"), "", 0o600); err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	hbaFile := filepath.Join(tmp, "pg_hba.conf")
	var hba []byte
	err := c.inDataDir(hbaFile, func(r *os.Root, rel string) (err error) {
		// The backup is the source's user's: it may hold links anywhere.
		hba, err = r.ReadFile(rel)
		return err
	})
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	if err := c.writeFile(hbaFile, trustLine(c.cfg.Superuser)+string(hba), 0o600); err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	if err := os.Rename(tmp, c.pgdata()); err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	err = c.startServer(ctx, map[string]string{
		"restore_command":           restoreCommand(archiveDir, c.gzip),
		"recovery_target_time":      target.UTC().Format("2006-01-02 15:04:05.999999-07"),
		"recovery_target_inclusive": "on",
		"recovery_target_timeline":  "latest",
		"recovery_target_action":    "promote",
	})
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	pid, err := c.serverPID(ctx)
	if err != nil {
		return err
	}
	c.track(pid)
	c.log.InfoContext(ctx, "recovering postgres", "pid", pid, "target", target)
	if err := c.finishRecovery(ctx, filepath.Join(c.pgdata(), "pg_hba.conf"), string(hba)); err != nil {
		return fmt.Errorf("recover to %s: %w", target.UTC().Format(time.RFC3339Nano), err)
	}
	if err := c.writeFile(marker, target.UTC().Format(time.RFC3339Nano)+"\n", 0o600); err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	c.log.InfoContext(ctx, "recovered postgres", "pid", pid, "target", target)
	return nil
}

// finishRecovery waits until the server has replayed up to its target and
// promoted itself, sets the superuser's password, and puts back the
// original pg_hba.conf.
func (c *Cluster) finishRecovery(ctx context.Context, hbaFile, hba string) error {
	socket := fmt.Sprintf("host=%s port=%d user=%s dbname=postgres sslmode=disable",
		connQuote(c.cfg.DataDir), c.cfg.Port, connQuote(c.cfg.Superuser))
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.WithoutCancel(ctx))
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		if conn == nil {
			var err error
			if conn, err = pgx.Connect(ctx, socket); err != nil {
				conn = nil
				if pid, _, _ := c.postmaster(ctx); pid == 0 {
					return fmt.Errorf("server stopped during recovery; server log:\n%s", c.logTail())
				}
				continue
			}
		}
		var inRecovery bool
		if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil {
			conn.Close(ctx)
			conn = nil
			continue
		}
		if !inRecovery {
			break
		}
	}
	if _, err := conn.Exec(ctx, "ALTER ROLE "+pgx.Identifier{c.cfg.Superuser}.Sanitize()+" PASSWORD "+PasswordLiteral(c.cfg.Password)); err != nil {
		return fmt.Errorf("set superuser password: %w", err)
	}
	if c.jail != nil {
		hba = sandboxHBA
	}
	if err := c.writeFile(hbaFile, hba, 0o600); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		return fmt.Errorf("reload pg_hba.conf: %w", err)
	}
	return nil
}

// copyOwned copies the tree src to dst (which must not exist) and gives the
// copy to the server's uid.
func (c *Cluster) copyOwned(ctx context.Context, src, dst string) error {
	os.RemoveAll(dst)
	if out, err := exec.CommandContext(ctx, "cp", "-a", "--", src, dst).CombinedOutput(); err != nil {
		return fmt.Errorf("copy %s: %w\n%s", src, err, out)
	}
	return filepath.WalkDir(dst, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, int(c.as.uid), int(c.as.gid))
	})
}
