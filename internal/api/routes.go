package api

import "net/http"

func (s *Server) routes() *registry {
	mux := newRegistry(s.cfg.MaxBodyBytes)
	mux.Handle("POST /oauth/token", s.handle((&loginsAPI{s}).oauthToken))
	s.accountRoutes(mux, s.accts)

	mux.Handle("PUT /v1alpha1/{org}/applications", s.authed(s.registerApp))
	mux.Handle("GET /v1alpha1/{org}/applications", s.authed(s.listApps))
	mux.Handle("GET /v1alpha1/{org}/applications/{app}", s.authed(s.getApp))
	mux.Handle("POST /v1alpha1/{org}/applications/{app}", uploadRoute{s.authed(s.deployApp(false))})
	mux.Handle("POST /v1alpha1/{org}/applications/{app}/changedbinstance", uploadRoute{s.authed(s.deployApp(true))})
	mux.Handle("PATCH /v1alpha1/{org}/applications/{app}", s.authed(s.updateApp))
	mux.Handle("DELETE /v1alpha1/{org}/applications/{app}", s.authed(s.deleteApp))
	mux.Handle("GET /v1alpha1/{org}/applications/{app}/versions", s.authed(s.listVersions))

	mux.Handle("GET /v1alpha1/{org}/logs/applications/{app}", s.authed(s.appLogs))
	mux.Handle("GET /hangar/v1/{org}/applications/{app}/events", s.authed(s.appEvents))
	mux.Handle("GET /hangar/v1/{org}/applications/{app}/executors", s.authed(s.appExecutors))
	mux.Handle("POST /vmsadmin/{org}/applications/{app}/vms/{executor}/vmcmd", s.authed(s.executorCommand))

	wf := &workflowsAPI{s}
	// Workflows, served from the app's system database as the DBOS admin
	// server served them (workflows.go). The official CLI lists through
	// /v1alpha1 and acts through /appsadmin; newer CLIs list through
	// /appsadmin too.
	mux.Handle("POST /v1alpha1/{org}/applications/{app}/workflows", s.authed(wf.listWorkflows(false)))
	mux.Handle("POST /v1alpha1/{org}/applications/{app}/queues", s.authed(wf.listWorkflows(true)))
	mux.Handle("POST /appsadmin/{org}/applications/{app}/workflows", s.authed(wf.listWorkflows(false)))
	mux.Handle("POST /appsadmin/{org}/applications/{app}/queues", s.authed(wf.listWorkflows(true)))
	mux.Handle("GET /appsadmin/{org}/applications/{app}/workflows/{id}", s.authed(wf.getWorkflow))
	mux.Handle("GET /appsadmin/{org}/applications/{app}/workflows/{id}/steps", s.authed(wf.workflowSteps))
	mux.Handle("POST /appsadmin/{org}/applications/{app}/workflows/{id}/cancel", s.authed(wf.cancelWorkflow))
	mux.Handle("POST /appsadmin/{org}/applications/{app}/workflows/{id}/resume", s.authed(wf.resumeWorkflow))
	mux.Handle("POST /appsadmin/{org}/applications/{app}/workflows/{id}/restart", s.authed(wf.restartWorkflow))
	// Hangar's own: the official CLI cannot fork from a step.
	mux.Handle("POST /hangar/v1/{org}/applications/{app}/workflows/{id}/fork", s.authed(wf.forkWorkflow))

	s.databaseRoutes(mux)
	s.cliRoutes(mux)
	s.consoleRoutes(mux)
	mux.Handle("/", s.handle(func(w http.ResponseWriter, r *http.Request) error {
		return notFoundRoute(r)
	}))
	return mux
}
