package deploy

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"
	"github.com/oklog/ulid/v2"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// Deploy pipeline steps, named as in the seed; they show in logs and the
// deploy log.
const (
	StepUpload        = "upload"
	StepConfiguration = "configuration"
	StepMigration     = "migration"
	StepDeployment    = "deployment"
)

// phaseEvent is the DBOS event a deploy workflow sets when it reaches the
// deployment step ("deployment") or fails before it ("failed"): the deploy
// request answers then, so that build and migration errors reach the CLI.
const phaseEvent = "phase"

// DeployRequest is one deploy of an app from an uploaded archive.
type DeployRequest struct {
	// Archive is a received zip file; Deploy moves it into the archive store.
	Archive string
	// Digest is the archive's sha256, hex.
	Digest string
	// By is the name of the deploying user.
	By string
}

type deployInput struct {
	AppID   string
	Version string
	Digest  string
}

// Deploy stores the archive, records a new version of app and runs the deploy
// workflow. It returns once the workflow reaches the deployment step, with
// the new version; an upload, configuration or migration failure is returned
// as an error with the deploy log's tail as detail.
func (s *Service) Deploy(ctx context.Context, org, appName string, req DeployRequest) (hangar.Version, error) {
	a, err := s.store.App(ctx, org, appName)
	if err != nil {
		return hangar.Version{}, err
	}
	if err := os.Rename(req.Archive, s.archivePath(req.Digest)); err != nil {
		return hangar.Version{}, fmt.Errorf("store archive: %w", err)
	}
	v := hangar.Version{
		ID: ulid.Make().String(), AppID: a.ID, ArchiveDigest: req.Digest,
		Status: hangar.VersionDeploying, DeployedBy: req.By,
	}
	if err := s.store.CreateVersion(ctx, v); err != nil {
		return hangar.Version{}, err
	}
	if err := s.store.SetAppStatus(ctx, a.ID, hangar.StatusDeploying); err != nil {
		return hangar.Version{}, err
	}
	in := deployInput{AppID: a.ID, Version: v.ID, Digest: req.Digest}
	if _, err := dbos.RunWorkflow(s.dbos, s.deployWorkflow, in, dbos.WithWorkflowID("deploy-"+v.ID)); err != nil {
		return hangar.Version{}, fmt.Errorf("start deploy workflow: %w", err)
	}
	phase, err := dbos.GetEvent[string](s.dbos, "deploy-"+v.ID, phaseEvent, s.cfg.HealthTimeout+time.Hour)
	if err != nil {
		return hangar.Version{}, fmt.Errorf("wait for deploy %s: %w", v.ID, err)
	}
	if phase != StepDeployment {
		v, err := s.store.Version(ctx, a.ID, v.ID)
		if err != nil {
			return hangar.Version{}, err
		}
		return v, &hangar.Error{Kind: hangar.KindInvalid, Message: v.Error, Detail: tail(s.deployLogPath(a.ID, v.ID), 60)}
	}
	return v, nil
}

// deployWorkflow runs the four steps of a deploy. A step that fails records
// the version FAILED with a user-safe reason; the previous version, if any,
// keeps serving.
func (s *Service) deployWorkflow(ctx dbos.Context, in deployInput) (string, error) {
	steps := []struct {
		name string
		run  func(context.Context, deployInput) error
	}{
		{StepUpload, s.upload},
		{StepConfiguration, s.configure},
		{StepMigration, s.migrate},
		{StepDeployment, s.deployment},
	}
	for _, st := range steps {
		if st.name == StepDeployment {
			if err := dbos.SetEvent(ctx, phaseEvent, StepDeployment); err != nil {
				return "", err
			}
		}
		_, err := dbos.RunAsStep(ctx, func(ctx context.Context) (string, error) {
			start := time.Now()
			s.deployLog(in, "==> step %s started", st.name)
			err := st.run(ctx, in)
			if err != nil {
				s.deployLog(in, "==> step %s failed after %s: %v", st.name, time.Since(start).Round(time.Millisecond), err)
				return "", err
			}
			s.deployLog(in, "==> step %s done in %s", st.name, time.Since(start).Round(time.Millisecond))
			return "", nil
		}, dbos.WithStepName(st.name))
		if err != nil {
			return "", s.fail(ctx, in, st.name, err)
		}
	}
	return in.Version, nil
}

// fail records a failed deploy: the version FAILED, the app back to what it
// was (AVAILABLE while an earlier version serves, else FAILED), and the phase
// event so a waiting deploy request answers.
func (s *Service) fail(ctx dbos.Context, in deployInput, step string, cause error) error {
	reason := fmt.Sprintf("deploy failed at step %s: %s", step, userMessage(cause))
	_, err := dbos.RunAsStep(ctx, func(ctx context.Context) (string, error) {
		s.log.ErrorContext(ctx, "deploy failed", "app", in.AppID, "version", in.Version, "step", step, "err", cause)
		if err := s.store.FinishVersion(ctx, in.Version, hangar.VersionFailed, reason); err != nil {
			return "", err
		}
		a, err := s.store.AppByID(ctx, in.AppID)
		if err != nil {
			return "", err
		}
		status := hangar.StatusFailed
		if a.Version != "" && s.serving(a.ID) {
			status = hangar.StatusAvailable
		}
		return "", s.store.SetAppStatus(ctx, a.ID, status)
	}, dbos.WithStepName("record-failure"))
	if err != nil {
		return errors.Join(cause, err)
	}
	if step != StepDeployment {
		if err := dbos.SetEvent(ctx, phaseEvent, "failed"); err != nil {
			return errors.Join(cause, err)
		}
	}
	return errors.New(reason)
}

// userMessage is the user-safe text of a step error.
func userMessage(err error) string {
	if m := hangar.MessageOf(err); m != "" {
		return m
	}
	return "internal error (see the server log)"
}

func (s *Service) archivePath(digest string) string {
	return filepath.Join(s.cfg.DataDir, "archives", digest+".zip")
}

// newPassword returns a random password for an app's database role.
func newPassword() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
