//go:build !linux

package relay

import (
	"context"
	"errors"
	"net"
)

// InThread needs Linux.
func InThread(func() error) error { return errors.ErrUnsupported }

// DialIn needs Linux.
func DialIn(context.Context, int, string) (net.Conn, error) { return nil, errors.ErrUnsupported }
