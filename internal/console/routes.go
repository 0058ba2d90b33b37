package console

import (
	"io/fs"
	"net/http"
)

// routes registers every route of the console; any other request goes to
// the API.
func (c *Console) routes() {
	assets, _ := fs.Sub(assetFS, "assets")
	// Not under /console/: /console/{org}/... would overlap.
	files := http.StripPrefix("/static/", http.FileServerFS(assets))
	c.handle("GET /static/", func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
		return nil
	})
	c.handle("GET /{$}", c.home)
	c.handle("GET /console/{$}", c.home)
	c.handle("GET /console/signin", c.signInPage)
	c.handle("POST /console/signin", c.signIn)
	c.handle("POST /console/signout", c.signOut)

	c.handle("GET /console/{org}/apps", c.appsPage)
	c.handle("GET /console/{org}/apps/{app}", c.appPage)
	c.handle("POST /console/{org}/apps/{app}/settings", c.updateApp)
	c.handle("POST /console/{org}/apps/{app}/redeploy", c.redeploy)
	c.handle("POST /console/{org}/apps/{app}/secrets", c.addSecret)
	c.handle("POST /console/{org}/apps/{app}/secrets/{name}/delete", c.deleteSecret)
	c.handle("GET /console/{org}/apps/{app}/executors", c.executorsPart)
	c.handle("GET /console/{org}/apps/{app}/logs", c.logsPage)
	c.handle("GET /console/{org}/apps/{app}/logs/lines", c.logLines)
	c.handle("GET /console/{org}/apps/{app}/workflows", c.workflowsPage(false))
	c.handle("GET /console/{org}/apps/{app}/queues", c.workflowsPage(true))
	c.handle("GET /console/{org}/apps/{app}/workflows/{id}", c.workflowPage)
	c.handle("POST /console/{org}/apps/{app}/workflows/{id}/{action}", c.workflowAction)
	c.handle("GET /console/{org}/apps/{app}/dashboard", c.appDashboard)
	c.handle("GET /console/{org}/apps/{app}/metrics", c.appMetrics)

	c.handle("GET /console/{org}/dashboard", c.dashboardPage)
	c.handle("GET /console/{org}/databases", c.databasesPage)
	c.handle("POST /console/{org}/databases/{db}/restore", c.restoreDB)
	c.handle("POST /console/{org}/databases/link", c.linkDB)
	c.handle("POST /console/{org}/databases/{db}/unlink", c.unlinkDB)
	c.handle("GET /console/{org}/members", c.membersPage)
	c.handle("POST /console/{org}/members/invite", c.invite)
	c.handle("POST /console/{org}/members/{username}/remove", c.removeMember)
	c.handle("POST /console/{org}/rename", c.renameOrg)

	c.mux.Handle("/", c.cfg.API)
}
