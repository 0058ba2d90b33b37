package pgcluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeRunner plays initdb and pg_ctl well enough for Start and Stop, and
// records the command lines it ran.
type fakeRunner struct {
	tb       testing.TB
	password string
	port     int
	calls    []string
}

type exitErr int

func (e exitErr) Error() string { return fmt.Sprintf("exit status %d", int(e)) }
func (e exitErr) ExitCode() int { return int(e) }

func (f *fakeRunner) run(_ context.Context, _, name string, args ...string) ([]byte, error) {
	f.calls = append(f.calls, filepath.Base(name)+" "+strings.Join(args, " "))
	if filepath.Base(name) == "initdb" {
		data := args[1]
		pw, err := os.ReadFile(strings.TrimPrefix(args[4], "--pwfile="))
		if err != nil || string(pw) != f.password+"\n" {
			f.tb.Errorf("initdb pwfile = %q, %v; want %q", pw, err, f.password+"\n")
		}
		return nil, writeFiles(data, map[string]string{"PG_VERSION": "15\n", "pg_hba.conf": "local all all scram-sha-256\n"})
	}
	data, pidFile := args[1], filepath.Join(args[1], "postmaster.pid")
	switch args[2] {
	case "status":
		if _, err := os.Stat(pidFile); err != nil {
			return []byte("pg_ctl: no server running"), exitErr(3)
		}
	case "start":
		// Our own PID is never our child, so Start does not try to reap it.
		return nil, writeFiles(data, map[string]string{"postmaster.pid": fmt.Sprintf("%d\n%s\n0\n%d\n", os.Getpid(), data, f.port)})
	case "stop":
		return nil, os.Remove(pidFile)
	}
	return nil, nil
}

// gone: the fake postmaster (this process) counts as exited once stopped.
func (f *fakeRunner) gone(context.Context, int, time.Duration) error { return nil }

