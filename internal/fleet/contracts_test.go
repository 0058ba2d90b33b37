package fleet_test

import (
	"github.com/hangar-oss/hangar/internal/accounts"
	"github.com/hangar-oss/hangar/internal/deploy"
	"github.com/hangar-oss/hangar/internal/fleet"
	"github.com/hangar-oss/hangar/internal/logs"
	"github.com/hangar-oss/hangar/internal/metrics"
	"github.com/hangar-oss/hangar/internal/router"
	"github.com/hangar-oss/hangar/internal/store"
	"github.com/hangar-oss/hangar/internal/sysdb"
)

// The implementations of the interfaces the fleet declares, and of those
// its consumers declare. They live in packages that may not import fleet
// (deptest), so the assertions are here.
var (
	_ fleet.Store     = (*store.DB)(nil)
	_ fleet.Workflows = (*sysdb.DB)(nil)
	_ fleet.Router    = (*router.Router)(nil)
	_ fleet.LogSink   = (*logs.Store)(nil)
	_ fleet.Specs     = (*deploy.Specs)(nil)
	_ fleet.Observer  = (*metrics.Metrics)(nil)

	_ deploy.Fleet         = (*fleet.Fleet)(nil)
	_ deploy.VersionRunner = (*fleet.Fleet)(nil)
	_ accounts.Routes      = (*fleet.Fleet)(nil)
)
