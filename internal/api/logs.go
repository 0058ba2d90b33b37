package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/hangar-oss/hangar/internal/apiclient"
	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/logs"
)

// appLogs serves one page of an app's logs as the official CLI pages them:
// the first request sends last (seconds, 0 = everything) and limit, the next
// ones send since = the previous page's next_timestamp, until end.
func (s *Server) appLogs(w http.ResponseWriter, r *http.Request) error {
	a, err := s.appOf(r)
	if err != nil {
		return err
	}
	q, err := logsQuery(r)
	if err != nil {
		return err
	}
	p, err := s.logs.Query(r.Context(), a.ID, q)
	if err != nil {
		return err
	}
	out := apiclient.LogsResponse{End: p.End, Body: logs.FormatBody(p.Lines)}
	if !p.Next.IsZero() {
		out.NextTimestamp = logs.FormatTimestamp(p.Next)
	}
	return writeJSON(w, http.StatusOK, out)
}

func logsQuery(r *http.Request) (logs.Query, error) {
	v := r.URL.Query()
	var q logs.Query
	intParam := func(name string) (int, error) {
		s := v.Get(name)
		if s == "" || s == "NaN" {
			return 0, nil
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return 0, hangar.Errorf(hangar.KindInvalid, "%s must be a non-negative integer, got %q", name, s)
		}
		return n, nil
	}
	last, err := intParam("last")
	if err != nil {
		return q, err
	}
	q.Last = time.Duration(last) * time.Second
	if q.Limit, err = intParam("limit"); err != nil {
		return q, err
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"since", &q.Since}, {"upto", &q.Upto}} {
		if s := v.Get(p.name); s != "" {
			if *p.dst, err = logs.ParseTimestamp(s); err != nil {
				return q, err
			}
		}
	}
	return q, nil
}
