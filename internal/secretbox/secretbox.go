// Package secretbox encrypts small values at rest with AES-256-GCM under one
// key kept in a file: Hangar seals app secrets with it before they reach the
// metadata database. Each ciphertext is bound to associated data (the app and
// the secret's name) so that a ciphertext copied to another row does not
// open. It is a leaf that imports only the standard library; orchestration
// packages use it through interfaces of their own.
package secretbox

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the size of a key in bytes (AES-256).
const KeySize = 32

// version is the first byte of every sealed value; it lets a later format
// (another cipher, a key ring) be told apart.
const version byte = 1

// keyIDSize is the size of the key fingerprint stored in sealed values, so
// that opening with the wrong key file says so instead of "authentication
// failed".
const keyIDSize = 4

// overhead is the size a sealed value adds to its plaintext.
const overhead = 1 + keyIDSize + 12 + 16

// Box seals and opens values with one key. It is safe for concurrent use.
type Box struct {
	aead cipher.AEAD
	id   [keyIDSize]byte
}

// ErrOpen is returned (wrapped) when a sealed value does not open: it was
// tampered with, sealed for other associated data, or sealed with another key.
var ErrOpen = errors.New("secretbox: cannot open sealed value")

// New returns a Box with key, which must be KeySize bytes.
func New(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secretbox: key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secretbox: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secretbox: %w", err)
	}
	sum := sha256.Sum256(key)
	b := &Box{aead: aead}
	copy(b.id[:], sum[:])
	return b, nil
}

// Open returns a Box with the key in keyFile, creating the file with a new
// random key (mode 0600) when it does not exist. The file holds the key
// base64- or hex-encoded (a trailing newline is ignored) or as 32 raw bytes,
// so an operator can provide a key generated elsewhere, for example with
// `openssl rand -base64 32`. A key file readable or writable by group or
// others is refused.
func Open(keyFile string) (*Box, error) {
	key, err := readKey(keyFile)
	if errors.Is(err, fs.ErrNotExist) {
		key, err = createKey(keyFile)
	}
	if err != nil {
		return nil, err
	}
	return New(key)
}

func readKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("secretbox: key file %s has mode %v: it must be readable by its owner only (chmod 600 %s)", path, st.Mode().Perm(), path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return nil, fmt.Errorf("secretbox: read key file %s: %w", path, err)
	}
	key, err := parseKey(b)
	if err != nil {
		return nil, fmt.Errorf("secretbox: key file %s: %w", path, err)
	}
	return key, nil
}

// parseKey decodes a key file's content.
func parseKey(b []byte) ([]byte, error) {
	if len(b) == KeySize {
		return b, nil
	}
	s := strings.TrimSpace(string(b))
	for _, dec := range []func(string) ([]byte, error){
		base64.StdEncoding.DecodeString, base64.RawStdEncoding.DecodeString,
		base64.URLEncoding.DecodeString, base64.RawURLEncoding.DecodeString, hex.DecodeString,
	} {
		if k, err := dec(s); err == nil && len(k) == KeySize {
			return k, nil
		}
	}
	return nil, fmt.Errorf("want %d bytes, base64- or hex-encoded", KeySize)
}

// createKey writes a new random key to path atomically: concurrent creators
// all end up with the key that was linked first.
func createKey(path string) ([]byte, error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("secretbox: create key: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".secrets-key-*")
	if err != nil {
		return nil, fmt.Errorf("secretbox: create key: %w", err)
	}
	defer os.Remove(tmp.Name())
	// CreateTemp makes the file 0600 already; Chmod guards against odd umasks.
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("secretbox: create key: %w", err)
	}
	_, err = tmp.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("secretbox: create key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readKey(path)
		}
		return nil, fmt.Errorf("secretbox: create key: %w", err)
	}
	return key, nil
}

// Seal encrypts plaintext bound to associatedData, which is authenticated
// but not stored: OpenSealed needs the same associatedData.
func (b *Box) Seal(plaintext, associatedData []byte) []byte {
	out := make([]byte, 1+keyIDSize+b.aead.NonceSize(), overhead+len(plaintext))
	out[0] = version
	copy(out[1:], b.id[:])
	nonce := out[1+keyIDSize:]
	if _, err := rand.Read(nonce); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return b.aead.Seal(out, nonce, plaintext, b.ad(associatedData))
}

// OpenSealed decrypts a value Seal returned for the same associatedData. It
// returns an error wrapping ErrOpen when the value was altered, was sealed
// for other associated data, or was sealed with another key.
func (b *Box) OpenSealed(sealed, associatedData []byte) ([]byte, error) {
	if len(sealed) < overhead || sealed[0] != version {
		return nil, fmt.Errorf("%w: not a sealed value", ErrOpen)
	}
	if !bytes.Equal(sealed[1:1+keyIDSize], b.id[:]) {
		return nil, fmt.Errorf("%w: sealed with another key (id %x; this key is %x)", ErrOpen, sealed[1:1+keyIDSize], b.id[:])
	}
	nonce := sealed[1+keyIDSize : 1+keyIDSize+b.aead.NonceSize()]
	pt, err := b.aead.Open(nil, nonce, sealed[1+keyIDSize+b.aead.NonceSize():], b.ad(associatedData))
	if err != nil {
		return nil, fmt.Errorf("%w: altered, or sealed for other data", ErrOpen)
	}
	return pt, nil
}

// ad authenticates the format header along with the caller's data.
func (b *Box) ad(associatedData []byte) []byte {
	ad := make([]byte, 0, 1+keyIDSize+len(associatedData))
	ad = append(ad, version)
	ad = append(ad, b.id[:]...)
	return append(ad, associatedData...)
}

// KeyID returns the key's fingerprint, as stored in sealed values (hex).
func (b *Box) KeyID() string { return hex.EncodeToString(b.id[:]) }
