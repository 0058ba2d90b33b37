package accounts

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// Secret limits. Secrets become environment variables of every executor,
// whose environment and arguments together must stay under the kernel's
// ARG_MAX (2 MiB by default).
const (
	MaxSecretNameLen   = 128
	MaxSecretValueLen  = 32 << 10
	MaxSecretsPerApp   = 100
	MaxSecretsTotalLen = 512 << 10
)

var secretNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ValidateSecretName checks a secret's name: an environment variable name
// that Hangar does not set itself. Reserved: DBOS_* (and so DBOS__*), the
// executor contract (DBOS_DATABASE_URL, DBOS_APP_HOSTNAME, DBOS__VMID, …);
// PG*, which libpq and the SDKs read to reach the database (Hangar sets
// PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE); PATH and HOME. The check
// ignores case, since a lowercase twin would only confuse.
func ValidateSecretName(name string) error {
	switch {
	case name == "":
		return hangar.Errorf(hangar.KindInvalid, "secret name is empty")
	case len(name) > MaxSecretNameLen:
		return hangar.Errorf(hangar.KindInvalid, "secret name %.40s… is too long: at most %d characters", name, MaxSecretNameLen)
	case !secretNameRE.MatchString(name):
		return hangar.Errorf(hangar.KindInvalid, "invalid secret name %q: it becomes an environment variable, so use letters, digits and _, not starting with a digit", name)
	}
	up := strings.ToUpper(name)
	if strings.HasPrefix(up, "DBOS_") || strings.HasPrefix(up, "PG") || up == "PATH" || up == "HOME" {
		return hangar.Errorf(hangar.KindInvalid, "secret name %s is reserved: Hangar sets DBOS_* variables (DBOS_DATABASE_URL, DBOS_APP_HOSTNAME, DBOS__VMID, …), PG* database variables, PATH and HOME in every executor itself", name)
	}
	return nil
}

// associatedData binds a sealed value to its app and name, so that a
// ciphertext copied to another row or app does not open.
func associatedData(appID, name string) []byte {
	return []byte("hangar-secret\x00" + appID + "\x00" + name)
}

// PutSecret creates or replaces the secret name of org's app. The value is
// sealed before it is stored and is never logged; executors get it at the
// app's next deploy. Errors: KindForbidden for another org, KindNotFound for
// an unknown app, KindInvalid for a bad name or too large a value.
func (s *Service) PutSecret(ctx context.Context, u hangar.User, org, app, name, value string) error {
	if err := checkOrg(u, org); err != nil {
		return err
	}
	if err := ValidateSecretName(name); err != nil {
		return err
	}
	if len(value) > MaxSecretValueLen {
		return hangar.Errorf(hangar.KindInvalid, "the value of secret %s is %d bytes: at most %d are allowed", name, len(value), MaxSecretValueLen)
	}
	a, err := s.store.App(ctx, org, app)
	if err != nil {
		return err
	}
	existing, err := s.store.SealedSecrets(ctx, a.ID)
	if err != nil {
		return err
	}
	total := len(value)
	for n, v := range existing {
		if n != name {
			total += len(v)
		}
	}
	_, replaces := existing[name]
	if !replaces && len(existing) >= MaxSecretsPerApp {
		return hangar.Errorf(hangar.KindInvalid, "application %s has %d secrets already, the most allowed: delete one first", app, len(existing))
	}
	if total > MaxSecretsTotalLen {
		return hangar.Errorf(hangar.KindInvalid, "the secrets of application %s would total %d bytes: at most %d are allowed", app, total, MaxSecretsTotalLen)
	}
	return s.store.PutSecret(ctx, a.ID, name, s.box.Seal([]byte(value), associatedData(a.ID, name)), s.cfg.Now())
}

// SecretNames returns the names (never the values) of the secrets of org's
// app, sorted.
func (s *Service) SecretNames(ctx context.Context, u hangar.User, org, app string) ([]string, error) {
	if err := checkOrg(u, org); err != nil {
		return nil, err
	}
	a, err := s.store.App(ctx, org, app)
	if err != nil {
		return nil, err
	}
	return s.store.SecretNames(ctx, a.ID)
}

// DeleteSecret deletes the secret name of org's app; KindNotFound when it
// has none of that name.
func (s *Service) DeleteSecret(ctx context.Context, u hangar.User, org, app, name string) error {
	if err := checkOrg(u, org); err != nil {
		return err
	}
	a, err := s.store.App(ctx, org, app)
	if err != nil {
		return err
	}
	ok, err := s.store.DeleteSecret(ctx, a.ID, name)
	if err != nil {
		return err
	}
	if !ok {
		return hangar.Errorf(hangar.KindNotFound, "secret %s not found for application %s", name, app)
	}
	return nil
}

// Secrets returns the app's secrets in clear, by name, for its executors'
// environment. It is for the deploy pipeline only, never for the API.
func (s *Service) Secrets(ctx context.Context, appID string) (map[string]string, error) {
	return NewOpener(s.store, s.box).Secrets(ctx, appID)
}

// SealedSecretStore reads an app's sealed secrets; store.DB satisfies it.
type SealedSecretStore interface {
	SealedSecrets(ctx context.Context, appID string) (map[string][]byte, error)
}

// Opener opens apps' secrets for their executors' environment. It needs only
// the store and the box, so a composition root can give it to the deploy
// pipeline before the Service (which needs the pipeline) exists.
type Opener struct {
	store SealedSecretStore
	box   Sealer
}

// NewOpener returns an Opener.
func NewOpener(st SealedSecretStore, box Sealer) *Opener { return &Opener{store: st, box: box} }

// Secrets returns the app's secrets in clear, by name. A value that does not
// open (the key file was replaced, or the row was tampered with) is an
// internal error naming the secret, never its value.
func (o *Opener) Secrets(ctx context.Context, appID string) (map[string]string, error) {
	sealed, err := o.store.SealedSecrets(ctx, appID)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(sealed))
	for name, v := range sealed {
		pt, err := o.box.OpenSealed(v, associatedData(appID, name))
		if err != nil {
			return nil, fmt.Errorf("open secret %s of app %s (was the secrets key file replaced?): %w", name, appID, err)
		}
		out[name] = string(pt)
	}
	return out, nil
}