func writeFiles(dir string, files map[string]string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// fakeBinDir returns a directory holding empty initdb and pg_ctl files.
func fakeBinDir(tb testing.TB) string {
	dir := tb.TempDir()
	if err := writeFiles(dir, map[string]string{"initdb": "", "pg_ctl": ""}); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// reachableTempDir returns a temporary directory that another OS user can
// traverse, unlike t.TempDir's.
func reachableTempDir(tb testing.TB) string {
	dir, err := os.MkdirTemp("", "hangar-pgcluster-")
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestCluster_Commands(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(reachableTempDir(t), "pg")
	c, err := New(Config{
		BinDir:   fakeBinDir(t),
		DataDir:  dir,
		Port:     5433,
		Password: "pw",
		Settings: map[string]string{"fsync": "off", "cluster_name": "it's"},
	})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRunner{tb: t, password: "pw", port: 5433}
	c.run, c.gone = f.run, f.gone
	ctx := t.Context()
	for _, step := range []func(context.Context) error{c.Start, c.Start, c.Stop, c.Stop} {
		if err := step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		"initdb -D $DIR/data.initdb -U postgres --pwfile=$DIR/initdb.pw --auth-host=scram-sha-256 --auth-local=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8",
		`pg_ctl -D $DIR/data start -w -l $DIR/server.log -o -c 'port=5433' -c 'listen_addresses=127.0.0.1' -c 'unix_socket_directories="$DIR"' -c 'cluster_name=it'\''s' -c 'fsync=off'`,
		"pg_ctl -D $DIR/data status", // second Start adopts
		"pg_ctl -D $DIR/data status",
		"pg_ctl -D $DIR/data stop -m fast -w",
		"pg_ctl -D $DIR/data status", // second Stop: not running
	}
	got := strings.Split(strings.ReplaceAll(strings.Join(f.calls, "\n"), dir, "$DIR"), "\n")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("commands (-want +got):\n%s", diff)
	}
	hba, err := os.ReadFile(filepath.Join(dir, "data", "pg_hba.conf"))
	if err != nil || !strings.HasSuffix(string(hba), "host all all all scram-sha-256\n") {
		t.Errorf("pg_hba.conf = %q, %v; want it to end with a scram-sha-256 line for all hosts", hba, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "initdb.pw")); !os.IsNotExist(err) {
		t.Errorf("password file left behind: stat error %v, want not exist", err)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	bin := fakeBinDir(t)
	valid := Config{BinDir: bin, DataDir: "/var/lib/hangar/pg", Port: 5432, Password: "pw"}
	tests := []struct {
		name   string
		change func(*Config)
		want   string // substring of the error; "" for success
	}{
		{"Valid", func(*Config) {}, ""},
		{"NoDataDir", func(c *Config) { c.DataDir = "" }, "DataDir is required"},
		{"NoPort", func(c *Config) { c.Port = 0 }, "invalid port"},
		{"NoPassword", func(c *Config) { c.Password = "" }, "Password is required"},
		{"PasswordNewline", func(c *Config) { c.Password = "a\nb" }, "line breaks"},
		{"BadSuperuser", func(c *Config) { c.Superuser = "Robert'); DROP" }, "invalid superuser name"},
		{"PortInSettings", func(c *Config) { c.Settings = map[string]string{"port": "1"} }, "comes from Config"},
		{"BadSettingName", func(c *Config) { c.Settings = map[string]string{"a b": "1"} }, "invalid setting name"},
		{"ArchiveInSettings", func(c *Config) {
			c.ArchiveDir, c.Settings = "/var/lib/hangar/wal", map[string]string{"archive_command": "true"}
		}, "comes from Config.ArchiveDir"},
		{"ShortArchiveTimeout", func(c *Config) { c.ArchiveDir, c.ArchiveTimeout = "/var/lib/hangar/wal", time.Millisecond }, "under a second"},
		{"MissingBinaries", func(c *Config) { c.BinDir = t.TempDir() }, "initdb not in bin dir"},
		{"LongDataDir", func(c *Config) { c.DataDir = "/" + strings.Repeat("d", 100) }, "too long"},
	}
	if os.Geteuid() == 0 {
		tests = append(tests, struct {
			name   string
			change func(*Config)
			want   string
		}{"RunAsRoot", func(c *Config) { c.RunAsUser = "root" }, "refuses to run as root"})
	} else {
		tests = append(tests, struct {
			name   string
			change func(*Config)
			want   string
		}{"RunAsOtherUser", func(c *Config) { c.RunAsUser = "nobody" }, "only root"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := valid
			tt.change(&cfg)
			_, err := New(cfg)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("New() error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestCluster_Start(t *testing.T) {
	t.Run("UnreachableDataDir", func(t *testing.T) {
		t.Parallel()
		if os.Geteuid() != 0 {
			t.Skip("only root runs PostgreSQL as another OS user")
		}
		private := t.TempDir() // below a directory of mode 0700, owned by root
		c, err := New(Config{BinDir: fakeBinDir(t), DataDir: filepath.Join(private, "pg"), Port: 5432, Password: "pw"})
		if err != nil {
			t.Fatal(err)
		}
		f := &fakeRunner{tb: t}
		c.run, c.gone = f.run, f.gone
		err = c.Start(t.Context())
		want := "postgres user cannot reach /"
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "chmod o+x") {
			t.Errorf("Start() error = %v, want one containing %q and a remedy", err, want)
		}
		if len(f.calls) != 0 {
			t.Errorf("ran %q, want no commands", f.calls)
		}
	})
}

func TestCluster_URL(t *testing.T) {
	t.Parallel()
	tests := []struct{ listen, want string }{
		{"", "postgres://admin:p%40ss%2Fw%3Ard@127.0.0.1:5432/app_db?sslmode=disable"},
		{"*", "postgres://admin:p%40ss%2Fw%3Ard@127.0.0.1:5432/app_db?sslmode=disable"},
		{"10.0.0.1,127.0.0.1", "postgres://admin:p%40ss%2Fw%3Ard@10.0.0.1:5432/app_db?sslmode=disable"},
		{"::", "postgres://admin:p%40ss%2Fw%3Ard@[::1]:5432/app_db?sslmode=disable"},
	}
	for _, tt := range tests {
		c, err := New(Config{BinDir: fakeBinDir(t), DataDir: "/srv/pg", Port: 5432, Superuser: "admin", Password: "p@ss/w:rd", ListenAddresses: tt.listen})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.URL("app_db"); got != tt.want {
			t.Errorf("listen %q: URL() = %s, want %s", tt.listen, got, tt.want)
		}
	}
}
