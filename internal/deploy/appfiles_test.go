package deploy

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// TestPrunable keeps the folders of the newest versions that did not fail,
// the serving one among them, and names the retired ones beyond.
func TestPrunable(t *testing.T) {
	t.Parallel()
	v := func(id string, st hangar.VersionStatus) hangar.Version { return hangar.Version{ID: id, Status: st} }
	tests := []struct {
		name string
		vs   []hangar.Version // newest first
		want []string
	}{
		{name: "Few", vs: []hangar.Version{v("v3", hangar.VersionActive), v("v2", hangar.VersionRetired), v("v1", hangar.VersionRetired)}},
		{name: "Many", vs: []hangar.Version{
			v("v6", hangar.VersionDeploying), v("v5", hangar.VersionActive), v("v4", hangar.VersionFailed),
			v("v3", hangar.VersionRetired), v("v2", hangar.VersionRetired), v("v1", hangar.VersionRetired), v("v0", hangar.VersionRetired),
		}, want: []string{"v1", "v0"}},
		// A redeploy that failed leaves an older version serving: it keeps
		// its folder wherever it is.
		{name: "ServingOld", vs: []hangar.Version{
			v("v4", hangar.VersionRetired), v("v3", hangar.VersionRetired), v("v2", hangar.VersionRetired), v("v1", hangar.VersionActive),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, prunable(tt.vs, 3)); diff != "" {
				t.Errorf("prunable (-want +got):\n%s", diff)
			}
		})
	}
}
