package secretbox

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func newBox(t *testing.T) *Box {
	t.Helper()
	b, err := New(bytes.Repeat([]byte{7}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBox_SealOpen(t *testing.T) {
	t.Parallel()
	b := newBox(t)
	ad := []byte("app-1\x00API_KEY")
	for _, pt := range []string{"", "s3cret", strings.Repeat("x", 70000)} {
		sealed := b.Seal([]byte(pt), ad)
		if len(pt) > 0 && bytes.Contains(sealed, []byte(pt)) {
			t.Errorf("sealed value contains the plaintext")
		}
		got, err := b.OpenSealed(sealed, ad)
		if err != nil {
			t.Fatalf("OpenSealed: %v", err)
		}
		if string(got) != pt {
			t.Errorf("OpenSealed = %q, want %q", got, pt)
		}
	}
	if a, c := b.Seal([]byte("v"), ad), b.Seal([]byte("v"), ad); bytes.Equal(a, c) {
		t.Errorf("two seals of one value are equal: nonces repeat")
	}
}

func TestBox_OpenSealedRefuses(t *testing.T) {
	t.Parallel()
	b := newBox(t)
	ad := []byte("app-1\x00API_KEY")
	sealed := b.Seal([]byte("s3cret"), ad)
	other, err := New(bytes.Repeat([]byte{8}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		c := bytes.Clone(sealed)
		c[i] ^= 1
		return c
	}
	for name, tc := range map[string]struct {
		box    *Box
		sealed []byte
		ad     string
		want   string
	}{
		"TamperedCiphertext": {b, flip(len(sealed) - 20), "app-1\x00API_KEY", "altered"},
		"TamperedTag":        {b, flip(len(sealed) - 1), "app-1\x00API_KEY", "altered"},
		"TamperedNonce":      {b, flip(6), "app-1\x00API_KEY", "altered"},
		"TamperedVersion":    {b, flip(0), "app-1\x00API_KEY", "not a sealed value"},
		"OtherApp":           {b, sealed, "app-2\x00API_KEY", "altered"},
		"OtherName":          {b, sealed, "app-1\x00OTHER", "altered"},
		"NoAD":               {b, sealed, "", "altered"},
		"OtherKey":           {other, sealed, "app-1\x00API_KEY", "another key"},
		"Truncated":          {b, sealed[:10], "app-1\x00API_KEY", "not a sealed value"},
		"Empty":              {b, nil, "app-1\x00API_KEY", "not a sealed value"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := tc.box.OpenSealed(tc.sealed, []byte(tc.ad))
			if !errors.Is(err, ErrOpen) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("OpenSealed = %q, %v; want ErrOpen mentioning %q", got, err, tc.want)
			}
		})
	}
}

func TestOpen_CreatesKeyFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sub", "secrets.key")
	b1, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != 0o600 {
		t.Errorf("key file mode = %v, want 0600", got)
	}
	sealed := b1.Seal([]byte("v"), []byte("ad"))
	b2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b2.OpenSealed(sealed, []byte("ad")); err != nil || string(got) != "v" {
		t.Errorf("reopened key: OpenSealed = %q, %v; want the value", got, err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".secrets-key-*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestOpen_ConcurrentCreatorsAgree(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "secrets.key")
	ids := make([]string, 8)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			b, err := Open(path)
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = b.KeyID()
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("concurrent Open returned different keys: %v", ids)
		}
	}
}

func TestOpen_OperatorKeyFormats(t *testing.T) {
	t.Parallel()
	key := bytes.Repeat([]byte{7}, KeySize)
	want := newBox(t).KeyID()
	for name, content := range map[string]string{
		"Base64":    base64.StdEncoding.EncodeToString(key) + "\n",
		"Base64URL": base64.RawURLEncoding.EncodeToString(key),
		"Hex":       strings.Repeat("07", KeySize) + "\n",
		"RawBytes":  string(key),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "key")
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			b, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			if b.KeyID() != want {
				t.Errorf("key id = %s, want %s", b.KeyID(), want)
			}
		})
	}
}

func TestOpen_Refuses(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		content string
		mode    os.FileMode
		want    string
	}{
		"GroupReadable": {base64.StdEncoding.EncodeToString(make([]byte, KeySize)), 0o640, "chmod 600"},
		"WorldReadable": {base64.StdEncoding.EncodeToString(make([]byte, KeySize)), 0o644, "chmod 600"},
		"ShortKey":      {base64.StdEncoding.EncodeToString(make([]byte, 16)), 0o600, "want 32 bytes"},
		"Garbage":       {"not a key", 0o600, "want 32 bytes"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "key")
			if err := os.WriteFile(path, []byte(tc.content), tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			if _, err := Open(path); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open = %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}
