package accounts

import (
	"context"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// checkAdmin refuses u unless it is the admin of org, of which it must be a
// member.
func (s *Service) checkAdmin(ctx context.Context, u hangar.User, org, what string) error {
	if err := checkOrg(u, org); err != nil {
		return err
	}
	admin, err := s.store.OrgAdmin(ctx, org)
	if err != nil {
		return err
	}
	if admin != u.ID {
		return hangar.Errorf(hangar.KindForbidden, "only the admin of organization %s can %s", org, what)
	}
	return nil
}

// Invite returns a new invite secret to org, single-use and valid for
// InviteTTL. Only the org's admin may invite (KindForbidden).
func (s *Service) Invite(ctx context.Context, u hangar.User, org string) (string, error) {
	if err := s.checkAdmin(ctx, u, org, "invite users"); err != nil {
		return "", err
	}
	secret := newInviteSecret()
	now := s.cfg.Now()
	if err := s.store.CreateInvite(ctx, org, hashSecret(secret), u.ID, now, now.Add(s.cfg.InviteTTL)); err != nil {
		return "", err
	}
	return secret, nil
}

// Join moves u into org with an invite secret of that org. Errors:
// KindForbidden for an invalid, used or expired secret; KindConflict when u
// is a member already, or is the last member of an org that still has
// applications or databases (DBOS asks users to delete them first).
func (s *Service) Join(ctx context.Context, u hangar.User, org, secret string) error {
	if secret == "" {
		return hangar.Errorf(hangar.KindInvalid, "an invite secret is required to join organization %s: ask its admin for one (dbos-cloud org invite)", org)
	}
	return s.store.JoinOrg(ctx, u.ID, org, hashSecret(secret), s.cfg.Now())
}

// OrgUsers returns the names of org's members, for a member of it.
func (s *Service) OrgUsers(ctx context.Context, u hangar.User, org string) ([]string, error) {
	if err := checkOrg(u, org); err != nil {
		return nil, err
	}
	return s.store.OrgMembers(ctx, org)
}

// RenameOrg renames org to newName (admin only). Its apps' hostnames
// (<org>-<app>.<domain>) change with it: the old ones stop serving.
// Errors: KindForbidden, KindInvalid for a bad name, KindConflict when the
// name is taken.
func (s *Service) RenameOrg(ctx context.Context, u hangar.User, org, newName string) error {
	if err := s.checkAdmin(ctx, u, org, "rename it"); err != nil {
		return err
	}
	if err := ValidateName(newName); err != nil {
		return err
	}
	if newName == org {
		return hangar.Errorf(hangar.KindInvalid, "organization %s has that name already", org)
	}
	if err := s.store.RenameOrg(ctx, org, newName); err != nil {
		return err
	}
	if s.routes != nil {
		// The rename is made: a failure here leaves apps at their old
		// hostnames until their next deploy, which is worth a log line but
		// not a failed request.
		if err := s.routes.OrgRenamed(ctx, org, newName); err != nil {
			s.log.ErrorContext(ctx, "move app hostnames of a renamed organization", "org", newName, "old_org", org, "err", err)
		}
	}
	return nil
}

// RemoveMember removes the user named name from org (admin only); the user
// gets an org of its own again. The admin cannot remove itself.
func (s *Service) RemoveMember(ctx context.Context, u hangar.User, org, name string) error {
	if err := s.checkAdmin(ctx, u, org, "remove users"); err != nil {
		return err
	}
	if name == u.Name {
		return hangar.Errorf(hangar.KindInvalid, "you are the admin of organization %s and cannot remove yourself", org)
	}
	_, err := s.store.RemoveMember(ctx, org, name, s.cfg.Now())
	return err
}
