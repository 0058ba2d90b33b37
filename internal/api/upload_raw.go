package api

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"

	"github.com/hangar-oss/hangar/internal/apiclient"
	"github.com/hangar-oss/hangar/internal/deploy"
	"github.com/hangar-oss/hangar/internal/hangar"
)

// uploadBuffer is the copy buffer of a streamed archive: large enough for
// few syscalls, small enough that the upload's memory stays flat.
const uploadBuffer = 256 << 10

// deployZip is Hangar's streaming deploy, POST
// /hangar/v1/{org}/applications/{app}/deploy: the body is the raw zip
// (Content-Type application/zip), written to a temporary file as it arrives
// and hashed on the way, then deployed like the official base64 body
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
	if _, err := s.svc.App(r.Context(), org, name); err != nil {
		return err
	}
	dr := deploy.DeployRequest{PreviousVersion: r.URL.Query().Get("previous_version"), By: principal(r).User.Name}
	if dr.PreviousVersion != "" {
		if r.ContentLength > 0 {
			return hangar.Errorf(hangar.KindInvalid, "a deploy of previous_version %s takes no archive: send an empty body", dr.PreviousVersion)
		}
	} else {
		f, digest, err := receiveZip(r, s.svc.TempDir(), s.cfg.MaxArchiveBytes)
		if f != "" {
			defer os.Remove(f)
		}
		if err != nil {
			return err
		}
		dr.Archive, dr.Digest = f, digest
	}
	v, err := s.svc.Deploy(r.Context(), org, name, dr)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apiclient.DeployResponse{ApplicationName: name, ApplicationVersion: v.ID})
}

// receiveZip streams the request body, a zip of at most limit bytes, into a
// new file in dir and returns the file and its sha256. The file is returned
// even with an error, for the caller to remove.
func receiveZip(r *http.Request, dir string, limit int64) (string, string, error) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/zip" {
		return "", "", hangar.Errorf(hangar.KindInvalid, "send the archive as the body with Content-Type: application/zip, not %q", r.Header.Get("Content-Type"))
	}
	if r.ContentLength > limit {
		return "", "", hangar.Errorf(hangar.KindTooLarge, "the archive is %s, over the limit of %s", byteSize(r.ContentLength), byteSize(limit))
	}
	if r.ContentLength == 0 {
		return "", "", hangar.Errorf(hangar.KindInvalid, "the archive is empty: send the zip as the body, or ?previous_version= to redeploy a version")
	}
	f, err := os.CreateTemp(dir, "upload-*.zip")
	if err != nil {
		return "", "", err
	}
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(f, h), io.LimitReader(r.Body, limit+1), make([]byte, uploadBuffer))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	switch {
	case err != nil:
		return f.Name(), "", fmt.Errorf("receive archive after %d bytes: %w", n, err)
	case n > limit:
		return f.Name(), "", hangar.Errorf(hangar.KindTooLarge, "the archive is over the limit of %s: more than %d bytes arrived", byteSize(limit), limit)
	case r.ContentLength > 0 && n != r.ContentLength:
		return f.Name(), "", hangar.Errorf(hangar.KindInvalid, "the archive is truncated: %d of %d bytes arrived", n, r.ContentLength)
	}
	return f.Name(), hex.EncodeToString(h.Sum(nil)), nil
}

// byteSize formats n bytes for people: "612.4 MiB (642150000 bytes)".
func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB (%d bytes)", float64(n)/(1<<30), n)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB (%d bytes)", float64(n)/(1<<20), n)
	}
	return fmt.Sprintf("%d bytes", n)
}
