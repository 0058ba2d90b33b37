package deploy

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"
	"github.com/oklog/ulid/v2"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// Deploy pipeline steps, named as in the seed; they show in logs, version
// records and the deploy log.
const (
	StepUpload        = "upload"
	StepConfiguration = "configuration"
	StepMigration     = "migration"
	StepDeployment    = "deployment"
)

// DeployRequest is one deploy of an app.
type DeployRequest struct {
	// Digest is the received archive's (hex SHA-256), which the caller
	// holds in the archive store until Deploy returns. Empty with
	// PreviousVersion.
	Digest string
	// PreviousVersion redeploys that stored version instead of an archive.
	PreviousVersion string
	// TargetDB moves the app to that database instance of its org
	// (change-database-instance).
	TargetDB string
	// By is the name of the deploying user.
	By string
}

// deployInput is the deploy workflow's input; it is stored by DBOS, so its
// fields are plain data.
type deployInput struct {
	Op               string // workflow ID, also the app's operation lock
	AppID            string
	Version          string
	Digest           string
	AppVersion       string // DBOS__APPVERSION of the new executors
	RestoredFrom     string
	TargetInstanceID string
}

// Deploy records a new version of app and runs the deploy workflow to its
// end: it returns the new version once it serves, or the failure with the
// deploy log's tail as detail, so that the official CLI, which only polls for
// AVAILABLE afterwards, reports failed deploys. A second modifying operation
// on the app while one runs is a KindConflict error.
func (s *Service) Deploy(ctx context.Context, org, appName string, req DeployRequest) (hangar.Version, error) {
	a, err := s.store.App(ctx, org, appName)
	if err != nil {
		return hangar.Version{}, err
	}
	in := deployInput{AppID: a.ID, Version: ulid.Make().String()}
	in.Op = "deploy-" + in.Version
	if req.PreviousVersion != "" {
		prev, err := s.store.Version(ctx, a.ID, req.PreviousVersion)
		if err != nil {
			return hangar.Version{}, err
		}
		f, err := s.archives.Open(prev.ArchiveDigest)
		if err != nil {
			return hangar.Version{}, hangar.Errorf(hangar.KindInvalid, "version %s cannot be redeployed: its archive is not stored", prev.ID)
		}
		f.Close()
		in.Digest, in.AppVersion, in.RestoredFrom = prev.ArchiveDigest, prev.AppVersion, prev.ID
	} else {
		in.Digest, in.AppVersion = req.Digest, in.Version
	}
	if err := s.store.CheckOrgExecutors(ctx, org, s.cfg.OrgLimits); err != nil {
		return hangar.Version{}, err
	}
	if req.TargetDB != "" {
		inst, err := s.store.DBInstance(ctx, org, req.TargetDB)
		if err != nil {
			return hangar.Version{}, err
		}
		if inst.Status != hangar.DBAvailable {
			return hangar.Version{}, hangar.Errorf(hangar.KindUnavailable, "database %s is %s, not available", inst.Name, inst.Status)
		}
		in.TargetInstanceID = inst.ID
	}
	if err := s.store.BeginOperation(ctx, a.ID, in.Op); err != nil {
		return hangar.Version{}, err
	}
	v := hangar.Version{
		ID: in.Version, AppID: a.ID, ArchiveDigest: in.Digest, Status: hangar.VersionDeploying,
		DeployedBy: req.By, AppVersion: in.AppVersion, RestoredFrom: in.RestoredFrom,
	}
	// The caller's hold keeps the archive until the version records it.
	err = s.store.CreateVersion(ctx, v)
	if err == nil {
		err = s.store.SetAppStatus(ctx, a.ID, hangar.StatusDeploying)
	}
	var h dbos.WorkflowHandle[string]
	if err == nil {
		h, err = dbos.RunWorkflow(s.dbos, s.deployWorkflow, in, dbos.WithWorkflowID(in.Op))
	}
	if err != nil {
		s.store.EndOperation(context.WithoutCancel(ctx), a.ID, in.Op) //nolint:errcheck // the error below matters more
		return hangar.Version{}, fmt.Errorf("start deploy of %s: %w", a.Name, err)
	}
	if _, err := h.GetResult(); err == nil {
		return v, nil
	}
	v, err = s.store.Version(ctx, a.ID, v.ID)
	if err != nil {
		return hangar.Version{}, err
	}
	if v.Status != hangar.VersionFailed {
		return v, fmt.Errorf("deploy %s ended without a recorded outcome", v.ID)
	}
	return v, &hangar.Error{Kind: hangar.KindInvalid, Message: v.Error, Detail: s.deployLogTail(ctx, a.ID, v.ID)}
}

// deployWorkflow runs the four steps of a deploy. A step that fails records
// the version FAILED with a user-safe reason; the previous version, if any,
// keeps serving.
func (s *Service) deployWorkflow(ctx dbos.Context, in deployInput) (string, error) {
	steps := []struct {
		name string
		run  func(context.Context, deployInput, io.Writer) error
	}{
		{StepUpload, s.upload},
		{StepConfiguration, s.configure},
		{StepMigration, s.migrate},
		{StepDeployment, s.deployment},
	}
	for _, st := range steps {
		_, err := dbos.RunAsStep(ctx, func(ctx context.Context) (string, error) {
			return "", s.runStep(ctx, in, st.name, st.run)
		}, dbos.WithStepName(st.name))
		if err != nil {
			return "", s.fail(ctx, in, st.name, err)
		}
	}
	_, err := dbos.RunAsStep(ctx, func(ctx context.Context) (string, error) {
		return "", s.store.EndOperation(ctx, in.AppID, in.Op)
	}, dbos.WithStepName("finish"))
	if err == nil {
		s.observer().DeployEnded(true)
		// Once the app is released, and after the deploy returned: pruning
		// unmounts disks (a few hundred ms that the caller does not wait
		// for), and a step that outlasts its version's ACTIVE gets re-run
		// by a restart.
		pctx := context.WithoutCancel(ctx)
		s.prunes.Go(func() { s.pruneVersions(pctx, in.AppID) })
	}
	return in.Version, err
}

// runStep runs one step with its own deploy log writer, logging it and
// recording its timing and outcome.
func (s *Service) runStep(ctx context.Context, in deployInput, name string, run func(context.Context, deployInput, io.Writer) error) error {
	w := s.logs.Writer(in.AppID, sourceDeploy, in.Version, name)
	defer w.Close()
	start := time.Now()
	logf(w, "==> step %s started", name)
	if d := s.cfg.StepDelay[name]; d > 0 {
		logf(w, "fault injection: pausing step %s for %s", name, d)
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	err := run(ctx, in, w)
	rec := hangar.StepRecord{Name: name, StartedAt: start.UTC(), DurationMS: time.Since(start).Milliseconds()}
	s.observer().StepEnded(name, time.Since(start))
	d := time.Since(start).Round(time.Millisecond)
	if err != nil {
		rec.Error = userMessage(err)
		logf(w, "==> step %s failed after %s: %s", name, d, rec.Error)
	} else {
		logf(w, "==> step %s done in %s", name, d)
	}
	if rerr := s.store.RecordStep(ctx, in.Version, rec); rerr != nil {
		return errors.Join(err, rerr)
	}
	return err
}

// fail records a failed deploy: the version FAILED, the app back to what it
// was (AVAILABLE while an earlier version serves, else FAILED), and the app
// released.
func (s *Service) fail(ctx dbos.Context, in deployInput, step string, cause error) error {
	s.observer().DeployEnded(false)
	s.fleet.DropEarly(context.WithoutCancel(ctx), in.AppID)
	reason := fmt.Sprintf("deploy failed at step %s: %s", step, userMessage(cause))
	_, err := dbos.RunAsStep(ctx, func(ctx context.Context) (string, error) {
		s.log.ErrorContext(ctx, "deploy failed", "app", in.AppID, "version", in.Version, "step", step, "err", cause)
		if err := s.store.FinishVersion(ctx, in.Version, hangar.VersionFailed, reason); err != nil {
			return "", err
		}
		// A failed version never runs: its folder (a disk of up to the
		// installed limit) goes now, not with the app, so that failing
		// deploys cannot pile up disks on the host.
		if err := s.removeVersionDir(ctx, s.versionDir(in.AppID, in.Version)); err != nil {
			s.log.ErrorContext(ctx, "remove a failed version's folder", "app", in.AppID, "version", in.Version, "err", err)
		}
		status := hangar.StatusFailed
		if s.fleet.Serving(in.AppID) {
			status = hangar.StatusAvailable
		}
		if err := s.store.SetAppStatus(ctx, in.AppID, status); err != nil {
			return "", err
		}
		return "", s.store.EndOperation(ctx, in.AppID, in.Op)
	}, dbos.WithStepName("record-failure"))
	if err != nil {
		return errors.Join(cause, err)
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

// newPassword returns a random password for an app's database role.
func newPassword() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
