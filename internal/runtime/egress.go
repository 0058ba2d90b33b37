package runtime

// Egress is the policy for what executors reach beyond the host, through
// NAT, and where their DNS queries go. Whatever it says, an executor never
// reaches the host's own addresses (only its relays and its resolver on its
// gateway), loopback, link-local addresses (cloud metadata among them),
// other executors or anything over IPv6 (executors have none). The zero
// value is the default policy: everything but DefaultEgressDeny.
type Egress struct {
	// Allow lists IPv4 prefixes ("10.1.0.0/16") executors may reach
	// although DefaultEgressDeny holds them. Default none.
	Allow []string
	// Deny lists IPv4 prefixes executors never reach, in addition to
	// DefaultEgressDeny; it wins over Allow, and "0.0.0.0/0" turns egress
	// off. Default none.
	Deny []string
	// Resolvers are the DNS servers ("ip" or "ip:port") that the resolver
	// on each executor's gateway forwards queries to. Default the
	// nameservers of the host's /etc/resolv.conf.
	Resolvers []string
	// MaxConnections caps the connections one executor has open beyond
	// the host at once: the host's connection tracking table and its
	// masquerading ports are shared by every tenant. Default 4096.
	MaxConnections int
}

// DefaultEgressDeny are the private ranges executors do not reach unless
// Egress.Allow names them: RFC 1918 and the shared address space of
// carrier-grade NAT (RFC 6598).
var DefaultEgressDeny = []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"}
