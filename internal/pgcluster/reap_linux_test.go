package pgcluster_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/hangar-oss/hangar/internal/pgcluster"
	"github.com/hangar-oss/hangar/internal/pgcluster/pgtest"
)

// TestCluster_Reap makes the test binary a child subreaper, as PID 1 in a
// container is, so that pg_ctl's postmaster is reparented to us; Stop must
// reap it. It runs before the parallel tests, which then reap the same way.
func TestCluster_Reap(t *testing.T) {
	pgtest.RequireBinaries(t)
	const prSetChildSubreaper = 36
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		t.Fatalf("prctl(PR_SET_CHILD_SUBREAPER): %v", errno)
	}
	dir := filepath.Join(pgtest.TempDir(t), "pg")
	c := startCluster(t, pgcluster.Config{DataDir: dir, Password: "pw"})

	pid, err := postmasterPID(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ppid, _, err := procStat(pid); err != nil || ppid != os.Getpid() {
		t.Fatalf("postmaster %d has parent %d (%v), want this process %d", pid, ppid, err, os.Getpid())
	}
	if err := c.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, state, err := procStat(pid); err == nil {
		t.Errorf("postmaster %d still exists in state %s after Stop, want reaped", pid, state)
	}
}

func postmasterPID(dir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	first, _, _ := strings.Cut(string(b), "\n")
	return strconv.Atoi(first)
}

// procStat returns a process's parent PID and state from /proc.
func procStat(pid int) (ppid int, state string, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, "", err
	}
	// pid (comm) state ppid ...; comm may contain spaces.
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	ppid, err = strconv.Atoi(fields[1])
	return ppid, fields[0], err
}
