package dbinstance_test

import (
	"github.com/hangar-oss/hangar/internal/dbinstance"
	"github.com/hangar-oss/hangar/internal/sysdb"
)

var _ sysdb.Conns = (*dbinstance.Manager)(nil)
