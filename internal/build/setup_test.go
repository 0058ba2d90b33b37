package build

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hangar-oss/hangar/internal/hangar"
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
