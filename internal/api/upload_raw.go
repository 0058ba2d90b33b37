package api

import (
	"context"
	"mime"
	"net/http"

	"github.com/hangar-oss/hangar/internal/apiclient"
	"github.com/hangar-oss/hangar/internal/deploy"
	"github.com/hangar-oss/hangar/internal/hangar"
)

// deployZip is Hangar's streaming deploy, POST
// /hangar/v1/{org}/applications/{app}/deploy: the body is the raw zip
// (Content-Type application/zip), streamed into the archive store (which
// hashes it on the way), then deployed like the official base64 body
// (receiveDeploy). An archive over the limit is refused by its
// Content-Length before a byte is read (the client sends the body only
// after "100 Continue"), or once more than the limit has arrived. With
// ?previous_version=<id> and no body it redeploys that version.
func (s *Server) deployZip(w http.ResponseWriter, r *http.Request) error {
	org, err := orgOf(r)
	if err != nil {
		return err
	}
	name := r.PathValue("app")
	if _, err := s.reads.App(r.Context(), org, name); err != nil {
		return err
	}
	dr := deploy.DeployRequest{PreviousVersion: r.URL.Query().Get("previous_version"), By: principal(r).User.Name}
	if dr.PreviousVersion != "" {
		if r.ContentLength > 0 {
			return hangar.Errorf(hangar.KindInvalid, "a deploy of previous_version %s takes no archive: send an empty body", dr.PreviousVersion)
		}
	} else {
		if dr.Digest, err = receiveZip(r, s.archives); err != nil {
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

// receiveZip streams the request body, a zip, into the archive store and
// returns its digest, held.
func receiveZip(r *http.Request, archives Archives) (string, error) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/zip" {
		return "", hangar.Errorf(hangar.KindInvalid, "send the archive as the body with Content-Type: application/zip, not %q", r.Header.Get("Content-Type"))
	}
	if r.ContentLength == 0 {
		return "", hangar.Errorf(hangar.KindInvalid, "the archive is empty: send the zip as the body, or ?previous_version= to redeploy a version")
	}
	return archives.Receive(r.Context(), r.Body, r.ContentLength)
}
