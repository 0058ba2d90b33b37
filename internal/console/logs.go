package console

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// logRanges are the time ranges the logs page offers, in seconds.
var logRanges = []struct {
	Label   string
	Seconds int
}{{"5 minutes", 300}, {"1 hour", 3600}, {"1 day", 86400}, {"7 days", 7 * 86400}}

// logsData is the logs page: its filter, and the lines when rendered.
type logsData struct {
	Range  int
	Query  string
	Ranges any
	Lines  []string
	// More says the range holds more lines than shown.
	More bool
}

func (c *Console) logsPage(w http.ResponseWriter, r *http.Request) error {
	s, org, err := c.orgSession(r)
	if err != nil {
		return err
	}
	d, err := c.logs(r, s, org)
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "logs", page{Title: r.PathValue("app") + " logs", User: s.user, Org: org, App: r.PathValue("app"), Tab: "logs", Data: d})
	return nil
}

// logLines is the lines alone, which the logs page reloads every two
// seconds (the live tail).
func (c *Console) logLines(w http.ResponseWriter, r *http.Request) error {
	s, org, err := c.orgSession(r)
	if err != nil {
		return err
	}
	d, err := c.logs(r, s, org)
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "loglinespart", page{Org: org, App: r.PathValue("app"), Data: d})
	return nil
}

// maxLogLines bounds the lines a page shows: the newest of the range.
const maxLogLines = 1000

// logs reads the range's lines through the API's log pages (oldest first)
// and keeps the newest maxLogLines that contain the search text.
func (c *Console) logs(r *http.Request, s session, org string) (logsData, error) {
	q := r.URL.Query()
	d := logsData{Range: 3600, Query: strings.TrimSpace(q.Get("q")), Ranges: logRanges}
	if n, err := strconv.Atoi(q.Get("range")); err == nil && n > 0 {
		d.Range = n
	}
	params := url.Values{"last": {strconv.Itoa(d.Range)}, "limit": {"1000"}}
	for pages := 0; ; pages++ {
		resp, err := s.api.AppLogs(r.Context(), org, r.PathValue("app"), params)
		if err != nil {
			return d, err
		}
		for _, l := range strings.Split(strings.TrimRight(resp.Body, "\n"), "\n") {
			if l != "" && (d.Query == "" || strings.Contains(strings.ToLower(l), strings.ToLower(d.Query))) {
				d.Lines = append(d.Lines, l)
			}
		}
		if len(d.Lines) > maxLogLines {
			d.Lines, d.More = d.Lines[len(d.Lines)-maxLogLines:], true
		}
		if resp.End || resp.NextTimestamp == "" || pages == 20 {
			d.More = d.More || !resp.End
			return d, nil
		}
		params = url.Values{"since": {resp.NextTimestamp}, "limit": {"1000"}}
	}
}
