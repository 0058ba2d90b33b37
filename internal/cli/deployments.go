package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/hangar-oss/hangar/internal/apiclient"
)

// newAppDeploymentsCmd is Hangar's `app deployments`: the versions with
// each deploy's outcome and the duration and outcome of each of its steps.
func newAppDeploymentsCmd(e *env) *cobra.Command {
	var asJSON bool
	cmd := appCommand(e, "deployments", "List this application's past deploys, with each step's duration and outcome (Hangar)", &asJSON,
		func(ctx context.Context, s *session, app string) error {
			vs, err := s.AppVersions(ctx, s.org(), app)
			if err != nil {
				return e.failed("Failed to retrieve deployments of application "+app, err)
			}
			if asJSON {
				if vs == nil {
					vs = []apiclient.AppVersion{}
				}
				return e.printJSON(vs)
			}
			if len(vs) == 0 {
				e.info("No deployments of %s found", app)
			}
			for _, v := range vs {
				e.printDeployment(v)
				e.info("-------------------------")
			}
			return nil
		})
	jsonFlag(cmd, &asJSON)
	return cmd
}

// printDeployment prints one version: a header line, then one line a step.
func (e *env) printDeployment(v apiclient.AppVersion) {
	status := v.Status
	if status == "" {
		status = "UNKNOWN"
	}
	head := fmt.Sprintf("Version %s  %s  %s", v.Version, status, deployTime(v.CreationTime))
	if v.DeployedBy != "" {
		head += "  by " + v.DeployedBy
	}
	e.info("%s", head)
	if v.RestoredFrom != "" {
		e.info("  restores version %s", v.RestoredFrom)
	}
	if len(v.Steps) == 0 {
		e.info("  (no step records)")
	}
	var total time.Duration
	for _, st := range v.Steps {
		d := time.Duration(st.DurationMS) * time.Millisecond
		total += d
		outcome := "ok"
		if st.Error != "" {
			outcome = "failed: " + st.Error
		}
		e.info("  %-14s %9s  %s", st.Name, stepDuration(d), outcome)
	}
	if len(v.Steps) > 1 {
		e.info("  %-14s %9s", "total", stepDuration(total))
	}
	if v.Error != "" {
		e.info("  Error: %s", v.Error)
	}
}

// stepDuration shows milliseconds below a second, else tenths of seconds.
func stepDuration(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	return d.Round(100 * time.Millisecond).String()
}

// deployTime shows an RFC 3339 time as UTC to the second, or as given.
func deployTime(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return s
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}
