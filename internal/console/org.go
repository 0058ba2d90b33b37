package console

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hangar-oss/hangar/internal/apiclient"
)

func (c *Console) databasesPage(w http.ResponseWriter, r *http.Request) error {
	s, org, err := c.orgSession(r)
	if err != nil {
		return err
	}
	dbs, err := s.api.DBs(r.Context(), org)
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "databases", page{Title: "Databases", User: s.user, Org: org, Data: dbs})
	return nil
}

func (c *Console) restoreDB(w http.ResponseWriter, r *http.Request) error {
	if err := c.checkForm(w, r); err != nil {
		return err
	}
	s, org, err := c.orgSession(r)
	if err != nil {
		return err
	}
	ts, err := formTime(r.PostForm.Get("time"))
	if err != nil {
		return err
	}
	target := strings.TrimSpace(r.PostForm.Get("target"))
	if err := s.api.RestoreDB(r.Context(), org, r.PathValue("db"), apiclient.RestoreDBRequest{RestoreName: target, RestoreTimestamp: ts}); err != nil {
		return err
	}
	return redirect(w, r, "/console/"+url.PathEscape(org)+"/databases", "Restoring "+r.PathValue("db")+" as of "+ts+" into "+target+".")
}

func (c *Console) linkDB(w http.ResponseWriter, r *http.Request) error {
	if err := c.checkForm(w, r); err != nil {
		return err
	}
	s, org, err := c.orgSession(r)
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(strings.TrimSpace(r.PostForm.Get("port")))
	if err != nil {
		return &pageError{Status: http.StatusBadRequest, Message: "The port is a number, like 5432."}
	}
	name := strings.TrimSpace(r.PostForm.Get("name"))
	req := apiclient.LinkDBRequest{Name: name, HostName: strings.TrimSpace(r.PostForm.Get("host")), Port: port,
		Password: r.PostForm.Get("password"), DBOSAdminName: strings.TrimSpace(r.PostForm.Get("admin"))}
	if err := s.api.LinkDB(r.Context(), org, req); err != nil {
		return err
	}
	return redirect(w, r, "/console/"+url.PathEscape(org)+"/databases", "Linked "+name+".")
}

func (c *Console) unlinkDB(w http.ResponseWriter, r *http.Request) error {
	if err := c.checkForm(w, r); err != nil {
		return err
	}
	s, org, err := c.orgSession(r)
	if err != nil {
		return err
	}
	if err := s.api.UnlinkDB(r.Context(), org, r.PathValue("db")); err != nil {
		return err
	}
	return redirect(w, r, "/console/"+url.PathEscape(org)+"/databases", "Unlinked "+r.PathValue("db")+".")
}

// membersData is the organization page; Invite is a new invite secret,
// shown once, right after it was made.
type membersData struct {
	Users  apiclient.OrgUsers
	Invite string
}

func (c *Console) membersPage(w http.ResponseWriter, r *http.Request) error {
	return c.members(w, r, "")
}

func (c *Console) members(w http.ResponseWriter, r *http.Request, invite string) error {
	s, org, err := c.orgSession(r)
	if err != nil {
		return err
	}
	users, err := s.api.OrgUsers(r.Context(), org)
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "members", page{Title: "Organization", User: s.user, Org: org, Data: membersData{Users: users, Invite: invite}})
	return nil
}

// invite shows a new invite secret in its answer only (not a redirect), so
// that it is shown once and never lands in a URL or the history.
func (c *Console) invite(w http.ResponseWriter, r *http.Request) error {
	if err := c.checkForm(w, r); err != nil {
		return err
	}
	s, org, err := c.orgSession(r)
	if err != nil {
		return err
	}
	secret, err := s.api.InviteSecret(r.Context(), org)
	if err != nil {
		return err
	}
	return c.members(w, r, secret)
}

func (c *Console) removeMember(w http.ResponseWriter, r *http.Request) error {
	if err := c.checkForm(w, r); err != nil {
		return err
	}
	s, org, err := c.orgSession(r)
	if err != nil {
		return err
	}
	if err := s.api.RemoveOrgUser(r.Context(), org, r.PathValue("username")); err != nil {
		return err
	}
	return redirect(w, r, "/console/"+url.PathEscape(org)+"/members", "Removed "+r.PathValue("username")+".")
}

func (c *Console) renameOrg(w http.ResponseWriter, r *http.Request) error {
	if err := c.checkForm(w, r); err != nil {
		return err
	}
	s, org, err := c.orgSession(r)
	if err != nil {
		return err
	}
	name := strings.TrimSpace(r.PostForm.Get("name"))
	if err := s.api.RenameOrg(r.Context(), org, name); err != nil {
		return err
	}
	return redirect(w, r, "/console/"+url.PathEscape(name)+"/members", "The organization is now "+name+".")
}

// funcs are the templates' helpers.
var funcs = map[string]any{
	"path": appPath,
	"ms": func(ms int64) string {
		return (time.Duration(ms) * time.Millisecond).String()
	},
	// epoch turns the admin server's epoch milliseconds into UTC time.
	"epoch": func(s string) string {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n == 0 {
			return s
		}
		return time.UnixMilli(n).UTC().Format("2006-01-02 15:04:05")
	},
	"mib": func(b uint64) string { return strconv.FormatUint(b>>20, 10) + " MiB" },
	"pct": func(p *float64) string {
		if p == nil {
			return "–"
		}
		return strconv.FormatFloat(*p, 'f', 1, 64) + " %"
	},
	"lower": strings.ToLower,
	// actions is the data of a workflow's action buttons.
	"actions": func(org, app string, w apiclient.WorkflowStatus, csrf string) map[string]any {
		return map[string]any{"Org": org, "App": app, "W": w, "CSRF": csrf}
	},
	// table is the data of the executors table.
	"table": func(org, app string, rows []apiclient.ExecutorStats) map[string]any {
		return map[string]any{"Org": org, "App": app, "Rows": rows}
	},
}
