package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hangar-oss/hangar/internal/image/imagetest"
)

// TestIsolation_Disk checks the disk bounds of issue #10 (docs/disk.md):
// an executor that writes past its 2 GiB beyond the installed app gets
// ENOSPC, a build that writes past the installed size, to its folder or
// (setup) to its image layer, fails while it runs with an error saying so
// and the previous version keeps serving, and a
// deleted app leaves nothing behind: its disks and their mounts and loop
// devices, its setup layer, its caches and its uid range. Each attempt
// logs a line.
func TestIsolation_Disk(t *testing.T) {
	t.Parallel()
	// The installed size is lowered from 2048 MiB so that the build over
	// it stays small; the executors keep the default 2 GiB beyond it.
	h := startHangar(t, "--app-installed-mib", "400")
	refresh := h.AddUser(t, "dora")
	withSetup := func(s string) string {
		return strings.Replace(s, "runtimeConfig:\n", "runtimeConfig:\n  setup:\n    - echo layer > /etc/hangar-disk-layer\n", 1)
	}
	dir := fixture(t, "greeter", map[string]func(string) string{"dbos-config.yaml": withSetup})
	must := func(dir string, args ...string) string {
		t.Helper()
		out, code := h.ours(t, dir, args...)
		if code != 0 {
			t.Fatalf("dbos-cloud %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
		return out
	}
	must(dir, "login", "--with-refresh-token", refresh)
	must(dir, "db", "provision", "doradb", "-U", "dbos_admin", "-W", "s3cret-pass")
	must(dir, "app", "deploy")

	t.Run("Executor", func(t *testing.T) {
		for _, a := range []struct{ what, cmd string }{
			{"executor fallocate -l 3G in its app folder", "fallocate -l 3G /app/big 2>&1; echo exit=$?; rm -f /app/big"},
			// Most of the room taken cheaply, then plain writes to the end.
			{"executor write loop past its 2 GiB", "fallocate -l 1900M /app/filler && head -c 300M /dev/zero 2>&1 >/app/more; echo exit=$?; rm -f /app/filler /app/more"},
		} {
			out := must(dir, "app", "cmd", "--", a.cmd)
			if !strings.Contains(out, "No space left on device") || strings.Contains(out, "exit=0") {
				t.Errorf("attempt: %s -> ALLOWED: %q", a.what, out)
				continue
			}
			t.Logf("attempt: %s -> denied: %s", a.what, firstLine(strings.TrimSpace(out)))
		}
	})

	t.Run("Build", func(t *testing.T) {
		// A build script that writes 450 MiB where 400 MiB are allowed:
		// the disk refuses while it runs.
		big := fixture(t, "greeter", map[string]func(string) string{
			"dbos-config.yaml": withSetup,
			"package.json": func(s string) string {
				return strings.Replace(s, `"start": "node app.mjs",`, `"start": "node app.mjs", "build": "fallocate -l 450M big.bin",`, 1)
			},
		})
		must(big, "login", "--with-refresh-token", refresh)
		out, code := h.ours(t, big, "app", "deploy")
		if code == 0 || !strings.Contains(out, "filled the app's disk") || !strings.Contains(out, "at most 400 MiB") {
			t.Fatalf("attempt: a build writing 450 MiB over --app-installed-mib 400 -> exit %d, want a failure naming the limit:\n%s", code, lastLines(out, 20))
		}
		t.Logf("attempt: a build writing 450 MiB over --app-installed-mib 400 -> denied while it ran: %s", firstLine(out[strings.LastIndex(out, "filled"):]))
		// Setup writing 450 MiB outside the app folder: its image layer
		// has the same bound.
		layer := fixture(t, "greeter", map[string]func(string) string{
			"dbos-config.yaml": func(s string) string {
				return strings.Replace(s, "runtimeConfig:\n", "runtimeConfig:\n  setup:\n    - fallocate -l 450M /opt/big.bin\n", 1)
			},
		})
		must(layer, "login", "--with-refresh-token", refresh)
		out, code = h.ours(t, layer, "app", "deploy")
		if code == 0 || !strings.Contains(out, "filled the app's image layer") || !strings.Contains(out, "at most 400 MiB") {
			t.Fatalf("attempt: setup writing 450 MiB to its image over --app-installed-mib 400 -> exit %d, want a failure naming the limit:\n%s", code, lastLines(out, 20))
		}
		t.Logf("attempt: setup writing 450 MiB to its image over --app-installed-mib 400 -> denied while it ran: %s", firstLine(out[strings.LastIndex(out, "filled"):]))
		if st := must(dir, "app", "status"); !strings.Contains(st, "AVAILABLE") {
			t.Errorf("after the failed build, app status:\n%s", st)
		}
		if out := must(dir, "app", "cmd", "--", "echo still-serving"); !strings.Contains(out, "still-serving") {
			t.Errorf("the previous version's executor after the failed build: %q", out)
		}
		// A failed version keeps no disk: failing deploys cannot pile
		// them up on the host.
		vs, err := h.Client(t, refresh).AppVersions(t.Context(), "dora", "greeter")
		apps, _ := os.ReadDir(filepath.Join(h.DataDir, "apps"))
		if err != nil || len(apps) != 1 {
			t.Fatalf("versions %v, apps %v", err, apps)
		}
		versions := filepath.Join(h.DataDir, "apps", apps[0].Name(), "versions")
		failed := 0
		for _, v := range vs {
			if v.Status != "FAILED" {
				continue
			}
			failed++
			for _, p := range []string{filepath.Join(versions, v.Version), filepath.Join(versions, ".disks", v.Version+".img")} {
				if _, err := os.Stat(p); err == nil {
					t.Errorf("failed version %s left %s behind", v.Version, p)
				}
			}
		}
		if failed < 2 {
			t.Errorf("%d failed versions, want the 2 above: %+v", failed, vs)
		}
		t.Logf("attempt: %d failed deploys -> no disk left behind", failed)
	})

	t.Run("Delete", func(t *testing.T) {
		apps, err := os.ReadDir(filepath.Join(h.DataDir, "apps"))
		if err != nil || len(apps) != 1 {
			t.Fatalf("apps folder: %v, %v; want one app", apps, err)
		}
		id := apps[0].Name()
		left := func() []string {
			var found []string
			for _, pattern := range []string{
				filepath.Join(h.DataDir, "apps", id),
				filepath.Join(imagetest.Dir(), "layers", id),
				filepath.Join(h.DataDir, "cache", "npm", "*", "apps", id),
				filepath.Join(h.DataDir, "cache", "npm", "*", "apps", ".disks", id+"*"),
			} {
				m, _ := filepath.Glob(pattern)
				found = append(found, m...)
			}
			if b, _ := os.ReadFile(filepath.Join(imagetest.Dir(), "uidranges.json")); strings.Contains(string(b), `"`+id+`"`) {
				found = append(found, "uid range of "+id)
			}
			for _, tree := range []string{filepath.Join(h.DataDir, "apps", id), filepath.Join(imagetest.Dir(), "layers", id), "/apps/.disks/" + id} {
				if b, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(b), tree) {
					found = append(found, "mounts below "+tree)
				}
				loops, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
				for _, l := range loops {
					if b, _ := os.ReadFile(l); strings.Contains(string(b), tree) {
						found = append(found, "loop device "+l+" of "+tree)
					}
				}
			}
			return found
		}
		before := left()
		if len(before) < 10 {
			t.Fatalf("before delete, the app has only %v; want its folder, layer, cache, uid range, and their mounts and loop devices", before)
		}
		must(dir, "app", "delete")
		// Loop devices clear themselves just after their unmount.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			got := left()
			if len(got) == 0 {
				t.Logf("attempt: leave files behind through a deleted app -> denied: none of %d things remain", len(before))
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after app delete, left behind: %v", got)
			}
		}
	})
}
