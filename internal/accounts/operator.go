package accounts

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/hangar-oss/hangar/internal/auth"
	"github.com/hangar-oss/hangar/internal/hangar"
)

// OperatorStore is what the operator's user commands change; *store.DB
// satisfies it.
type OperatorStore interface {
	// CreateUser creates a user in an org, creating the org (with the
	// user as admin) when missing. KindConflict.
	CreateUser(ctx context.Context, u hangar.User) error
	// CreateUserWithOrg creates a user and an org of its own.
	// KindConflict.
	CreateUserWithOrg(ctx context.Context, u hangar.User) error
	// CreateSignup creates an account without a name.
	CreateSignup(ctx context.Context, id string) error
	// Accounts lists every account.
	Accounts(ctx context.Context) ([]hangar.Account, error)
	// UserByName returns a user, disabled or not. KindNotFound.
	UserByName(ctx context.Context, name string) (hangar.User, error)
	// SetUserDisabled disables or enables a user. KindNotFound.
	SetUserDisabled(ctx context.Context, name string, disabled bool, now time.Time) error
	// DeleteUser deletes a user and its tokens. KindNotFound,
	// KindConflict.
	DeleteUser(ctx context.Context, name string) error
	// SetPasswordHash sets or (with "") removes a password hash.
	// KindNotFound.
	SetPasswordHash(ctx context.Context, name, hash string) error
	// AddRefreshToken stores a refresh token's hash for an account.
	AddRefreshToken(ctx context.Context, id, userID, token string) error
}

// OperatorConfig configures Operator.
type OperatorConfig struct {
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

// Operator runs the operator's user commands (hangar users …): it creates
// users, sign-up accounts and refresh tokens, sets passwords, disables and
// deletes users. Only the operator calls it; cmd/hangar only reads its
// input and prints its results.
type Operator struct {
	now   func() time.Time
	store OperatorStore
}

// NewOperator returns the operator's commands over st.
func NewOperator(cfg OperatorConfig, st OperatorStore) *Operator {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Operator{now: cfg.Now, store: st}
}

// NewUser is a user the operator creates.
type NewUser struct {
	Name, Email string
	// Org is the organization the user joins, created (with the user as
	// admin) when it does not exist; "" gives the user an org of its own,
	// named after it.
	Org string
	// Password is the user's password; "" for none.
	Password string
}

// Validate checks n's names and password. KindInvalid.
func (n NewUser) Validate() error {
	if err := ValidateName(n.Name); err != nil {
		return err
	}
	if n.Password != "" {
		if err := auth.ValidatePassword(n.Password); err != nil {
			return err
		}
	}
	if n.Org != "" {
		return ValidateName(n.Org)
	}
	return nil
}

// AddUser creates the user n and returns it with a refresh token to log in
// with. Errors: KindInvalid, KindConflict (name taken, or an org of its
// name exists).
func (o *Operator) AddUser(ctx context.Context, n NewUser) (hangar.User, string, error) {
	if err := n.Validate(); err != nil {
		return hangar.User{}, "", err
	}
	var hash string
	if n.Password != "" {
		var err error
		if hash, err = auth.HashPassword(n.Password); err != nil {
			return hangar.User{}, "", err
		}
	}
	u := hangar.User{ID: uuid.NewString(), Name: n.Name, Email: n.Email, Org: n.Org}
	var err error
	if n.Org == "" {
		u.Org = n.Name
		err = o.store.CreateUserWithOrg(ctx, u)
	} else {
		err = o.store.CreateUser(ctx, u)
	}
	if err != nil {
		return hangar.User{}, "", err
	}
	if hash != "" {
		if err := o.store.SetPasswordHash(ctx, u.Name, hash); err != nil {
			return hangar.User{}, "", err
		}
	}
	tok, err := o.addRefreshToken(ctx, u.ID)
	return u, tok, err
}

// AddSignup creates an account whose holder picks its username when it
// registers, and returns its ID and a refresh token to log in with.
func (o *Operator) AddSignup(ctx context.Context) (string, string, error) {
	id := uuid.NewString()
	if err := o.store.CreateSignup(ctx, id); err != nil {
		return "", "", err
	}
	tok, err := o.addRefreshToken(ctx, id)
	return id, tok, err
}

// Accounts lists every account: registered users by name, then sign-up
// accounts by creation time.
func (o *Operator) Accounts(ctx context.Context) ([]hangar.Account, error) {
	return o.store.Accounts(ctx)
}

// NewToken returns the user name with a new refresh token. KindNotFound.
func (o *Operator) NewToken(ctx context.Context, name string) (hangar.User, string, error) {
	u, err := o.store.UserByName(ctx, name)
	if err != nil {
		return u, "", err
	}
	tok, err := o.addRefreshToken(ctx, u.ID)
	return u, tok, err
}

// SetPassword sets the password of the user name; "" removes it (the user
// signs in with a refresh token again). KindInvalid, KindNotFound.
func (o *Operator) SetPassword(ctx context.Context, name, password string) error {
	var hash string
	if password != "" {
		var err error
		if hash, err = auth.HashPassword(password); err != nil {
			return err
		}
	}
	return o.store.SetPasswordHash(ctx, name, hash)
}

// SetDisabled disables the user name (its requests get 401 and its refresh
// tokens are revoked) or enables it again. KindNotFound.
func (o *Operator) SetDisabled(ctx context.Context, name string, disabled bool) error {
	return o.store.SetUserDisabled(ctx, name, disabled, o.now())
}

// DeleteUser deletes the user (or sign-up account, by ID) name and its
// refresh tokens. KindNotFound; KindConflict for the last member of an
// org that still has apps or databases.
func (o *Operator) DeleteUser(ctx context.Context, name string) error {
	return o.store.DeleteUser(ctx, name)
}

// addRefreshToken creates a refresh token for the account id.
func (o *Operator) addRefreshToken(ctx context.Context, id string) (string, error) {
	tok := auth.NewRefreshToken()
	return tok, o.store.AddRefreshToken(ctx, uuid.NewString(), id, tok)
}
