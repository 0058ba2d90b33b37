package api

import (
	"context"
	"net/http"
	"time"

	"github.com/hangar-oss/hangar/internal/apiclient"
	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/history"
)

// passwordSignIn is POST /hangar/v1/signin: a user name and password for an
// access token, with the approval page's limit on wrong passwords (keyed on
// the name and the client's address). The console signs in through it.
func (s *Server) passwordSignIn(w http.ResponseWriter, r *http.Request) error {
	var req apiclient.SignInRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	u, err := s.passwords.CheckPassword(r.Context(), normalizeUserName(req.Username), req.Password, clientAddr(r))
	setRetryAfter(w, err)
	if err != nil {
		return err
	}
	tok, exp, err := s.tokens.Issue(u)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, http.StatusOK, apiclient.TokenResponse{
		AccessToken: tok, TokenType: "Bearer", ExpiresIn: int(exp.Sub(s.now()) / time.Second),
	})
}

// dashboardURL is PUT and GET /v1alpha1/{org}/dashboard: the URL of the
// org's monitoring dashboards in the console. They always exist (the
// console draws them from the metrics history), so launching one only
// returns its URL.
func (s *Server) dashboardURL(w http.ResponseWriter, r *http.Request) error {
	org, err := orgOf(r)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, "https://"+s.cfg.Domain+"/console/"+org+"/dashboard")
}

// deleteDashboard is DELETE /v1alpha1/{org}/dashboard: accepted, and a
// no-op that says so, since the dashboards are part of the console.
func (s *Server) deleteDashboard(w http.ResponseWriter, r *http.Request) error {
	if _, err := orgOf(r); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, "nothing to delete: the dashboards are part of the Hangar console and always available")
}

// HistoryReader reads apps' monitoring history; *history.Store satisfies
// it.
type HistoryReader interface {
	Series(ctx context.Context, appID string, from, to time.Time, step time.Duration) (history.Series, error)
}

// metricRanges are the ranges of appMetrics and their buckets.
var metricRanges = map[string]struct{ span, step time.Duration }{
	"hour": {time.Hour, time.Minute},
	"day":  {24 * time.Hour, 2 * time.Minute},
	"week": {7 * 24 * time.Hour, 10 * time.Minute},
}

// appMetrics is GET /hangar/v1/{org}/applications/{app}/metrics: the app's
// history over the last hour, day or week, for the console's charts.
func (s *Server) appMetrics(w http.ResponseWriter, r *http.Request) error {
	a, err := s.appOf(r)
	if err != nil {
		return err
	}
	name := r.URL.Query().Get("range")
	if name == "" {
		name = "hour"
	}
	rng, ok := metricRanges[name]
	if !ok {
		return hangar.Errorf(hangar.KindInvalid, "range must be hour, day or week, got %q", name)
	}
	if s.cfg.History == nil {
		return hangar.Errorf(hangar.KindUnavailable, "this server keeps no metrics history")
	}
	now := s.now()
	sr, err := s.cfg.History.Series(r.Context(), a.ID, now.Add(-rng.span), now, rng.step)
	if err != nil {
		return err
	}
	out := apiclient.AppMetrics{
		Range: name, StepSeconds: int(rng.step / time.Second), Times: make([]int64, len(sr.Times)),
		Requests2xx: sr.Requests[0], Requests3xx: sr.Requests[1], Requests4xx: sr.Requests[2], Requests5xx: sr.Requests[3],
		LatencyP50MS: sr.P50, LatencyP99MS: sr.P99, Executors: sr.Executors, Restarts: sr.Restarts, OOMKills: sr.OOMs,
		WorkflowsStarted: sr.Started, WorkflowsCompleted: sr.Completed, WorkflowsFailed: sr.Failed, QueueDepth: sr.QueueDepth,
	}
	for i, t := range sr.Times {
		out.Times[i] = t.Unix()
	}
	for _, e := range sr.ByExecutor {
		out.ByExecutor = append(out.ByExecutor, apiclient.ExecutorMetrics{ID: e.ID, MemoryMiB: e.MemoryMiB, MemoryLimitMiB: e.LimitMiB, CPUPercent: e.CPUPercent})
	}
	return writeJSON(w, http.StatusOK, out)
}
