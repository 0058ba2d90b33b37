package deploy_test

import (
	"github.com/hangar-oss/hangar/internal/archive"
	"github.com/hangar-oss/hangar/internal/dbinstance"
	"github.com/hangar-oss/hangar/internal/deploy"
	"github.com/hangar-oss/hangar/internal/logs"
	"github.com/hangar-oss/hangar/internal/store"
	"github.com/hangar-oss/hangar/internal/sysdb"
)

// The implementations of the interfaces deploy declares; they live in
// leaves that may not import it (deptest).
var (
	_ deploy.Store     = (*store.DB)(nil)
	_ deploy.Archives  = (*archive.Store)(nil)
	_ archive.Keeper   = (*store.DB)(nil)
	_ deploy.Instances = (*dbinstance.Manager)(nil)
	_ deploy.LogSink   = (*logs.Store)(nil)
	_ deploy.AppLookup = (*store.DB)(nil)
	_ deploy.SysDB     = (*sysdb.DB)(nil)
)
