package deploy

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/hangar-oss/hangar/internal/build"
	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/runtime"
)

// SpecsConfig configures Specs.
type SpecsConfig struct {
	// DataDir holds the app trees (DataDir/apps/<app ID>). Required.
	DataDir string
	// Domain is the public domain apps are served under. Required.
	Domain string
	// Images says that executors run on images (the sandbox driver with
	// an image cache), where the app sees its folder at runtime.AppDir.
	// Default false: at its path on the host.
	Images bool
	// Secrets supplies each app's secrets, read whenever an executor starts
	// and set as its environment variables: a change reaches a running app
	// at its next deploy (or in an executor the supervisor starts later).
	// Default none.
	Secrets Secrets
	// DBTLS, when set, has executors reach managed instances over TLS,
	// verified. Default nil: at their gateway, without TLS (the relay to
	// the instance never leaves the host).
	DBTLS *DBTLS
}

// DBTLS is how executors reach managed instances over TLS: at Host (which
// their driver resolves to their gateway, where the database forward
// relays the PostgreSQL protocol as it is to the instance's TLS listener)
// with sslmode=verify-full against the CA at RootCert. The kubernetes
// driver, whose forwards cross the network, uses it (docs/kubernetes.md).
type DBTLS struct {
	// Host is the name the instances' certificate names (--db-host).
	Host string
	// RootCert is the path of the CA certificate inside the executor.
	RootCert string
}

// Specs describes the executors of the versions the pipeline built: their
// command, environment (API.md §2) and database relay. The fleet asks it
// at each start; it satisfies fleet.Specs.
type Specs struct {
	cfg SpecsConfig
}

// NewSpecs returns the Specs of the versions under cfg.DataDir.
func NewSpecs(cfg SpecsConfig) *Specs { return &Specs{cfg: cfg} }

// dbProxyPort is the port an executor reaches its database instance at, on
// its gateway address.
const dbProxyPort = 5432

// Spec returns how to start executor id of version for a, with its
// database on inst, on network netw.
func (sp *Specs) Spec(ctx context.Context, a hangar.App, inst hangar.DBInstance, version, appVersion, id string, netw runtime.Network) (runtime.Spec, error) {
	dir := versionDir(sp.cfg.DataDir, a.ID, version)
	cfg, err := build.LoadConfig(dir)
	if err != nil {
		return runtime.Spec{}, err
	}
	var secrets map[string]string
	if sp.cfg.Secrets != nil {
		if secrets, err = sp.cfg.Secrets.Secrets(ctx, a.ID); err != nil {
			return runtime.Spec{}, fmt.Errorf("open secrets: %w", err)
		}
	}
	home := dir
	if sp.cfg.Images {
		home = runtime.AppDir
	}
	env := append(baseEnv(home),
		"DBOS__VMID="+id,
		"DBOS__APPVERSION="+appVersion,
		"DBOS__APPID="+a.ID,
		"DBOS_APP_HOSTNAME=https://"+a.Hostname(sp.cfg.Domain)+"/",
		"NODE_ENV=production",
	)
	// Linked instances keep the gateway: their certificate, if any, names
	// their own host.
	dbHost, rootCert := netw.Gateway, ""
	if t := sp.cfg.DBTLS; t != nil && !inst.IsLinked {
		dbHost, rootCert = t.Host, t.RootCert
	}
	env = append(env, dbEnv(a, dbHost, dbProxyPort, rootCert)...)
	if cloudModeWorks(dir, a.Language) {
		env = append(env, "DBOS__CLOUD=true")
	}
	for k, v := range cfg.Env {
		if _, ok := secrets[k]; !ok {
			env = append(env, k+"="+v)
		}
	}
	// Secret names never collide with the variables above: accounts
	// refuses DBOS_*, PG*, PATH and HOME. They win over the config's env.
	for _, k := range slices.Sorted(maps.Keys(secrets)) {
		env = append(env, k+"="+secrets[k])
	}
	return runtime.Spec{
		ID: id, Org: a.Org, App: a.Name, Version: version, Dir: dir,
		Command:   []string{"/bin/sh", "-c", startScript(cfg.Runtime.Start)},
		Env:       env,
		Port:      a.Language.Port(),
		MemoryMiB: a.MemoryMiB,
		Forwards:  []runtime.Forward{{ListenPort: dbProxyPort, Target: DBForwardTarget(inst)}},
		Image:     runtime.Image{AppID: a.ID, Layer: build.SetupLayer(dir, cfg)},
	}, nil
}

// Stored reports whether version's files are still there.
func (sp *Specs) Stored(appID, version string) bool {
	_, err := os.Stat(versionDir(sp.cfg.DataDir, appID, version))
	return err == nil
}

// baseEnv is the environment every executor starts from.
func baseEnv(home string) []string {
	return []string{
		"PATH=/opt/hangar/node/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + home,
		"LANG=C.UTF-8",
		// Node brings its own CA list: make it trust the system's too,
		// where the operator's own CAs are.
		"NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt",
	}
}

// cloudModeWorks reports whether the app can run with DBOS__CLOUD=true. The
// TypeScript SDK since 5.x loads @dbos-inc/dbos-enterprise (Conductor) at
// launch in cloud mode and fails without it, so Hangar leaves cloud mode off
// for such apps; they still read DBOS__APPVERSION and DBOS__VMID.
func cloudModeWorks(dir string, lang hangar.Language) bool {
	if lang != hangar.LanguageNode {
		return true
	}
	nm := filepath.Join(dir, "node_modules", "@dbos-inc")
	if _, err := os.Stat(filepath.Join(nm, "dbos-sdk", "dist", "src", "enterprise.js")); err != nil {
		return true
	}
	_, err := os.Stat(filepath.Join(nm, "dbos-enterprise", "package.json"))
	return err == nil
}

// startScript runs the start commands in order in one shell; the last one
// replaces the shell so that signals reach the app directly.
func startScript(cmds []string) string {
	if len(cmds) == 0 {
		return "exit 1"
	}
	last := len(cmds) - 1
	parts := append([]string{}, cmds[:last]...)
	parts = append(parts, "exec "+cmds[last])
	return strings.Join(parts, " && ")
}

// DBForwardTarget is the address executors' database relay forwards to for
// inst: the linked server itself, or a managed instance on loopback.
func DBForwardTarget(inst hangar.DBInstance) string {
	if inst.IsLinked {
		return net.JoinHostPort(inst.Host, strconv.Itoa(inst.Port))
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(inst.Port))
}
