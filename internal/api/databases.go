package api

import (
	"net/http"

	"github.com/hangar-oss/hangar/internal/apiclient"
	"github.com/hangar-oss/hangar/internal/databases"
	"github.com/hangar-oss/hangar/internal/hangar"
)

func toUserDB(d hangar.DBInstance) apiclient.UserDBInstance {
	return apiclient.UserDBInstance{
		PostgresInstanceName: d.Name, Status: string(d.Status), HostName: d.Host, Port: d.Port,
		DatabaseUsername: d.AdminUser, IsLinked: d.IsLinked, DBOSAdminName: d.AdminUser,
	}
}

func (s *Server) provisionDB(w http.ResponseWriter, r *http.Request) error {
	org, err := orgOf(r)
	if err != nil {
		return err
	}
	var req apiclient.ProvisionDBRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if _, err := s.dbs.ProvisionDB(r.Context(), org, databases.ProvisionRequest{
		Name: req.Name, AdminName: req.AdminName, AdminPassword: req.AdminPassword,
	}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listDBs(w http.ResponseWriter, r *http.Request) error {
	org, err := orgOf(r)
	if err != nil {
		return err
	}
	dbs, err := s.dbs.DBInstances(r.Context(), org)
	if err != nil {
		return err
	}
	out := make([]apiclient.UserDBInstance, 0, len(dbs))
	for _, d := range dbs {
		out = append(out, toUserDB(d))
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) dbInfo(w http.ResponseWriter, r *http.Request) error {
	org, err := orgOf(r)
	if err != nil {
		return err
	}
	d, err := s.dbs.DBInstance(r.Context(), org, r.PathValue("db"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, toUserDB(d))
}

func (s *Server) destroyDB(w http.ResponseWriter, r *http.Request) error {
	org, err := orgOf(r)
	if err != nil {
		return err
	}
	if err := s.dbs.DestroyDB(r.Context(), org, r.PathValue("db")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) resetDBPassword(w http.ResponseWriter, r *http.Request) error {
	org, err := orgOf(r)
	if err != nil {
		return err
	}
	var req apiclient.ResetPasswordRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := s.dbs.ResetDBPassword(r.Context(), org, r.PathValue("db"), req.Password); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) restoreDB(w http.ResponseWriter, r *http.Request) error {
	org, err := orgOf(r)
	if err != nil {
		return err
	}
	var req apiclient.RestoreDBRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if _, err := s.dbs.RestoreDB(r.Context(), org, r.PathValue("db"), databases.RestoreRequest{
		Name: req.RestoreName, Time: req.RestoreTimestamp,
	}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) linkDB(w http.ResponseWriter, r *http.Request) error {
	org, err := orgOf(r)
	if err != nil {
		return err
	}
	var req apiclient.LinkDBRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if _, err := s.dbs.LinkDB(r.Context(), org, databases.LinkRequest{
		Name: req.Name, HostName: req.HostName, Port: req.Port, Password: req.Password,
		AdminName: req.DBOSAdminName, SupabaseRef: req.SupabaseReference,
	}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) unlinkDB(w http.ResponseWriter, r *http.Request) error {
	org, err := orgOf(r)
	if err != nil {
		return err
	}
	if err := s.dbs.UnlinkDB(r.Context(), org, r.PathValue("db")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
