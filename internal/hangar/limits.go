package hangar

// OrgLimits bounds what one organization may hold, so that no tenant can
// take the host's memory, processes or disk from the others. A field ≤ 0
// means no limit.
type OrgLimits struct {
	// Apps bounds its registered applications.
	Apps int
	// DBInstances bounds its managed database instances (each runs a
	// PostgreSQL server here); linked instances are not counted.
	DBInstances int
	// Executors bounds the sum of its applications' minimum executors:
	// what it keeps running when idle.
	Executors int
}

// LimitError is the KindForbidden error of an org at its limit of what:
// "limit reached: organization acme may have at most 20 applications".
func LimitError(org string, limit int, what, hint string) *Error {
	return Errorf(KindForbidden, "limit reached: organization %s may have at most %d %s; %s, or ask the operator to raise the limit", org, limit, what, hint)
}
