package cli

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/hangar-oss/hangar/internal/apiclient"
)

// newAppExecutorsCmd is Hangar's `app executors`: the app's live executors
// with their state and resource use.
func newAppExecutorsCmd(e *env) *cobra.Command {
	var asJSON bool
	cmd := appCommand(e, "executors", "List this application's executors with their memory and CPU use (Hangar)", &asJSON,
		func(ctx context.Context, s *session, app string) error {
			var exs []apiclient.ExecutorStats
			p := "/hangar/v1/" + url.PathEscape(s.org()) + "/applications/" + url.PathEscape(app) + "/executors"
			if err := s.Do(ctx, http.MethodGet, p, nil, &exs); err != nil {
				return e.failed("Failed to retrieve executors of application "+app, err)
			}
			if asJSON {
				if exs == nil {
					exs = []apiclient.ExecutorStats{}
				}
				return e.printJSON(exs)
			}
			if len(exs) == 0 {
				e.info("No executors of %s run", app)
				return nil
			}
			e.printExecutors(exs)
			return nil
		})
	jsonFlag(cmd, &asJSON)
	return cmd
}

// printExecutors prints one line an executor: memory in use and its limit,
// its peak memory and process count, CPU use over the last scaling
// interval and since it started, and how often and how long the CPU quota
// held it back.
func (e *env) printExecutors(exs []apiclient.ExecutorStats) {
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "EXECUTOR\tVERSION\tSTATE\tSTARTED\tMEMORY\tPEAK\tPIDS\tCPU\tCPU TIME\tTHROTTLED\tOOM KILLS")
	for _, ex := range exs {
		mem, peak, pids, cpu, cpuTime, throttled, ooms := fmt.Sprintf("- / %d MiB", ex.MemoryLimitMiB), "-", "-", "-", "-", "-", "-"
		if u := ex.Usage; u != nil {
			limit := fmt.Sprintf("%d MiB", ex.MemoryLimitMiB)
			if u.MemoryLimitBytes > 0 {
				limit = mib(u.MemoryLimitBytes)
			}
			mem = fmt.Sprintf("%.0f / %s", float64(u.MemoryBytes)/(1<<20), limit)
			if u.MemoryPeakBytes > 0 {
				peak = mib(u.MemoryPeakBytes)
			}
			pids = fmt.Sprint(u.Pids)
			if u.CPUPercent != nil {
				cpu = fmt.Sprintf("%.1f%%", *u.CPUPercent)
			}
			cpuTime = fmt.Sprintf("%.1fs", u.CPUSeconds)
			throttled = fmt.Sprintf("%d (%.1fs)", u.ThrottledPeriods, u.ThrottledSeconds)
			ooms = fmt.Sprint(u.OOMKills)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			ex.ID, ex.Version, ex.State, deployTime(ex.StartedAt), mem, peak, pids, cpu, cpuTime, throttled, ooms)
	}
	tw.Flush()
}

// mib shows bytes in MiB.
func mib(b uint64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }
