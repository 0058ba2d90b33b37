package databases

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"
	"github.com/google/uuid"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// RestoreRequest asks for a point-in-time restore of an instance into a new
// one.
type RestoreRequest struct {
	// Name is the new instance's name.
	Name string
	// Time is the point in time, RFC 3339 (fractions of a second allowed).
	Time string
}

// RestoreDB creates org's managed instance req.Name as a copy of the
// instance name at time req.Time: every transaction committed then, none
// after. The new instance has the same admin credentials; it reads
// "restoring" and then "available" (or "failed"). A time outside the
// range the instance can be restored to is refused with the range.
func (s *Service) RestoreDB(ctx context.Context, org, name string, req RestoreRequest) (hangar.DBInstance, error) {
	if err := hangar.ValidateDBInstanceName(req.Name); err != nil {
		return hangar.DBInstance{}, err
	}
	target, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(req.Time))
	if err != nil {
		return hangar.DBInstance{}, hangar.Errorf(hangar.KindInvalid, "invalid restore time %q: use RFC 3339, for example 2009-09-07T23:45:00Z", req.Time)
	}
	dbm := s.instances
	src, err := s.store.DBInstance(ctx, org, name)
	if err != nil {
		return hangar.DBInstance{}, err
	}
	if src.IsLinked {
		return hangar.DBInstance{}, hangar.Errorf(hangar.KindInvalid, "database %s is a linked server: Hangar keeps no backups of servers it does not run", name)
	}
	if src.Status != hangar.DBAvailable && src.Status != hangar.DBUnavailable {
		return hangar.DBInstance{}, hangar.Errorf(hangar.KindUnavailable, "database %s is %s: restore it once it is available", name, src.Status)
	}
	from, err := dbm.RestoreWindow(src)
	if err != nil {
		return hangar.DBInstance{}, err
	}
	if now := time.Now(); target.Before(from) || target.After(now) {
		// Shown to the second: any time within the range as shown works.
		earliest := from.Truncate(time.Second)
		if earliest.Before(from) {
			earliest = earliest.Add(time.Second)
		}
		return hangar.DBInstance{}, hangar.Errorf(hangar.KindInvalid,
			"cannot restore database %s to %s: it can be restored to any time from %s to now (%s)",
			name, target.UTC().Format(time.RFC3339Nano), earliest.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	dst := hangar.DBInstance{
		ID: uuid.NewString(), Org: org, Name: req.Name, Status: hangar.DBRestoring,
		AdminUser: src.AdminUser, AdminPassword: src.AdminPassword,
	}
	if err := s.store.CreateDBInstance(ctx, dst, s.cfg.OrgLimits); err != nil {
		return hangar.DBInstance{}, err
	}
	in := restoreInput{SourceID: src.ID, TargetID: dst.ID, Time: target}
	if _, err := dbos.RunWorkflow(s.dbos, s.restoreWorkflow, in, dbos.WithWorkflowID("restore-"+dst.ID)); err != nil {
		return hangar.DBInstance{}, fmt.Errorf("start restoring %s: %w", name, err)
	}
	return dst, nil
}

// restoreInput is a point-in-time restore of instance SourceID into the
// new instance TargetID.
type restoreInput struct {
	SourceID string
	TargetID string
	Time     time.Time
}

// restoreWorkflow recovers the new instance from the source's base backup
// and WAL archive, records it available and takes its first base backup.
func (s *Service) restoreWorkflow(ctx dbos.Context, in restoreInput) (string, error) {
	port, err := dbos.RunAsStep(ctx, func(ctx context.Context) (int, error) {
		dbm := s.instances
		dst, err := s.store.DBInstanceByID(ctx, in.TargetID)
		if err != nil {
			return 0, err
		}
		src, err := s.store.DBInstanceByID(ctx, in.SourceID)
		var port int
		if err == nil {
			err = s.take(ctx, dst.ID)
		}
		if err == nil {
			port, err = dbm.Restore(ctx, src, dst, in.Time)
		}
		if err != nil && ctx.Err() != nil {
			return 0, err // shutting down: the step runs again when the workflow resumes
		}
		if err != nil {
			s.log.ErrorContext(ctx, "restore database instance", "instance", dst.Name, "from", in.SourceID, "time", in.Time, "err", err)
			return 0, s.store.SetDBInstanceState(ctx, dst.ID, hangar.DBFailed, "", 0)
		}
		return port, s.store.SetDBInstanceState(ctx, dst.ID, hangar.DBRestoring, s.dbHost(), port)
	}, dbos.WithStepName("restore"))
	if err != nil || port == 0 {
		return string(hangar.DBFailed), err
	}
	return s.finishDBWorkflow(ctx, in.TargetID, port)
}
