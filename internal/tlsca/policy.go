package tlsca

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
)

// HostPolicy decides whether a certificate may be served for host, the
// client's SNI name lower-cased without a trailing dot: nil if it may. It
// has the shape of certmagic's on-demand DecisionFunc, so that every
// certificate source asks the same question before it mints, fetches or
// caches anything.
type HostPolicy func(ctx context.Context, host string) error

// errUnknownHost refuses a name that is neither the API host nor an app's.
var errUnknownHost = errors.New("no such host")

// AppHosts returns the policy of a Hangar server on domain (host[:port]):
// the domain's host itself, and <label>.<host> when appExists(ctx, label)
// reports an app whose host label (<org>-<app>) is label. Any other name,
// including deeper ones like a.b.<host>, is refused, so an attacker's
// made-up names cost no certificate and no cache entry. An error of
// appExists refuses the name too.
func AppHosts(domain string, appExists func(ctx context.Context, label string) (bool, error)) HostPolicy {
	apiHost := normalizeHost(domain)
	if h, _, err := net.SplitHostPort(apiHost); err == nil {
		apiHost = h
	}
	apiHost = strings.Trim(apiHost, "[]")
	return func(ctx context.Context, host string) error {
		host = normalizeHost(host)
		if apiHost == "" {
			return errUnknownHost
		}
		if host == apiHost {
			return nil
		}
		label, ok := strings.CutSuffix(host, "."+apiHost)
		if !ok || label == "" || strings.Contains(label, ".") {
			return fmt.Errorf("%w: %s", errUnknownHost, host)
		}
		exists, err := appExists(ctx, label)
		if err != nil {
			return fmt.Errorf("look up app host %s: %w", host, err)
		}
		if !exists {
			return fmt.Errorf("%w: %s", errUnknownHost, host)
		}
		return nil
	}
}
