package accounts

import (
	"context"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// reservedNames cannot be usernames or org names: they are literal path
// segments where the API expects one (/v1alpha1/user/profile,
// DELETE /v1alpha1/{org}/dashboard, …), so a user or org of that name could
// not be addressed.
var reservedNames = map[string]bool{
	"user": true, "users": true, "dashboard": true, "secret": true, "join": true,
	"applications": true, "databases": true, "logs": true,
}

// ValidateName checks a username or org name: the rule of API.md (3 to 30 of
// a-z, 0-9 and _), minus the reserved path words.
func ValidateName(name string) error {
	if err := hangar.ValidateUserName(name); err != nil {
		return err
	}
	if reservedNames[name] {
		return hangar.Errorf(hangar.KindInvalid, "the name %q is reserved: choose another one", name)
	}
	return nil
}

// Register gives the account subject (the subject of a valid access token)
// its username, as PUT /v1alpha1/user does. Hangar decides: only the
// operator creates accounts (hangar users add, or hangar users signup for an
// account whose holder picks the username), so registration applies to a
// sign-up account: it gets an org of its own named after it, or with an
// invite secret joins that org. An account registered already under that
// name succeeds again (joining the invite's org if a secret is given); under
// another name it is KindConflict. Errors: KindInvalid for a bad name,
// KindConflict for a taken name, KindForbidden for a bad invite,
// KindUnauthorized for a deleted or disabled account.
func (s *Service) Register(ctx context.Context, subject, name, secret string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	var inviteHash []byte
	if secret != "" {
		inviteHash = hashSecret(secret)
	}
	u, err := s.store.UserByID(ctx, subject)
	switch {
	case err == nil && u.Name != name:
		return hangar.Errorf(hangar.KindConflict, "you are registered already, as %s", u.Name)
	case err == nil && secret != "":
		return s.store.JoinOrg(ctx, u.ID, "", inviteHash, s.cfg.Now())
	case err == nil:
		return nil
	case hangar.KindOf(err) != hangar.KindNotFound:
		return err
	}
	_, err = s.store.RegisterUser(ctx, subject, name, inviteHash, s.cfg.Now())
	return err
}

// IsOrgAdmin reports whether u is the admin of its org.
func (s *Service) IsOrgAdmin(ctx context.Context, u hangar.User) (bool, error) {
	admin, err := s.store.OrgAdmin(ctx, u.Org)
	return err == nil && admin == u.ID, err
}

// RevokeRefreshToken revokes a refresh token. Unknown tokens are ignored,
// as RFC 7009 asks, so a caller learns nothing about which tokens exist.
func (s *Service) RevokeRefreshToken(ctx context.Context, token string) error {
	if token == "" {
		return hangar.Errorf(hangar.KindInvalid, "no token to revoke: send {\"token\": \"<refresh token>\"}")
	}
	return s.store.RevokeRefreshToken(ctx, token, s.cfg.Now())
}
