package databases_test

import (
	"github.com/hangar-oss/hangar/internal/databases"
	"github.com/hangar-oss/hangar/internal/dbinstance"
	"github.com/hangar-oss/hangar/internal/store"
)

// The implementations of the interfaces databases declares; they live in
// leaves that may not import it (deptest).
var (
	_ databases.Store     = (*store.DB)(nil)
	_ databases.Instances = (*dbinstance.Manager)(nil)
)
