package console

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/hangar-oss/hangar/internal/apiclient"
)

// appRow is a row of the apps list.
type appRow struct {
	apiclient.Application
	// Last is the newest version, zero when none.
	Last apiclient.AppVersion
}

func (c *Console) appsPage(w http.ResponseWriter, r *http.Request) error {
	s, org, err := c.orgSession(r)
	if err != nil {
		return err
	}
	apps, err := s.api.Apps(r.Context(), org)
	if err != nil {
		return err
	}
	rows := make([]appRow, len(apps))
	errs := make([]error, len(apps))
	// The versions of each app, a few at a time.
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, a := range apps {
		rows[i].Application = a
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			vs, err := s.api.AppVersions(r.Context(), org, a.Name)
			if len(vs) > 0 {
				rows[i].Last = vs[0]
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	slices.SortFunc(rows, func(a, b appRow) int { return strings.Compare(a.Name, b.Name) })
	c.render(w, r, http.StatusOK, "apps", page{Title: "Applications", User: s.user, Org: org, Data: rows})
	return nil
}

// appData is the app page: overview, settings, versions, executors and
// secrets.
type appData struct {
	App       apiclient.Application
	Versions  []apiclient.AppVersion
	Executors []apiclient.ExecutorStats
	Events    []apiclient.ExecutorEvent
	Secrets   []string
}

func (c *Console) appPage(w http.ResponseWriter, r *http.Request) error {
	s, org, err := c.orgSession(r)
	if err != nil {
		return err
	}
	name := r.PathValue("app")
	var d appData
	if d.App, err = s.api.App(r.Context(), org, name); err != nil {
		return err
	}
	if d.Versions, err = s.api.AppVersions(r.Context(), org, name); err != nil {
		return err
	}
	if d.Executors, err = executors(r, s.api, org, name); err != nil {
		return err
	}
	if err := s.api.Do(r.Context(), http.MethodGet, hangarPath(org, name, "events"), nil, &d.Events); err != nil {
		return err
	}
	if d.Secrets, err = s.api.Secrets(r.Context(), org, name); err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "app", page{Title: name, User: s.user, Org: org, App: name, Tab: "overview", Data: d})
	return nil
}

// executorsPart is the executors table alone, which the app page reloads
// every few seconds.
func (c *Console) executorsPart(w http.ResponseWriter, r *http.Request) error {
	s, org, err := c.orgSession(r)
	if err != nil {
		return err
	}
	ex, err := executors(r, s.api, org, r.PathValue("app"))
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "executorspart", page{Org: org, App: r.PathValue("app"), Data: ex})
	return nil
}

func executors(r *http.Request, api *apiclient.Client, org, app string) ([]apiclient.ExecutorStats, error) {
	var ex []apiclient.ExecutorStats
	err := api.Do(r.Context(), http.MethodGet, hangarPath(org, app, "executors"), nil, &ex)
	return ex, err
}

// hangarPath is a path of Hangar's own API under an app.
func hangarPath(org, app, what string) string {
	return "/hangar/v1/" + url.PathEscape(org) + "/applications/" + url.PathEscape(app) + "/" + what
}

// appPath is the console path of an app's page, plus more.
func appPath(org, app string, more ...string) string {
	p := "/console/" + url.PathEscape(org) + "/apps/" + url.PathEscape(app)
	for _, m := range more {
		p += "/" + url.PathEscape(m)
	}
	return p
}

func (c *Console) updateApp(w http.ResponseWriter, r *http.Request) error {
	if err := c.checkForm(w, r); err != nil {
		return err
	}
	s, org, err := c.orgSession(r)
	if err != nil {
		return err
	}
	var req apiclient.UpdateAppRequest
	for _, f := range []struct {
		name string
		dst  *apiclient.FlexInt
	}{{"memory", &req.ExecutorsMemoryMib}, {"min", &req.MinVMs}, {"max", &req.MaxVMs}} {
		v := strings.TrimSpace(r.PostForm.Get(f.name))
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return &pageError{Status: http.StatusBadRequest, Message: "Enter whole numbers: " + f.name + " is " + strconv.Quote(v) + "."}
		}
		*f.dst = apiclient.FlexInt{Value: n, Set: true}
	}
	app := r.PathValue("app")
	if err := s.api.UpdateApp(r.Context(), org, app, req); err != nil {
		return err
	}
	return redirect(w, r, appPath(org, app), "Settings saved: they apply at the next deploy.")
}

// redeploy deploys an earlier version again (the API applies the schema
// rule). The API answers a deploy when it ends, which takes a minute or
// more, and browsers abort a request that long when the host's network
// changes (each executor adds a veth): so the deploy runs on without the
// request, and the page shows its progress in the versions list. A deploy
// is a durable workflow: a server stopped meanwhile resumes it.
func (c *Console) redeploy(w http.ResponseWriter, r *http.Request) error {
	if err := c.checkForm(w, r); err != nil {
		return err
	}
	s, org, err := c.orgSession(r)
	if err != nil {
		return err
	}
	app, v := r.PathValue("app"), r.PostForm.Get("version")
	// Refusals come back now, as an answer: the caller may not see the
	// app, or it has no such version.
	vs, err := s.api.AppVersions(r.Context(), org, app)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(vs, func(x apiclient.AppVersion) bool { return x.Version == v }) {
		return &pageError{Status: http.StatusNotFound, Message: "Application " + app + " has no version " + strconv.Quote(v) + "."}
	}
	ctx := context.WithoutCancel(r.Context())
	go func() {
		if _, err := s.api.Deploy(ctx, org, app, false, apiclient.DeployRequest{PreviousVersion: v}); err != nil {
			c.log.InfoContext(ctx, "redeploy from the console failed", "app", app, "version", v, "err", err)
		}
	}()
	return redirect(w, r, appPath(org, app), "Redeploying version "+v+": the versions below show its progress.")
}

func (c *Console) addSecret(w http.ResponseWriter, r *http.Request) error {
	if err := c.checkForm(w, r); err != nil {
		return err
	}
	s, org, err := c.orgSession(r)
	if err != nil {
		return err
	}
	app, name := r.PathValue("app"), strings.TrimSpace(r.PostForm.Get("name"))
	if err := s.api.CreateSecret(r.Context(), org, apiclient.CreateSecretRequest{ApplicationName: app, SecretName: name, ClearSecretValue: r.PostForm.Get("value")}); err != nil {
		return err
	}
	return redirect(w, r, appPath(org, app), "Secret "+name+" saved: the app sees it from its next deploy.")
}

func (c *Console) deleteSecret(w http.ResponseWriter, r *http.Request) error {
	if err := c.checkForm(w, r); err != nil {
		return err
	}
	s, org, err := c.orgSession(r)
	if err != nil {
		return err
	}
	app, name := r.PathValue("app"), r.PathValue("name")
	if err := s.api.DeleteSecret(r.Context(), org, app, name); err != nil {
		return err
	}
	return redirect(w, r, appPath(org, app), "Secret "+name+" deleted.")
}
