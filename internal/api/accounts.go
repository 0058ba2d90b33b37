package api

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/hangar-oss/hangar/internal/apiclient"
	"github.com/hangar-oss/hangar/internal/hangar"
)

// Accounts is what the API needs of the accounts service
// (internal/accounts.Service): users, organizations and app secrets. Every
// method that names an org checks that u is a member of it (KindForbidden).
type Accounts interface {
	// Register gives the account subject its username, joining the org of
	// an invite secret if one is given. Errors: KindInvalid, KindConflict,
	// KindForbidden (bad invite), KindUnauthorized (deleted or disabled).
	Register(ctx context.Context, subject, name, secret string) error
	// IsOrgAdmin reports whether u is its org's admin.
	IsOrgAdmin(ctx context.Context, u hangar.User) (bool, error)
	// RevokeRefreshToken revokes a refresh token; unknown ones are ignored.
	// Errors: KindInvalid for an empty token.
	RevokeRefreshToken(ctx context.Context, token string) error

	// Invite returns a single-use invite secret to org. Errors:
	// KindForbidden unless u is the org's admin.
	Invite(ctx context.Context, u hangar.User, org string) (string, error)
	// Join moves u into org with an invite secret. Errors: KindForbidden
	// (bad secret), KindConflict (member already, or apps and databases
	// left behind), KindInvalid.
	Join(ctx context.Context, u hangar.User, org, secret string) error
	// OrgUsers lists org's member names. Errors: KindForbidden.
	OrgUsers(ctx context.Context, u hangar.User, org string) ([]string, error)
	// RenameOrg renames org. Errors: KindForbidden (not admin),
	// KindInvalid, KindConflict (name taken).
	RenameOrg(ctx context.Context, u hangar.User, org, newName string) error
	// RemoveMember removes the user name from org. Errors: KindForbidden
	// (not admin), KindNotFound (not a member), KindInvalid (the admin).
	RemoveMember(ctx context.Context, u hangar.User, org, name string) error

	// PutSecret creates or replaces an app's secret. Errors: KindForbidden,
	// KindNotFound (app), KindInvalid (name, size).
	PutSecret(ctx context.Context, u hangar.User, org, app, name, value string) error
	// SecretNames lists an app's secret names. Errors: KindForbidden,
	// KindNotFound.
	SecretNames(ctx context.Context, u hangar.User, org, app string) ([]string, error)
	// DeleteSecret deletes an app's secret. Errors: KindForbidden,
	// KindNotFound (app or secret).
	DeleteSecret(ctx context.Context, u hangar.User, org, app, name string) error
}

// accountsAPI serves the account routes (routes_accounts.go).
type accountsAPI struct {
	*Server
	acc Accounts
}

func (a *accountsAPI) profile(w http.ResponseWriter, r *http.Request) error {
	u := principal(r).User
	admin, err := a.acc.IsOrgAdmin(r.Context(), u)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apiclient.Profile{
		Name: u.Name, Email: u.Email, Organization: u.Org, SubscriptionPlan: "pro",
		IsOrgAdmin: admin, CreatedAt: u.CreatedAt.UTC().Format(time.RFC3339),
	})
}

// register is PUT /v1alpha1/user. The official CLI sends it when the profile
// says "user not found in DBOS Cloud", so it authenticates the token alone:
// its subject has no user yet.
func (a *accountsAPI) register(w http.ResponseWriter, r *http.Request) error {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || strings.TrimSpace(tok) == "" {
		return hangar.Errorf(hangar.KindUnauthorized, "missing bearer token: log in first")
	}
	subject, err := a.tokens.Verify(strings.TrimSpace(tok))
	if err != nil {
		return err
	}
	var req apiclient.RegisterUserRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := a.acc.Register(r.Context(), subject, req.Name, req.Secret); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// revoke is POST /oauth/revoke (RFC 7009): possession of a refresh token is
// enough to revoke it, and the answer is 200 whether it existed or not.
func (a *accountsAPI) revoke(w http.ResponseWriter, r *http.Request) error {
	var req apiclient.RevokeRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := a.acc.RevokeRefreshToken(r.Context(), req.Token); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// invite answers the secret as a JSON string, which the official CLI prints.
func (a *accountsAPI) invite(w http.ResponseWriter, r *http.Request) error {
	org, err := orgOf(r)
	if err != nil {
		return err
	}
	secret, err := a.acc.Invite(r.Context(), principal(r).User, org)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, secret)
}

// join is POST /v1alpha1/{org}/join: the caller is not a member of {org} yet,
// so the invite secret, not the org, authorizes it.
func (a *accountsAPI) join(w http.ResponseWriter, r *http.Request) error {
	var req apiclient.JoinOrgRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := a.acc.Join(r.Context(), principal(r).User, r.PathValue("org"), req.Secret); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *accountsAPI) orgUsers(w http.ResponseWriter, r *http.Request) error {
	org, err := orgOf(r)
	if err != nil {
		return err
	}
	names, err := a.acc.OrgUsers(r.Context(), principal(r).User, org)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apiclient.OrgUsers{OrgName: org, UserNames: nonNil(names)})
}

func (a *accountsAPI) renameOrg(w http.ResponseWriter, r *http.Request) error {
	org, err := orgOf(r)
	if err != nil {
		return err
	}
	var req apiclient.RenameOrgRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := a.acc.RenameOrg(r.Context(), principal(r).User, org, req.NewName); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *accountsAPI) removeMember(w http.ResponseWriter, r *http.Request) error {
	org, err := orgOf(r)
	if err != nil {
		return err
	}
	if err := a.acc.RemoveMember(r.Context(), principal(r).User, org, r.PathValue("username")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// putSecret must answer 200: the official CLI treats any other status,
// 2xx included, as a failure.
func (a *accountsAPI) putSecret(w http.ResponseWriter, r *http.Request) error {
	org, err := orgOf(r)
	if err != nil {
		return err
	}
	var req apiclient.CreateSecretRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := a.acc.PutSecret(r.Context(), principal(r).User, org, req.ApplicationName, req.SecretName, req.ClearSecretValue); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// listSecrets must answer 200 with a JSON array of names (never null: the
// official CLI iterates it).
func (a *accountsAPI) listSecrets(w http.ResponseWriter, r *http.Request) error {
	org, err := orgOf(r)
	if err != nil {
		return err
	}
	names, err := a.acc.SecretNames(r.Context(), principal(r).User, org, r.PathValue("app"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, nonNil(names))
}

// deleteSecret must answer 204, which the official CLI checks.
func (a *accountsAPI) deleteSecret(w http.ResponseWriter, r *http.Request) error {
	org, err := orgOf(r)
	if err != nil {
		return err
	}
	if err := a.acc.DeleteSecret(r.Context(), principal(r).User, org, r.PathValue("app"), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
