package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// slowDownStep is what each slow_down adds to a code's polling interval.
const slowDownStep = 5 * time.Second

// DeviceRequest is a pending device authorization as the approval page
// shows it.
type DeviceRequest struct {
	UserCode             string
	CreatedAt, ExpiresAt time.Time
}

// CreateDeviceCode stores a new device authorization, first deleting the
// expired ones. Errors: KindConflict when dc.UserCode is taken by a live
// code (the caller draws another).
func (db *DB) CreateDeviceCode(ctx context.Context, dc hangar.DeviceCode) error {
	if _, err := db.pool.Exec(ctx, "DELETE FROM device_codes WHERE expires_at <= $1", dc.CreatedAt); err != nil {
		return err
	}
	_, err := db.pool.Exec(ctx, `
		INSERT INTO device_codes (code_hash, user_code, created_at, expires_at, interval_s)
		VALUES ($1, $2, $3, $4, $5)`,
		hashToken(dc.DeviceCode), dc.UserCode, dc.CreatedAt, dc.ExpiresAt, int(dc.Interval/time.Second))
	if isUniqueViolation(err) {
		return hangar.Errorf(hangar.KindConflict, "user code in use")
	}
	return err
}

// errNoDeviceCode is what the approval page says of a code it cannot act on.
func errNoDeviceCode(userCode string) error {
	return hangar.Errorf(hangar.KindNotFound, "code %s is unknown, expired or already used: run dbos-cloud login again for a new one", userCode)
}

// PendingDeviceCode returns the authorization with userCode if it is
// pending and live at now. Errors: KindNotFound otherwise.
func (db *DB) PendingDeviceCode(ctx context.Context, userCode string, now time.Time) (DeviceRequest, error) {
	r := DeviceRequest{UserCode: userCode}
	err := db.pool.QueryRow(ctx, `
		SELECT created_at, expires_at FROM device_codes
		 WHERE user_code = $1 AND decision IS NULL AND expires_at > $2`, userCode, now).Scan(&r.CreatedAt, &r.ExpiresAt)
	return r, notFoundIf(err, errNoDeviceCode(userCode))
}

// DecideDeviceCode records that the account userID approved (or denied) the
// pending authorization with userCode. Errors: KindNotFound for a code that
// is unknown, expired or decided already.
func (db *DB) DecideDeviceCode(ctx context.Context, userCode, userID string, approve bool, now time.Time) error {
	decision := "denied"
	if approve {
		decision = "approved"
	}
	tag, err := db.pool.Exec(ctx, `
		UPDATE device_codes SET decision = $3, user_id = $4, decided_at = $2
		 WHERE user_code = $1 AND decision IS NULL AND expires_at > $2`, userCode, now, decision, userID)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return errNoDeviceCode(userCode)
	}
	return nil
}

// RedeemDeviceCode answers one poll of a device with deviceCode at now.
// When the code is approved it is marked used and, in the same
// transaction, refreshToken (with ID refreshID) is stored for the approving
// account, which is returned; a code is redeemed at most once. A sign-up
// account that has not registered yet comes back with its ID only.
func (db *DB) RedeemDeviceCode(ctx context.Context, deviceCode string, now time.Time, refreshID, refreshToken string) (hangar.DeviceState, hangar.User, error) {
	state := hangar.DeviceInvalid
	var u hangar.User
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var (
			hash             = hashToken(deviceCode)
			expires          time.Time
			polled, used     *time.Time
			interval         int
			userID, decision *string
		)
		err := tx.QueryRow(ctx, `
			SELECT expires_at, polled_at, used_at, interval_s, user_id, decision
			  FROM device_codes WHERE code_hash = $1 FOR UPDATE`, hash).
			Scan(&expires, &polled, &used, &interval, &userID, &decision)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && used != nil) {
			return nil // DeviceInvalid
		}
		if err != nil {
			return err
		}
		if !now.Before(expires) {
			state = hangar.DeviceExpired
			return nil
		}
		early := polled != nil && now.Sub(*polled) < time.Duration(interval)*time.Second
		if early {
			interval += int(slowDownStep / time.Second)
		}
		if _, err := tx.Exec(ctx, "UPDATE device_codes SET polled_at = $2, interval_s = $3 WHERE code_hash = $1", hash, now, interval); err != nil {
			return err
		}
		switch {
		case early:
			state = hangar.DeviceSlowDown
			return nil
		case decision == nil:
			state = hangar.DevicePending
			return nil
		case *decision == "denied" || userID == nil:
			state = hangar.DeviceDenied
			return nil
		}
		var disabled *time.Time
		u, disabled, err = scanUser(tx.QueryRow(ctx, "SELECT "+userCols+" FROM users WHERE id=$1", *userID))
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && disabled != nil) {
			state = hangar.DeviceDenied
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE device_codes SET used_at = $2 WHERE code_hash = $1", hash, now); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "INSERT INTO refresh_tokens (id, user_id, token_hash, created_at) VALUES ($1, $2, $3, $4)",
			refreshID, u.ID, hashToken(refreshToken), now); err != nil {
			return err
		}
		state = hangar.DeviceApproved
		return nil
	})
	if err != nil {
		return hangar.DeviceInvalid, hangar.User{}, err
	}
	if state != hangar.DeviceApproved {
		u = hangar.User{}
	}
	return state, u, nil
}

// AccountByID returns the account with id, registered or not (a sign-up
// account has no name or org yet): the user behind a signed-in approval
// page. Errors: KindUnauthorized for an account that is gone or disabled.
func (db *DB) AccountByID(ctx context.Context, id string) (hangar.User, error) {
	u, disabled, err := scanUser(db.pool.QueryRow(ctx, "SELECT "+userCols+" FROM users WHERE id=$1", id))
	gone := hangar.Errorf(hangar.KindUnauthorized, "this account no longer exists or is disabled: sign in again")
	if err != nil {
		return hangar.User{}, notFoundIf(err, gone)
	}
	if disabled != nil {
		return hangar.User{}, gone
	}
	return u, nil
}
