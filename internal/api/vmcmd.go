package api

import (
	"net/http"

	"github.com/hangar-oss/hangar/internal/apiclient"
	"github.com/hangar-oss/hangar/internal/fleet"
	"github.com/hangar-oss/hangar/internal/hangar"
)

// executorCommand runs a shell command on one of the app's executors and
// answers with its output and exit code, whatever the code: the newer
// official CLI's `app cmd`.
func (s *Server) executorCommand(w http.ResponseWriter, r *http.Request) error {
	org, err := orgOf(r)
	if err != nil {
		return err
	}
	var req apiclient.ExecutorCommandRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	switch {
	case req.Command == "":
		return hangar.Errorf(hangar.KindInvalid, "empty command: give the shell command to run")
	case len(req.Command) > apiclient.MaxCommandBytes:
		return hangar.Errorf(hangar.KindInvalid, "command of %d bytes is over the limit of %d", len(req.Command), apiclient.MaxCommandBytes)
	}
	res, err := s.exs.ExecutorCommand(r.Context(), fleet.Command{
		Org: org, App: r.PathValue("app"), Executor: r.PathValue("executor"),
		Command: req.Command, User: principal(r).User.Name,
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apiclient.ExecutorCommandResponse{Stdout: res.Stdout, Stderr: res.Stderr, ExitCode: res.ExitCode})
}
