//go:build !linux

package pgcluster

import (
	"context"
	"errors"
	"net"
)

func dialInNetns(context.Context, int, string) (net.Conn, error) { return nil, errors.ErrUnsupported }
