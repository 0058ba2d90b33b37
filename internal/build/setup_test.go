package build

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/runtime"
)

func TestBuilder_Setup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		setup    []string
		fail     map[string]error
		wantRun  []string
		wantKind hangar.Kind // "" = success
		wantMsg  string
	}{
		{name: "None"},
		{name: "InOrder", setup: []string{"./build.sh", "echo done"}, wantRun: []string{"./build.sh", "echo done"}},
		{
			name:     "StopsAtFailure",
			setup:    []string{"./build.sh", "echo done"},
			fail:     map[string]error{"./build.sh": hangar.Errorf(hangar.KindInvalid, `command "./build.sh" exited with code 2`)},
			wantRun:  []string{"./build.sh"},
			wantKind: hangar.KindInvalid,
			wantMsg:  `setup: command "./build.sh" exited with code 2`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := &fakeRunner{fail: tt.fail}
			b := NewBuilder(testOptions(), r)
			j := Job{Dir: "/app", Env: []string{"SECRET=1"}}
			j.Config.Runtime.Setup = tt.setup
			err := b.Setup(t.Context(), j)
			checkErr(t, err, tt.wantKind, tt.wantMsg)
			var got []string
			for _, c := range r.cmds {
				got = append(got, c.Shell)
				if c.Dir != "/app" || c.Env[len(c.Env)-1] != "SECRET=1" {
					t.Errorf("%q ran in %q with env %q, want /app and the job's env", c.Shell, c.Dir, c.Env)
				}
			}
			if diff := cmp.Diff(tt.wantRun, got); diff != "" {
				t.Errorf("commands (-want +got):\n%s", diff)
			}
		})
	}
}

// checkErr checks err's kind and message; wantKind "" means no error.
func checkErr(t testing.TB, err error, wantKind hangar.Kind, wantMsg string) {
	t.Helper()
	if wantKind == "" {
		if err != nil {
			t.Fatalf("got error %v, want none", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("got no error, want %s %q", wantKind, wantMsg)
	}
	if got := hangar.KindOf(err); got != wantKind {
		t.Errorf("got kind %s (%v), want %s", got, err, wantKind)
	}
	if got := hangar.MessageOf(err); got != wantMsg {
		t.Errorf("got message %q, want %q", got, wantMsg)
	}
}

// layerRunner is a fakeRunner that keeps setup layers, as the sandbox does.
type layerRunner struct {
	fakeRunner
	ready map[runtime.Image]bool
	calls []string
}

func (l *layerRunner) LayerReady(_ context.Context, img runtime.Image) (bool, error) {
	return l.ready[img], nil
}

func (l *layerRunner) ResetLayer(_ context.Context, img runtime.Image) error {
	l.calls = append(l.calls, "reset "+img.Layer)
	return nil
}

func (l *layerRunner) CommitLayer(_ context.Context, img runtime.Image) error {
	l.calls = append(l.calls, "commit "+img.Layer)
	l.ready[img] = true
	return nil
}

func TestBuilder_SetupLayer(t *testing.T) {
	t.Parallel()
	r := &layerRunner{ready: map[runtime.Image]bool{}}
	b := NewBuilder(testOptions(), r)
	j := Job{Dir: "/app", App: "app1"}
	j.Config.Runtime.Setup = []string{"apt install traceroute"}
	layer := SetupLayer(j.Dir, j.Config)
	for range 2 {
		if err := b.Setup(t.Context(), j); err != nil {
			t.Fatal(err)
		}
	}
	if len(r.cmds) != 1 || !r.cmds[0].WriteLayer || r.cmds[0].Image != (runtime.Image{AppID: "app1", Layer: layer}) {
		t.Errorf("commands = %+v, want one that writes layer %s of app1, then none: the layer is reused", r.cmds, layer)
	}
	if diff := cmp.Diff([]string{"reset " + layer, "commit " + layer}, r.calls); diff != "" {
		t.Errorf("layer calls (-want +got):\n%s", diff)
	}
	j.Config.Runtime.Setup = []string{"apt install traceroute", "apt install curl"}
	if SetupLayer(j.Dir, j.Config) == layer {
		t.Errorf("other setup commands, same layer %s", layer)
	}
}

// TestBuilder_SetupLayerFiles: the layer's key covers the app's files that
// setup commands name, so a redeploy that changes ./install.sh runs setup
// again, while one that changes nothing else (or only other files) reuses
// the layer.
func TestBuilder_SetupLayerFiles(t *testing.T) {
	t.Parallel()
	r := &layerRunner{ready: map[runtime.Image]bool{}}
	b := NewBuilder(testOptions(), r)
	outside := filepath.Join(t.TempDir(), "outside.sh")
	deploy := func(files map[string]string) string {
		t.Helper()
		dir := t.TempDir() // each deploy unpacks into a folder of its own
		for name, content := range files {
			if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Symlink(outside, filepath.Join(dir, "link.sh")); err != nil {
			t.Fatal(err)
		}
		j := Job{Dir: dir, App: "app1"}
		j.Config.Runtime.Setup = []string{"./install.sh --quiet", "sh scripts/more.sh && apt-get install -y $(cat pkgs.txt)", "sh link.sh; sh /etc/x.sh ../up.sh"}
		if err := b.Setup(t.Context(), j); err != nil {
			t.Fatal(err)
		}
		return SetupLayer(dir, j.Config)
	}
	files := map[string]string{"install.sh": "echo v1", "scripts/more.sh": "echo more", "pkgs.txt": "curl", "app.mjs": "v1"}
	first := deploy(files)
	runs := func() int { return len(r.cmds) }
	if runs() != 3 {
		t.Fatalf("first deploy ran %d setup commands, want 3", runs())
	}
	if again := deploy(files); again != first || runs() != 3 {
		t.Errorf("unchanged redeploy: layer %s (was %s), %d commands run; want the same layer, reused", again, first, runs())
	}
	files["app.mjs"] = "v2" // not named by setup
	if again := deploy(files); again != first || runs() != 3 {
		t.Errorf("redeploy changing an unnamed file: layer %s (was %s), %d commands; want the layer reused", again, first, runs())
	}
	os.WriteFile(outside, []byte("not the app's"), 0o644) // behind a link out of the tree
	if again := deploy(files); again != first || runs() != 3 {
		t.Errorf("a file outside the tree changed: layer %s (was %s); want it ignored", again, first)
	}
	for _, name := range []string{"install.sh", "scripts/more.sh", "pkgs.txt"} {
		before := runs()
		files[name] += " changed"
		if again := deploy(files); again == first || runs() != before+3 {
			t.Errorf("redeploy changing %s: layer %s (was %s), %d commands run; want a new layer, built", name, again, first, runs()-before)
		}
	}
}
