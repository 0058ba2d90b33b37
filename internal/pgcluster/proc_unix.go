//go:build unix

package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"
)

// sysProcAttr makes a command run as as (nil: the current user), in a
// process group of its own: a signal to Hangar's group (a terminal's ^C,
// timeout(1)) must reach Hangar only, which then stops the cluster in
// order, instead of interrupting pg_ctl halfway.
func sysProcAttr(as *runUser) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true}
	if as != nil {
		a.Credential = &syscall.Credential{Uid: as.uid, Gid: as.gid, Groups: as.groups}
	}
	return a
}

// reachable checks that as may traverse dir and each of its ancestors, so
// that initdb and postgres can reach the data directory below it.
func reachable(dir string, as *runUser) error {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("check data dir access: %w", err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("check data dir access: no owner for %s", d)
		}
		perm := fi.Mode().Perm()
		canExec := perm&0o001 != 0 ||
			st.Uid == as.uid && perm&0o100 != 0 ||
			(st.Gid == as.gid || slices.Contains(as.groups, st.Gid)) && perm&0o010 != 0
		if !canExec {
			return fmt.Errorf("%s user cannot reach %s: it is mode %v, owned by uid %d gid %d; choose a --data-dir it can reach (e.g. under /var/lib) or chmod o+x %s",
				as.name, d, fi.Mode(), st.Uid, st.Gid, d)
		}
		if parent := filepath.Dir(d); parent == d {
			return nil
		}
	}
}

// reap reaps pid in the background if it is a child of this process and
// returns a channel closed once it has exited; it returns nil when pid is
// not our child.
func reap(pid int) <-chan struct{} {
	var ws syscall.WaitStatus
	got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
	if err != nil || got == pid {
		return nil // not our child, or already exited and reaped now
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, err := syscall.Wait4(pid, &ws, 0, nil); err != syscall.EINTR {
				return
			}
		}
	}()
	return done
}

// waitGone waits up to timeout until process pid has exited: it no longer
// exists, or is a zombie waiting for its parent (Linux /proc tells).
func waitGone(ctx context.Context, pid int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return nil
		}
		if stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil {
			if i := bytes.LastIndexByte(stat, ')'); i > 0 && bytes.HasPrefix(stat[i:], []byte(") Z")) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("process %d has not exited: %w", pid, ctx.Err())
		case <-tick.C:
		}
	}
}
