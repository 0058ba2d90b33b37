package api

import (
	"context"
	"net/http"
	"time"

	"github.com/hangar-oss/hangar/internal/apiclient"
	"github.com/hangar-oss/hangar/internal/deploy"
	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/upload"
)

func (s *Server) toApplication(a hangar.App) apiclient.Application {
	return apiclient.Application{
		Name: a.Name, ID: a.ID, PostgresInstanceName: a.DBInstance, ApplicationDatabaseName: a.AppDBName,
		Status: string(a.Status), Version: a.Version, AppURL: s.appURL(a), ExecutorsMemoryMib: a.MemoryMiB,
		AppHealth: toHealth(s.exs.Health(a.ID)),
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
	apps, err := s.reads.Apps(r.Context(), org)
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
	a, err := s.appOf(r)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s.toApplication(a))
}

// deployApp receives a deploy (and with changeDB, a change of database
// instance): the base64 archive inside the JSON body is decoded as it streams
// into a file, never held in memory.
func (s *Server) deployApp(changeDB bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error { return s.receiveDeploy(w, r, changeDB) }
}

func (s *Server) receiveDeploy(w http.ResponseWriter, r *http.Request, changeDB bool) error {
	org, err := orgOf(r)
	if err != nil {
		return err
	}
	name := r.PathValue("app")
	if _, err := s.reads.App(r.Context(), org, name); err != nil {
		return err
	}
	aw, err := s.archives.Create()
	if err != nil {
		return err
	}
	defer aw.Close()
	maxArchive := s.archives.Limits().MaxBytes
	req, err := upload.Decode(http.MaxBytesReader(w, r.Body, maxArchive/3*4+1<<20), aw, maxArchive)
	if err != nil {
		return err
	}
	if req.HasArchive == (req.PreviousVersion != "") {
		return hangar.Errorf(hangar.KindInvalid, "a deploy request needs exactly one of application_archive and previous_version")
	}
	target := req.TargetDatabaseName
	if !changeDB {
		target = ""
	} else if target == "" {
		return hangar.Errorf(hangar.KindInvalid, "changing the database instance needs target_database_name")
	}
	dr := deploy.DeployRequest{PreviousVersion: req.PreviousVersion, TargetDB: target, By: principal(r).User.Name}
	if req.HasArchive {
		if dr.Digest, err = aw.Commit(r.Context()); err != nil {
			return err
		}
		defer s.archives.Release(context.WithoutCancel(r.Context()), dr.Digest)
	}
	v, err := s.svc.Deploy(r.Context(), org, name, dr)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apiclient.DeployResponse{ApplicationName: name, ApplicationVersion: v.ID})
}

func (s *Server) updateApp(w http.ResponseWriter, r *http.Request) error {
	org, err := orgOf(r)
	if err != nil {
		return err
	}
	var req apiclient.UpdateAppRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	opt := func(f apiclient.FlexInt) *int {
		if !f.Set {
			return nil
		}
		return &f.Value
	}
	_, err = s.svc.UpdateApp(r.Context(), org, r.PathValue("app"), deploy.UpdateRequest{
		MemoryMiB: opt(req.ExecutorsMemoryMib), MinVMs: opt(req.MinVMs), MaxVMs: opt(req.MaxVMs),
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) deleteApp(w http.ResponseWriter, r *http.Request) error {
	org, err := orgOf(r)
	if err != nil {
		return err
	}
	var req apiclient.DeleteAppRequest
	if r.ContentLength != 0 {
		if err := decode(r, &req); err != nil {
			return err
		}
	}
	if err := s.svc.DeleteApp(r.Context(), org, r.PathValue("app"), req.DropDB); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listVersions(w http.ResponseWriter, r *http.Request) error {
	a, err := s.appOf(r)
	if err != nil {
		return err
	}
	name := a.Name
	vs, err := s.reads.Versions(r.Context(), a.ID)
	if err != nil {
		return err
	}
	out := make([]apiclient.AppVersion, 0, len(vs))
	for _, v := range vs {
		av := apiclient.AppVersion{
			ApplicationName: name, Version: v.ID, CreationTime: v.CreatedAt.UTC().Format(time.RFC3339Nano),
			Status: string(v.Status), Error: v.Error, RestoredFrom: v.RestoredFrom, DeployedBy: v.DeployedBy,
		}
		for _, st := range v.Steps {
			av.Steps = append(av.Steps, apiclient.DeployStep{
				Name: st.Name, StartedAt: st.StartedAt.UTC().Format(time.RFC3339Nano), DurationMS: st.DurationMS, Error: st.Error,
			})
		}
		out = append(out, av)
	}
	return writeJSON(w, http.StatusOK, out)
}
