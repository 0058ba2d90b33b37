package store

import (
	"github.com/hangar-oss/hangar/internal/accounts"
	"github.com/hangar-oss/hangar/internal/auth"
)

// The interfaces of the metadata database that the domain packages declare.
var (
	_ auth.KeyStore       = (*DB)(nil)
	_ auth.LoginStore     = (*DB)(nil)
	_ accounts.LoginStore = (*DB)(nil)
)
