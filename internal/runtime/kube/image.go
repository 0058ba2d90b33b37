package kube

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"

	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/runtime"
)

var _ Images = (*Publisher)(nil)

// Layer is a directory tree that becomes one layer of an image.
type Layer struct {
	// Dir is the tree on the host.
	Dir string
	// At is where Dir's top is in the image: "/" or, for a toolchain,
	// its own directory ("/opt/hangar/node").
	At string
	// Key names the tree's content when it never changes under that name
	// (a base or a setup layer, keyed by their recipe): its compressed tar
	// is kept under the key and made once. "": made at every push.
	Key string
	// UIDBase is subtracted from the owners of files within
	// [UIDBase, UIDBase+65536): a setup layer stores what the app's root
	// made under the app's uid range (docs/images.md). 0: owners as they are.
	UIDBase uint32
}

// Layers resolves the image a Spec names.
type Layers interface {
	// Layers returns the layers of img, bottom first, without the app
	// folder, which the Publisher adds at runtime.AppDir.
	Layers(ctx context.Context, img runtime.Image) ([]Layer, error)
}

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// Registry is the repository prefix images are pushed under,
	// "host[:port][/path]"; each app gets <Registry>/<app ID>. Required.
	Registry string
	// Insecure talks plain HTTP to the registry. Default false: HTTPS.
	Insecure bool
	// CacheDir keeps the compressed tars of keyed layers. Required.
	CacheDir string
	// Layers gives the layers below the app folder. Required.
	Layers Layers
	// Transport is the HTTP transport to the registry. Default
	// remote.DefaultTransport.
	Transport http.RoundTripper
}

// Publisher exports app versions as OCI images and pushes them: the layers
// Layers gives, then the app folder at runtime.AppDir. Layers the registry
// already has (by digest) are not uploaded again, so a redeploy whose
// base, setup layer and app folder are unchanged pushes only a manifest it
// already has.
type Publisher struct {
	cfg PublisherConfig

	mu    sync.Mutex
	keyed map[string]v1.Layer // by Layer.Key: their digests are computed once
}

// NewPublisher returns a Publisher. It returns KindInvalid for a bad cfg.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	if cfg.Transport == nil {
		cfg.Transport = remote.DefaultTransport
	}
	var opts []name.Option
	if cfg.Insecure {
		opts = append(opts, name.Insecure)
	}
	if _, err := name.NewRepository(cfg.Registry+"/x", opts...); err != nil || cfg.CacheDir == "" || cfg.Layers == nil {
		return nil, hangar.Errorf(hangar.KindInvalid, "image publisher: registry %q (%v), cache dir and layers are required", cfg.Registry, err)
	}
	return &Publisher{cfg: cfg, keyed: make(map[string]v1.Layer)}, nil
}

// Ref pushes the image of spec and returns its reference by digest. See
// Images.
func (p *Publisher) Ref(ctx context.Context, spec runtime.Spec) (string, error) {
	layers, err := p.cfg.Layers.Layers(ctx, spec.Image)
	if err != nil {
		return "", err
	}
	layers = append(layers, Layer{Dir: spec.Dir, At: runtime.AppDir})
	return p.Push(ctx, strings.ToLower(spec.Image.AppID), labelValue(spec.Version), layers)
}

// Push builds the image of layers, pushes it as <Registry>/<repo>:<tag>
// and returns its reference by digest.
func (p *Publisher) Push(ctx context.Context, repo, tag string, layers []Layer) (string, error) {
	var opts []name.Option
	if p.cfg.Insecure {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.NewTag(p.cfg.Registry+"/"+repo+":"+tag, opts...)
	if err != nil {
		return "", hangar.Errorf(hangar.KindInvalid, "image reference: %v", err)
	}
	tmp, err := os.MkdirTemp(p.cfg.CacheDir, "push-*")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	img := empty.Image
	for _, l := range layers {
		layer, err := p.layer(l, tmp)
		if err != nil {
			return "", fmt.Errorf("layer %s: %w", l.Dir, err)
		}
		if img, err = mutate.AppendLayers(img, layer); err != nil {
			return "", err
		}
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return "", err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", "amd64"
	cfg.Config.WorkingDir = runtime.AppDir
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return "", err
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx), remote.WithTransport(p.cfg.Transport)); err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return "", err
	}
	return ref.Context().Digest(digest.String()).String(), nil
}

