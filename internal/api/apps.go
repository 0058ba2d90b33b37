package api

import (
	"net/http"
	"os"

	"github.com/hangar-oss/hangar/internal/apiclient"
	"github.com/hangar-oss/hangar/internal/deploy"
	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/upload"
)

func (s *Server) toApplication(a hangar.App) apiclient.Application {
	return apiclient.Application{
		Name: a.Name, ID: a.ID, PostgresInstanceName: a.DBInstance, ApplicationDatabaseName: a.AppDBName,
		Status: string(a.Status), Version: a.Version, AppURL: s.appURL(a), ExecutorsMemoryMib: a.MemoryMiB,
	}
}

func (s *Server) registerApp(w http.ResponseWriter, r *http.Request) error {
	org, err := orgOf(r)
	if err != nil {
		return err
	}
	var req apiclient.RegisterAppRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	a, err := s.svc.RegisterApp(r.Context(), org, deploy.RegisterRequest{
		Name: req.Name, DBInstance: req.Database, Language: req.Language, MemoryMiB: req.ExecutorsMemoryMib.Value,
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, a.ID)
}

func (s *Server) listApps(w http.ResponseWriter, r *http.Request) error {
	org, err := orgOf(r)
	if err != nil {
		return err
	}
	apps, err := s.svc.Apps(r.Context(), org)
	if err != nil {
		return err
	}
	out := make([]apiclient.Application, 0, len(apps))
	for _, a := range apps {
		out = append(out, s.toApplication(a))
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) getApp(w http.ResponseWriter, r *http.Request) error {
	org, err := orgOf(r)
	if err != nil {
		return err
	}
	a, err := s.svc.App(r.Context(), org, r.PathValue("app"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s.toApplication(a))
}

// deployApp receives a deploy: the base64 archive inside the JSON body is
// decoded as it streams into a file, never held in memory.
func (s *Server) deployApp(w http.ResponseWriter, r *http.Request) error {
	org, err := orgOf(r)
	if err != nil {
		return err
	}
	name := r.PathValue("app")
	if _, err := s.svc.App(r.Context(), org, name); err != nil {
		return err
	}
	f, err := os.CreateTemp(s.svc.TempDir(), "upload-*.zip")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	maxBody := s.cfg.MaxArchiveBytes/3*4 + 1<<20
	req, err := upload.Decode(http.MaxBytesReader(w, r.Body, maxBody), f, s.cfg.MaxArchiveBytes)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if req.PreviousVersion != "" || req.TargetDatabaseName != "" {
		return hangar.Errorf(hangar.KindInvalid, "redeploying a previous version or changing the database instance is not supported yet")
	}
	if !req.HasArchive {
		return hangar.Errorf(hangar.KindInvalid, "the deploy request has no application_archive")
	}
	v, err := s.svc.Deploy(r.Context(), org, name, deploy.DeployRequest{
		Archive: f.Name(), Digest: req.ArchiveSHA256, By: principal(r).User.Name,
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apiclient.DeployResponse{ApplicationName: name, ApplicationVersion: v.ID})
}
