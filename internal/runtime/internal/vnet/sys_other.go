//go:build !linux

package vnet

import (
	"context"
	"errors"
	"net"
	"net/netip"
)

func lockHost(string) (func(), error) { return nil, errors.ErrUnsupported }

func killPID(int) error { return errors.ErrUnsupported }

func listenDevice(context.Context, string, string) (net.Listener, error) {
	return nil, errors.ErrUnsupported
}

func listenPacketDevice(context.Context, string, string) (net.PacketConn, error) {
	return nil, errors.ErrUnsupported
}

func setSysctl(string, string) error { return errors.ErrUnsupported }

func forwarding(string) (bool, error) { return false, errors.ErrUnsupported }

func uplinks() ([]string, error) { return nil, errors.ErrUnsupported }

func hostPrefixes() ([]netip.Prefix, error) { return nil, errors.ErrUnsupported }

func createNS(string) error { return errors.ErrUnsupported }

func removeNS(string) error { return errors.ErrUnsupported }

func nsPIDs(string) ([]int, error) { return nil, errors.ErrUnsupported }

func addVeth(string, slot) error { return errors.ErrUnsupported }

func configure(string, slot) error { return errors.ErrUnsupported }

func removeLink(string) error { return errors.ErrUnsupported }