// layer returns l as an image layer: from its cached compressed tar when
// it has a key, else made now, in directory tmp.
func (p *Publisher) layer(l Layer, tmp string) (v1.Layer, error) {
	if l.Key == "" {
		f, err := os.CreateTemp(tmp, "layer-*.tar.gz")
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := writeLayer(f, l); err != nil {
			return nil, err
		}
		return tarball.LayerFromFile(f.Name())
	}
	p.mu.Lock() // also makes one push at a time write a keyed tar
	defer p.mu.Unlock()
	if layer, ok := p.keyed[l.Key]; ok {
		return layer, nil
	}
	file := filepath.Join(p.cfg.CacheDir, "layer-"+l.Key+".tar.gz")
	if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
		f, err := os.CreateTemp(p.cfg.CacheDir, "layer-*.tmp")
		if err != nil {
			return nil, err
		}
		defer os.Remove(f.Name())
		err = writeLayer(f, l)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(f.Name(), file)
		}
		if err != nil {
			return nil, err
		}
	}
	layer, err := tarball.LayerFromFile(file)
	if err != nil {
		return nil, err
	}
	p.keyed[l.Key] = layer
	return layer, nil
}

// writeLayer writes l to w as a gzipped tar, the same bytes for the same
// tree: entries sorted, times zeroed, owners shifted out of l.UIDBase, and
// overlayfs whiteouts (0/0 character devices, opaque directories) turned
// into OCI whiteout files.
func writeLayer(w io.Writer, l Layer) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	at := strings.Trim(l.At, "/")
	// The parents of At, so that the layer unpacks anywhere.
	if at != "" {
		parts := strings.Split(at, "/")
		for i := range parts[:len(parts)-1] {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.Join(parts[:i+1], "/") + "/", Mode: 0o755, Format: tar.FormatPAX}); err != nil {
				return err
			}
		}
	}
	err = filepath.WalkDir(l.Dir, func(p string, de fs.DirEntry, err error) error { // WalkDir is lexical
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(l.Dir, p)
		if err != nil {
			return err
		}
		nm := path.Join(at, filepath.ToSlash(rel))
		if nm == "." || nm == "" {
			return nil // the root itself
		}
		return writeEntry(tw, p, nm, de, l.UIDBase)
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

// writeEntry writes the file at p as entry nm of tw.
func writeEntry(tw *tar.Writer, p, nm string, de fs.DirEntry, uidBase uint32) error {
	fi, err := de.Info()
	if err != nil {
		return err
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	if fi.Mode()&fs.ModeCharDevice != 0 && st != nil && st.Rdev == 0 {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: path.Join(path.Dir(nm), ".wh."+path.Base(nm)), Mode: 0o600, Format: tar.FormatPAX})
	}
	link := ""
	if fi.Mode()&fs.ModeSymlink != 0 {
		if link, err = os.Readlink(p); err != nil {
			return err
		}
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return err
	}
	hdr.Name = nm
	if fi.IsDir() {
		hdr.Name += "/"
	}
	hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = time.Unix(0, 0), time.Time{}, time.Time{}
	hdr.Uname, hdr.Gname = "", ""
	hdr.Uid, hdr.Gid = shift(hdr.Uid, uidBase), shift(hdr.Gid, uidBase)
	hdr.Format = tar.FormatPAX
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if fi.IsDir() {
		if v, err := unix.Lgetxattr(p, "trusted.overlay.opaque", make([]byte, 1)); err == nil && v == 1 {
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: nm + "/.wh..wh..opq", Mode: 0o600, Format: tar.FormatPAX})
		}
		return nil
	}
	if !fi.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(tw, f)
	return err
}

// shift maps id out of the range at base, when it lies in it.
func shift(id int, base uint32) int {
	if base != 0 && id >= int(base) && id < int(base)+65536 {
		return id - int(base)
	}
	return id
}
