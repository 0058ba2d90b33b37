package config

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDefaults(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"HANGAR_DATA_DIR":         "/srv/hangar",
		"HANGAR_DOMAIN":           "apps.example.com",
		"HANGAR_HEALTH_TIMEOUT":   "30s",
		"HANGAR_PG_SETTINGS":      "fsync=off, max_connections=300",
		"HANGAR_METRICS_LISTEN":   "127.0.0.1:9464",
		"HANGAR_EGRESS_ALLOW":     "10.1.0.0/16, 192.168.7.0/24",
		"HANGAR_EGRESS_DENY":      "203.0.113.0/24",
		"HANGAR_IDLE_TIMEOUT":     "75s",
		"HANGAR_MAX_CONNS_PER_IP": "-1",
	}
	c := Defaults(func(k string) string { return env[k] })
	want := Config{
		DataDir: "/srv/hangar", Listen: "127.0.0.1:8443", MetricsListen: "127.0.0.1:9464", Domain: "apps.example.com",
		Driver: "sandbox", K8sNamespace: "hangar", NetworkPrefix: "hg", Subnet: "10.213.0.0/16", HealthTimeout: 30 * time.Second,
		PGSettings:  map[string]string{"fsync": "off", "max_connections": "300"},
		EgressAllow: []string{"10.1.0.0/16", "192.168.7.0/24"}, EgressDeny: []string{"203.0.113.0/24"},

		IdleTimeout: 75 * time.Second, ReadHeaderTimeout: 30 * time.Second, BodyReadTimeout: 30 * time.Second,
		MaxHeaderBytes: 64 << 10, MaxConnsPerIP: -1, MaxBodyBytes: 1 << 20, ShutdownTimeout: 30 * time.Second,
		ReplicaTimeout: 10 * time.Second,
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("Defaults mismatch (-want +got):\n%s", diff)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		mod     func(*Config)
		wantErr bool
	}{
		"OK":           {func(*Config) {}, false},
		"BadListen":    {func(c *Config) { c.Listen = "8443" }, true},
		"Metrics":      {func(c *Config) { c.MetricsListen = "127.0.0.1:9464" }, false},
		"BadMetrics":   {func(c *Config) { c.MetricsListen = "9464" }, true},
		"BadDomain":    {func(c *Config) { c.Domain = "https://x/" }, true},
		"NoDataDir":    {func(c *Config) { c.DataDir = "" }, true},
		"ZeroDeadline": {func(c *Config) { c.HealthTimeout = 0 }, true},
		"BadDriver":    {func(c *Config) { c.Driver = "docker" }, true},
		"Egress": {func(c *Config) {
			c.EgressAllow, c.EgressDeny, c.EgressResolvers = []string{"10.1.0.0/16"}, []string{"0.0.0.0/0"}, []string{"127.0.0.1:5353", "::1"}
		}, false},
		"EgressNotAPrefix": {func(c *Config) { c.EgressAllow = []string{"10.1.0.0"} }, true},
		"EgressIPv6":       {func(c *Config) { c.EgressDeny = []string{"fd00::/8"} }, true},
		"BadResolver":      {func(c *Config) { c.EgressResolvers = []string{"dns.google"} }, true},
		"TLSFiles":         {func(c *Config) { c.TLSCert, c.TLSKey = "c.pem", "k.pem" }, false},
		"TLSCertOnly":      {func(c *Config) { c.TLSCert = "c.pem" }, true},
		"ACME":             {func(c *Config) { c.ACMEEmail, c.ACMEHTTPListen = "ops@example.com", ":80" }, false},
		"ACMEAndFiles":     {func(c *Config) { c.ACMEEmail, c.TLSCert, c.TLSKey = "ops@example.com", "c.pem", "k.pem" }, true},
		"ACMEHTTPOnly":     {func(c *Config) { c.ACMEHTTPListen = ":80" }, true},
		"BadACMECA":        {func(c *Config) { c.ACMECA = "http://ca.example/dir" }, true},
		"ZeroIdle":         {func(c *Config) { c.IdleTimeout = 0 }, true},
		"ZeroBodyCap":      {func(c *Config) { c.MaxBodyBytes = 0 }, true},
		"Replica":          {func(c *Config) { c.ReplicaID, c.DatabaseURL = "a", "postgres://db/hangar" }, false},
		"ReplicaNoDB":      {func(c *Config) { c.ReplicaID = "a" }, true},
		"ReplicaTimeout":   {func(c *Config) { c.ReplicaTimeout = time.Millisecond }, true},
	} {
		t.Run(name, func(t *testing.T) {
			c := Defaults(func(string) string { return "" })
			c.DataDir = "/tmp/x"
			tc.mod(&c)
			if err := c.Validate(); (err != nil) != tc.wantErr {
				t.Errorf("Validate() = %v, wantErr %v", err, tc.wantErr)
			}
		})
	}
}
