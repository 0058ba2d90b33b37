package cli

import (
	"net/http"

	"github.com/spf13/cobra"
)

func newDashboardCmd(e *env) *cobra.Command {
	cmd := group("dashboard", "Manage Monitoring Dashboards")
	cmd.AddCommand(
		dashboardCommand(e, "launch", "Deploy the Monitoring Dashboard", http.MethodPut, "Failed to initialize dashboard", "Dashboard ready at %s"),
		dashboardCommand(e, "url", "Deploy the Monitoring Dashboard if it does not exist; then return its URL", http.MethodGet, "Failed to retrieve URL", "Dashboard URL is %s"),
		dashboardCommand(e, "delete", "Delete your Monitoring Dashboard", http.MethodDelete, "Failed to delete dashboard", "Dashboard deleted"),
	)
	return cmd
}

func dashboardCommand(e *env, use, short, method, label, done string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := e.session(cmd.Context(), "", "")
			if err != nil {
				return err
			}
			if use == "launch" {
				e.warn("'dashboard launch' is a deprecated command; use 'dashboard url' instead.")
			}
			url, err := s.Dashboard(cmd.Context(), s.org(), method)
			if err != nil {
				return e.failed(label, err)
			}
			if method == http.MethodDelete {
				e.info(done)
			} else {
				e.info(done, url)
			}
			return nil
		},
	}
}
