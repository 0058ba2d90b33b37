package databases

import (
	"context"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// ResetDBPassword sets the admin password of org's managed instance named
// name, in the server and in Hangar's record.
func (s *Service) ResetDBPassword(ctx context.Context, org, name, password string) error {
	if err := validatePassword(password); err != nil {
		return err
	}
	st := s.store
	dbm := s.instances
	inst, err := s.store.DBInstance(ctx, org, name)
	if err != nil {
		return err
	}
	if inst.IsLinked {
		return hangar.Errorf(hangar.KindInvalid, "database %s is a linked server: change the password on it, then unlink and link it again", name)
	}
	if inst.Status != hangar.DBAvailable {
		return hangar.Errorf(hangar.KindUnavailable, "database %s is %s, not available: try again once it is", name, inst.Status)
	}
	return st.SetDBInstancePassword(ctx, inst.ID, password, func(cur hangar.DBInstance) error {
		return dbm.SetAdminPassword(ctx, cur, password)
	})
}
