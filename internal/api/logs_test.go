package api

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hangar-oss/hangar/internal/hangar"
)

func TestLogsQuery(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		query   string
		last    time.Duration
		limit   int
		since   string
		wantErr bool
	}{
		"FirstPage":      {query: "format=json&last=0&limit=1000", limit: 1000},
		"Last":           {query: "last=3600&limit=10", last: time.Hour, limit: 10},
		"NextPage":       {query: "limit=7&since=2026-11-26+01%3A02%3A03.123456", limit: 7, since: "2026-11-26T01:02:03.123456Z"},
		"NaNFromTheCLI":  {query: "last=NaN&limit=NaN"},
		"NegativeLast":   {query: "last=-1", wantErr: true},
		"BadSince":       {query: "since=yesterday", wantErr: true},
		"NonNumberLimit": {query: "limit=ten", wantErr: true},
	} {
		t.Run(name, func(t *testing.T) {
			q, err := logsQuery(httptest.NewRequest("GET", "/x?"+tc.query, nil))
			if tc.wantErr {
				if hangar.KindOf(err) != hangar.KindInvalid {
					t.Errorf("err = %v, want invalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if q.Last != tc.last || q.Limit != tc.limit {
				t.Errorf("query = %+v, want last %v limit %d", q, tc.last, tc.limit)
			}
			if tc.since != "" && q.Since.Format(time.RFC3339Nano) != tc.since {
				t.Errorf("since = %v, want %s", q.Since, tc.since)
			}
		})
	}
}

func TestStatusOf(t *testing.T) {
	t.Parallel()
	for kind, want := range map[hangar.Kind]int{
		hangar.KindNotFound: 404, hangar.KindInvalid: 400, hangar.KindConflict: 409, hangar.KindUnauthorized: 401,
		hangar.KindForbidden: 403, hangar.KindUnavailable: 503, hangar.KindTooLarge: 413, hangar.KindInternal: 500,
	} {
		if got := statusOf(kind); got != want {
			t.Errorf("statusOf(%s) = %d, want %d", kind, got, want)
		}
	}
}
