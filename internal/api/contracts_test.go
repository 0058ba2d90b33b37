package api

import (
	"github.com/hangar-oss/hangar/internal/accounts"
	"github.com/hangar-oss/hangar/internal/archive"
	"github.com/hangar-oss/hangar/internal/auth"
	"github.com/hangar-oss/hangar/internal/databases"
	"github.com/hangar-oss/hangar/internal/deploy"
	"github.com/hangar-oss/hangar/internal/fleet"
	"github.com/hangar-oss/hangar/internal/store"
)

// The implementations of the interfaces the handlers declare. They live in
// packages that may not import api (deptest), so the assertions are here.
var (
	_ Apps      = (*deploy.Service)(nil)
	_ Reads     = (*store.DB)(nil)
	_ Archives  = (*archive.Store)(nil)
	_ Tokens    = (*auth.Issuer)(nil)
	_ Users     = (*store.DB)(nil)
	_ Accounts  = (*accounts.Service)(nil)
	_ Logins    = (*auth.Logins)(nil)
	_ Passwords = (*accounts.SignIn)(nil)
	_ Workflows = (*deploy.WorkflowAdmin)(nil)
	_ Executors = (*fleet.Fleet)(nil)
	_ Databases = (*databases.Service)(nil)
)
