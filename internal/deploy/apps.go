package deploy

import (
	"context"

	"github.com/google/uuid"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// RegisterRequest registers an app.
type RegisterRequest struct {
	Name       string
	DBInstance string
	Language   string
	MemoryMiB  int // 0 = default
}

// RegisterApp registers an app of org on one of org's database instances and
// creates its databases and login role there.
func (s *Service) RegisterApp(ctx context.Context, org string, req RegisterRequest) (hangar.App, error) {
	if err := hangar.ValidateAppName(req.Name); err != nil {
		return hangar.App{}, err
	}
	lang, err := hangar.ParseLanguage(req.Language)
	if err != nil {
		return hangar.App{}, err
	}
	if req.MemoryMiB == 0 {
		req.MemoryMiB = hangar.DefaultMemoryMiB
	}
	if err := hangar.ValidateMemory(req.MemoryMiB); err != nil {
		return hangar.App{}, err
	}
	inst, err := s.store.DBInstance(ctx, org, req.DBInstance)
	if err != nil {
		return hangar.App{}, err
	}
	if inst.Status != hangar.DBAvailable {
		return hangar.App{}, hangar.Errorf(hangar.KindUnavailable, "database %s is %s, not available: wait for it, or provision another", inst.Name, inst.Status)
	}
	a := hangar.App{
		ID: uuid.NewString(), Org: org, Name: req.Name, InstanceID: inst.ID, DBInstance: inst.Name,
		AppDBName: hangar.DefaultAppDBName(req.Name), Language: lang,
		Status: hangar.StatusRegistered, MemoryMiB: req.MemoryMiB, MinVMs: 1, MaxVMs: 1,
		DBPassword: newPassword(),
	}
	// The role is named after the database, so an app deleted without
	// --dropdb and registered again gets its databases back.
	a.DBRole = a.AppDBName + "_role"
	apps, err := s.store.Apps(ctx, org)
	if err != nil {
		return hangar.App{}, err
	}
	for _, o := range apps {
		if o.InstanceID == a.InstanceID && o.AppDBName == a.AppDBName && o.Name != a.Name {
			return hangar.App{}, hangar.Errorf(hangar.KindConflict, "application %s already uses database %s on %s: choose another app name", o.Name, a.AppDBName, inst.Name)
		}
	}
	if err := s.store.CreateApp(ctx, a, inst.ID, s.cfg.OrgLimits); err != nil {
		return hangar.App{}, err
	}
	if err := s.instances.EnsureAppDatabases(ctx, inst, a.AppDBName, a.DBRole, a.DBPassword); err != nil {
		return hangar.App{}, err
	}
	return a, nil
}
