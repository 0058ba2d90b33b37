//go:build !linux

package vnet

import (
	"context"
	"errors"
	"net"
)

func lockHost(string) (func(), error) { return nil, errors.ErrUnsupported }

func killPID(int) error { return errors.ErrUnsupported }

func listenDevice(context.Context, string, string) (net.Listener, error) {
	return nil, errors.ErrUnsupported
}
