package store

import (
	"testing"
	"time"

	"github.com/hangar-oss/hangar/internal/hangar"
)

func TestDB_DeviceCodes(t *testing.T) {
	t.Parallel()
	db := open(t)
	ctx := t.Context()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	mustOK(t, db.CreateUserWithOrg(ctx, hangar.User{ID: "u1", Name: "alice", Org: "alice"}))
	newCode := func(device, user string) {
		t.Helper()
		mustOK(t, db.CreateDeviceCode(ctx, hangar.DeviceCode{DeviceCode: device, UserCode: user, Interval: 5 * time.Second, CreatedAt: now, ExpiresAt: now.Add(15 * time.Minute)}))
	}
	redeem := func(device string, at time.Time, want hangar.DeviceState) hangar.User {
		t.Helper()
		st, u, err := db.RedeemDeviceCode(ctx, device, at, "rt-"+device+at.String(), "hgr_"+device+at.String())
		if err != nil || st != want {
			t.Fatalf("RedeemDeviceCode(%s) = %v, %v; want state %v", device, st, err, want)
		}
		return u
	}
	newCode("d1", "BCDFGHJK")
	wantKind(t, "same user code", db.CreateDeviceCode(ctx, hangar.DeviceCode{DeviceCode: "d2", UserCode: "BCDFGHJK", CreatedAt: now, ExpiresAt: now.Add(time.Minute)}), hangar.KindConflict, "in use")
	if r, err := db.PendingDeviceCode(ctx, "BCDFGHJK", now); err != nil || !r.ExpiresAt.Equal(now.Add(15*time.Minute)) {
		t.Errorf("PendingDeviceCode = %+v, %v", r, err)
	}
	redeem("nope", now, hangar.DeviceInvalid)
	redeem("d1", now, hangar.DevicePending)
	redeem("d1", now.Add(4*time.Second), hangar.DeviceSlowDown) // interval now 10 s
	redeem("d1", now.Add(15*time.Second), hangar.DevicePending)
	mustOK(t, db.DecideDeviceCode(ctx, "BCDFGHJK", "u1", true, now.Add(20*time.Second)))
	wantKind(t, "decided twice", db.DecideDeviceCode(ctx, "BCDFGHJK", "u1", false, now.Add(21*time.Second)), hangar.KindNotFound, "unknown, expired or already used")
	if u := redeem("d1", now.Add(30*time.Second), hangar.DeviceApproved); u.ID != "u1" || u.Name != "alice" {
		t.Errorf("redeemed for %+v, want alice", u)
	}
	redeem("d1", now.Add(60*time.Second), hangar.DeviceInvalid) // once only
	// The refresh token stored with the approval works.
	if u, err := db.UseRefreshToken(ctx, "hgr_d1"+now.Add(30*time.Second).String(), now.Add(time.Minute), time.Hour, time.Hour); err != nil || u.ID != "u1" {
		t.Errorf("UseRefreshToken = %+v, %v; want u1", u, err)
	}

	// An approver disabled before the device polls: denied.
	newCode("d3", "CDFGHJKL")
	mustOK(t, db.DecideDeviceCode(ctx, "CDFGHJKL", "u1", true, now))
	mustOK(t, db.SetUserDisabled(ctx, "alice", true, now))
	redeem("d3", now.Add(time.Second), hangar.DeviceDenied)
	if _, err := db.AccountByID(ctx, "u1"); hangar.KindOf(err) != hangar.KindUnauthorized {
		t.Errorf("AccountByID of a disabled user: %v, want unauthorized", err)
	}

	// Expired: not shown, not decidable, expired_token; and its user code
	// is free again once a new code is created after it expired.
	later := now.Add(16 * time.Minute)
	if _, err := db.PendingDeviceCode(ctx, "BCDFGHJK", later); hangar.KindOf(err) != hangar.KindNotFound {
		t.Errorf("PendingDeviceCode after expiry: %v", err)
	}
	newCode("d4", "DFGHJKLM")
	redeem("d4", later, hangar.DeviceExpired)
	mustOK(t, db.CreateDeviceCode(ctx, hangar.DeviceCode{DeviceCode: "d5", UserCode: "DFGHJKLM", CreatedAt: later, ExpiresAt: later.Add(time.Minute)}))
}
