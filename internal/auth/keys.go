package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Settings keys of the signing keys.
const (
	keySetSetting    = "jwt_keys"
	legacyKeySetting = "jwt_key" // the single key of Hangar before key rotation
)

// KeyStore keeps the key set as a setting; store.DB satisfies it.
type KeyStore interface {
	// Setting returns the value of key, storing create()'s when there is none.
	Setting(ctx context.Context, key string, create func() (string, error)) (string, error)
	// LookupSetting returns the value of key and whether there is one.
	LookupSetting(ctx context.Context, key string) (string, bool, error)
	// SwapSetting replaces key's value old with new; false when it was not old.
	SwapSetting(ctx context.Context, key, old, new string) (bool, error)
}

// Key is one HMAC signing key.
type Key struct {
	// ID is the kid header of the tokens it signs; "" for the key of an
	// earlier Hangar, whose tokens have no kid.
	ID      string    `json:"kid"`
	Secret  []byte    `json:"secret"`
	Created time.Time `json:"created"`
	// Retired is when a newer key replaced it; zero for the current key.
	Retired time.Time `json:"retired,omitzero"`
}

// KeySet is the signing keys, newest first: the first signs, all verify.
type KeySet []Key

func newKey(now time.Time) Key {
	return Key{ID: NewSecret(9), Secret: randomBytes(48), Created: now.UTC()}
}

// NewKeySet returns a key set of one new key.
func NewKeySet(now time.Time) KeySet { return KeySet{newKey(now)} }

// Rotate returns a copy of ks with a new signing key first. The key that
// signed until now is retired at now and keeps verifying; keys retired more
// than keep ago are dropped, since every token they signed has expired.
func (ks KeySet) Rotate(now time.Time, keep time.Duration) KeySet {
	out := KeySet{newKey(now)}
	for _, k := range ks {
		if k.Retired.IsZero() {
			k.Retired = now.UTC()
		}
		if now.Sub(k.Retired) <= keep {
			out = append(out, k)
		}
	}
	return out
}

// ParseKeySet decodes a key set stored by Encode.
func ParseKeySet(s string) (KeySet, error) {
	var ks KeySet
	if err := json.Unmarshal([]byte(s), &ks); err != nil {
		return nil, fmt.Errorf("parse signing keys: %w", err)
	}
	if len(ks) == 0 {
		return nil, errors.New("parse signing keys: empty key set")
	}
	return ks, nil
}

// Encode returns ks as stored in the settings table. It holds the secrets.
func (ks KeySet) Encode() (string, error) {
	b, err := json.Marshal(ks)
	return string(b), err
}

// loadKeys reads the stored key set, creating it (with a legacy key, if
// any) on first use.
func loadKeys(ctx context.Context, st KeyStore, now time.Time) (KeySet, error) {
	v, err := st.Setting(ctx, keySetSetting, func() (string, error) {
		ks := NewKeySet(now)
		legacy, ok, err := st.LookupSetting(ctx, legacyKeySetting)
		if err != nil {
			return "", err
		}
		if ok {
			ks = append(ks, Key{Secret: []byte(legacy), Created: now.UTC(), Retired: now.UTC()})
		}
		return ks.Encode()
	})
	if err != nil {
		return nil, fmt.Errorf("load signing keys: %w", err)
	}
	return ParseKeySet(v)
}

// RotateKeys adds a new signing key to the key set stored in st (creating
// the set if needed) and returns the new set. Servers pick it up at their
// next reload (Issuer.Run); the keys it replaces keep verifying until every
// token they signed has expired.
func RotateKeys(ctx context.Context, st KeyStore, cfg Config) (KeySet, error) {
	cfg.setDefaults()
	for range 10 {
		now := cfg.Now()
		if _, err := loadKeys(ctx, st, now); err != nil {
			return nil, err
		}
		old, _, err := st.LookupSetting(ctx, keySetSetting)
		if err != nil {
			return nil, err
		}
		ks, err := ParseKeySet(old)
		if err != nil {
			return nil, err
		}
		next := ks.Rotate(now, cfg.keep())
		enc, err := next.Encode()
		if err != nil {
			return nil, err
		}
		ok, err := st.SwapSetting(ctx, keySetSetting, old, enc)
		if err != nil {
			return nil, fmt.Errorf("store signing keys: %w", err)
		}
		if ok {
			return next, nil
		}
	}
	return nil, errors.New("rotate signing keys: the key set kept changing; try again")
}
