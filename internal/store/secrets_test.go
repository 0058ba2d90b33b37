package store

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDB_Secrets(t *testing.T) {
	t.Parallel()
	db := open(t)
	ctx := t.Context()
	now := time.Now()
	a := seed(t, db)
	if names, err := db.SecretNames(ctx, a.ID); err != nil || len(names) != 0 {
		t.Errorf("SecretNames of a new app = %v, %v", names, err)
	}
	mustOK(t, db.PutSecret(ctx, a.ID, "B_KEY", []byte("b1"), now))
	mustOK(t, db.PutSecret(ctx, a.ID, "A_KEY", []byte("a1"), now))
	mustOK(t, db.PutSecret(ctx, a.ID, "B_KEY", []byte("b2"), now.Add(time.Second)))

	names, err := db.SecretNames(ctx, a.ID)
	if diff := cmp.Diff([]string{"A_KEY", "B_KEY"}, names); err != nil || diff != "" {
		t.Errorf("SecretNames (-want +got): %v\n%s", err, diff)
	}
	sealed, err := db.SealedSecrets(ctx, a.ID)
	if diff := cmp.Diff(map[string][]byte{"A_KEY": []byte("a1"), "B_KEY": []byte("b2")}, sealed); err != nil || diff != "" {
		t.Errorf("SealedSecrets (-want +got): %v\n%s", err, diff)
	}
	if ok, err := db.DeleteSecret(ctx, a.ID, "A_KEY"); !ok || err != nil {
		t.Errorf("DeleteSecret = %v, %v; want true", ok, err)
	}
	if ok, err := db.DeleteSecret(ctx, a.ID, "A_KEY"); ok || err != nil {
		t.Errorf("DeleteSecret of a deleted secret = %v, %v; want false", ok, err)
	}

	mustOK(t, db.DeleteApp(ctx, a.ID))
	var n int
	mustOK(t, db.pool.QueryRow(ctx, "SELECT count(*) FROM app_secrets").Scan(&n))
	if n != 0 {
		t.Errorf("%d secrets survive their app", n)
	}
}
