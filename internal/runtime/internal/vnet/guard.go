package vnet

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// A guard is an nftables table per executor that rejects what the executor
// sends to the host or through it, except replies on connections the host
// opened (the router's) and new connections to its forwards. Without it an
// executor reaches every host service that listens on a wildcard address
// (0.0.0.0:22, a database on *:5432, Hangar's own port) through its
// gateway, since the host accepts packets for any of its addresses on any
// interface. Forwards alone (SO_BINDTODEVICE) cannot prevent that.

// guardRules returns the nft script that (re)creates the guard of namespace
// ns, whose gateway is gateway and whose forwards listen on ports.
func guardRules(ns, gateway string, ports []int) string {
	dev, table := HostIf(ns), HostIf(ns)
	var b strings.Builder
	// Declaring then deleting makes the script idempotent.
	fmt.Fprintf(&b, "table inet %s\ndelete table inet %s\ntable inet %s {\n", table, table, table)
	fmt.Fprintf(&b, "\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n")
	fmt.Fprintf(&b, "\t\tiifname %q ct state established,related accept\n", dev)
	if len(ports) > 0 {
		ps := make([]string, len(ports))
		for i, p := range ports {
			ps[i] = fmt.Sprint(p)
		}
		fmt.Fprintf(&b, "\t\tiifname %q ip daddr %s tcp dport { %s } accept\n", dev, gateway, strings.Join(ps, ", "))
	}
	// Reject rather than drop, so that the app fails at once instead of
	// waiting for a timeout.
	reject := fmt.Sprintf("\t\tiifname %q meta l4proto tcp reject with tcp reset\n\t\tiifname %q reject\n", dev, dev)
	fmt.Fprintf(&b, "%s\t}\n", reject)
	fmt.Fprintf(&b, "\tchain forward {\n\t\ttype filter hook forward priority 0; policy accept;\n%s\t}\n}\n", reject)
	return b.String()
}

// NFT runs nft with a script on stdin.
type NFT func(ctx context.Context, script string) error

// ExecNFT returns the NFT that runs the nft binary at path.
func ExecNFT(path string) NFT {
	return func(ctx context.Context, script string) error {
		var stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, path, "-f", "-")
		cmd.Stdin, cmd.Stderr = strings.NewReader(script), &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("nft: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
		}
		return nil
	}
}

// Guard installs the guard of namespace ns; see guardRules.
func Guard(ctx context.Context, nft NFT, ns, gateway string, ports []int) error {
	if err := nft(ctx, guardRules(ns, gateway, ports)); err != nil {
		return fmt.Errorf("guard executor network: %w", err)
	}
	return nil
}

// Unguard removes the guard of namespace ns; one already gone is fine.
func Unguard(ctx context.Context, nft NFT, ns string) error {
	table := HostIf(ns)
	if err := nft(ctx, fmt.Sprintf("table inet %s\ndelete table inet %s\n", table, table)); err != nil {
		return fmt.Errorf("remove executor network guard: %w", err)
	}
	return nil
}
