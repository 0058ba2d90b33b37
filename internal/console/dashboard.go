package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/hangar-oss/hangar/internal/apiclient"
)

// dashboardRanges are the charts' ranges.
var dashboardRanges = []struct{ Key, Label string }{{"hour", "Last hour"}, {"day", "Last day"}, {"week", "Last week"}}

// dashboardPage is the org's dashboards: its apps, each linking to its
// charts. `dbos-cloud dashboard url` prints its URL.
func (c *Console) dashboardPage(w http.ResponseWriter, r *http.Request) error {
	s, org, err := c.orgSession(r)
	if err != nil {
		return err
	}
	apps, err := s.api.Apps(r.Context(), org)
	if err != nil {
		return err
	}
	slices.SortFunc(apps, func(a, b apiclient.Application) int { return strings.Compare(a.Name, b.Name) })
	c.render(w, r, http.StatusOK, "dashboard", page{Title: "Dashboards", User: s.user, Org: org, Data: apps})
	return nil
}

// appDashboardData is an app's dashboard page; the charts fetch their data
// from MetricsURL.
type appDashboardData struct {
	Range      string
	Ranges     any
	MetricsURL string
}

func (c *Console) appDashboard(w http.ResponseWriter, r *http.Request) error {
	s, org, err := c.orgSession(r)
	if err != nil {
		return err
	}
	app := r.PathValue("app")
	// Checks the app exists and the user may see it before drawing the
	// page; the data comes with appMetrics.
	if _, err := s.api.App(r.Context(), org, app); err != nil {
		return err
	}
	rng := r.URL.Query().Get("range")
	if rng != "day" && rng != "week" {
		rng = "hour"
	}
	d := appDashboardData{Range: rng, Ranges: dashboardRanges, MetricsURL: appPath(org, app, "metrics") + "?range=" + rng}
	c.render(w, r, http.StatusOK, "appdashboard", page{Title: app + " dashboard", User: s.user, Org: org, App: app, Tab: "dashboard", Data: d})
	return nil
}

// appMetrics is the app's metrics history as the charts draw it, passed
// on from the API.
func (c *Console) appMetrics(w http.ResponseWriter, r *http.Request) error {
	s, org, err := c.orgSession(r)
	if err != nil {
		return err
	}
	p := hangarPath(org, r.PathValue("app"), "metrics") + "?range=" + url.QueryEscape(r.URL.Query().Get("range"))
	var raw json.RawMessage
	if err := s.api.Do(r.Context(), http.MethodGet, p, nil, &raw); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, err = w.Write(raw)
	return err
}
