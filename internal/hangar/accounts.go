package hangar

import "time"

// Account is a user as the operator sees it.
type Account struct {
	User
	// Admin reports whether the user is its org's admin.
	Admin bool
	// Disabled reports whether the operator disabled the user.
	Disabled bool
	// Pending marks a sign-up account that has not registered yet (no name).
	Pending bool
	// LastSeen is when one of its refresh tokens was last used (or created).
	LastSeen time.Time
}

// Login is what a password sign-in needs to know of a user.
type Login struct {
	User
	// PasswordHash is the user's password hash; empty when it has none.
	PasswordHash string
	// Disabled reports whether the operator disabled the user.
	Disabled bool
}

// DeviceState is where a device authorization (RFC 8628) stands when its
// device polls for a token.
type DeviceState int

// Device authorization states, as a poll finds them.
const (
	// DevicePending: nobody approved or denied the code yet.
	DevicePending DeviceState = iota
	// DeviceSlowDown: the device polled before its interval was up; the
	// interval grew by 5 seconds (RFC 8628 §3.5).
	DeviceSlowDown
	// DeviceExpired: the code expired before it was approved.
	DeviceExpired
	// DeviceDenied: the user denied the code, or the approving user has
	// been disabled since.
	DeviceDenied
	// DeviceApproved: approved, and now redeemed: the refresh token the
	// poll brought was stored for the approving user.
	DeviceApproved
	// DeviceInvalid: no such code, or one redeemed already.
	DeviceInvalid
)

// DeviceCode is a new device authorization.
type DeviceCode struct {
	// DeviceCode is the secret the device polls with; only its hash is
	// stored.
	DeviceCode string
	// UserCode is what the user confirms on the approval page, normalized
	// (upper case, no dash).
	UserCode string
	// Interval is the polling interval the device was told.
	Interval time.Duration
	// CreatedAt and ExpiresAt bound the code's life.
	CreatedAt, ExpiresAt time.Time
}
