// Package accounts owns Hangar's users, organizations and app secrets:
// registration of sign-up accounts, org invites, joins, renames and
// removals with the org admin's rights (Service); secrets sealed before
// they are stored and opened only to start executors (Opener); the
// password sign-in policy and its limit on guessing (SignIn); and the
// operator's user commands, hangar users … (Operator).
//
// It declares the small interfaces its store and sealing box satisfy and
// imports only internal/hangar and internal/auth (passwords, refresh
// tokens, the limiter). Only the composition roots (cmd/hangar,
// internal/server) import it; the transport (api) and the orchestration
// that opens secrets use it through interfaces of their own.
package accounts

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"log/slog"
	"time"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// Store is the metadata the accounts service reads and writes; store.DB
// satisfies it. Its errors are domain errors where noted on store.DB.
type Store interface {
	UserByID(ctx context.Context, id string) (hangar.User, error)
	RegisterUser(ctx context.Context, id, name string, inviteHash []byte, now time.Time) (hangar.User, error)
	RevokeRefreshToken(ctx context.Context, token string, now time.Time) error

	OrgAdmin(ctx context.Context, org string) (string, error)
	OrgMembers(ctx context.Context, org string) ([]string, error)
	CreateInvite(ctx context.Context, org string, secretHash []byte, createdBy string, now, expires time.Time) error
	JoinOrg(ctx context.Context, userID, org string, secretHash []byte, now time.Time) error
	RemoveMember(ctx context.Context, org, name string, now time.Time) (string, error)
	RenameOrg(ctx context.Context, org, newName string) error

	App(ctx context.Context, org, name string) (hangar.App, error)
	PutSecret(ctx context.Context, appID, name string, sealed []byte, now time.Time) error
	SecretNames(ctx context.Context, appID string) ([]string, error)
	SealedSecrets(ctx context.Context, appID string) (map[string][]byte, error)
	DeleteSecret(ctx context.Context, appID, name string) (bool, error)
}

// Sealer encrypts secret values at rest; secretbox.Box satisfies it.
type Sealer interface {
	// Seal encrypts plaintext bound to associatedData.
	Seal(plaintext, associatedData []byte) []byte
	// OpenSealed decrypts what Seal returned for the same associatedData,
	// and fails when it was altered or sealed for other data or another key.
	OpenSealed(sealed, associatedData []byte) ([]byte, error)
}

// Routes serves app hostnames, which contain the org's name; the deploy
// service satisfies it.
type Routes interface {
	// OrgRenamed serves the apps of the org now named newName at their new
	// hostnames and stops serving their old ones.
	OrgRenamed(ctx context.Context, oldName, newName string) error
}

// Config configures the service.
type Config struct {
	// InviteTTL is how long an org invite secret stays valid. Default 24h
	// (API.md §5).
	InviteTTL time.Duration
	// Now returns the current time. Default time.Now.
	Now func() time.Time
	// Logger receives what goes wrong after a change was made (a rename
	// whose hostnames could not be moved). Default slog.Default().
	Logger *slog.Logger
}

// Service manages users, organizations and secrets.
type Service struct {
	cfg    Config
	store  Store
	box    Sealer
	routes Routes
	log    *slog.Logger
}

// New returns the service. routes may be nil: renamed orgs' apps then move
// to their new hostnames at their next deploy.
func New(cfg Config, st Store, box Sealer, routes Routes) *Service {
	if cfg.InviteTTL == 0 {
		cfg.InviteTTL = 24 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{cfg: cfg, store: st, box: box, routes: routes, log: cfg.Logger.With("component", "accounts")}
}

// checkOrg refuses a user acting on another org's names (KindForbidden),
// as auth.Principal.CheckOrg does in the API: checked here too so that no
// caller can forget it.
func checkOrg(u hangar.User, org string) error {
	if u.Org != org || org == "" {
		return hangar.Errorf(hangar.KindForbidden, "you are not a member of organization %s", org)
	}
	return nil
}

func hashSecret(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// newInviteSecret returns a random, single-use invite secret.
func newInviteSecret() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return "hgi_" + base64.RawURLEncoding.EncodeToString(b)
}
