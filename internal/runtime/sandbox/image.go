package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"syscall"

	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/runtime"
	"github.com/hangar-oss/hangar/internal/runtime/internal/vnet"
)

// This file runs build steps on images (docs/images.md): it resolves an
// app's image to directories, keeps the apps' setup layers and uid ranges,
// and gives each step a network of its own.

var _ runtime.StepRunner = (*Driver)(nil)

// firstRangeUID is the first host uid of the apps' ranges; app n has
// firstRangeUID + n*RangeSize and the next 65535.
const firstRangeUID = 1 << 20

// appIDPattern bounds what an app ID may be, since it names directories.
var appIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// RunStep runs s on its app's image. See runtime.StepRunner.
func (d *Driver) RunStep(ctx context.Context, rs runtime.Step) (int, error) {
	s, err := d.resolve(ctx, rs.Image, rs.WriteLayer)
	if err != nil {
		return -1, err
	}
	s.ID, s.Dir, s.Args, s.Timeout, s.Stdout = rs.ID, rs.Dir, rs.Args, rs.Timeout, rs.Stdout
	s.Env = append([]string{}, rs.Env...)
	for _, m := range rs.Mounts {
		if !within(filepath.Clean(m.Target), "/tmp") || filepath.Clean(m.Target) == "/tmp" || !filepath.IsAbs(m.Source) {
			return -1, hangar.Errorf(hangar.KindInvalid, "step %s: mount %s must go below /tmp", rs.ID, m.Target)
		}
		if m.Writable {
			// The step's root may write only what its range owns.
			if err := shiftTree(m.Source, s.UIDBase, d.cfg.GID); err != nil {
				return -1, fmt.Errorf("step %s: hand %s to its uid range: %w", rs.ID, m.Source, err)
			}
		}
		s.Mounts = append(s.Mounts, runtime.Mount{Source: m.Source, Target: filepath.Clean(m.Target), Writable: m.Writable})
	}
	if !stepIDPattern.MatchString(s.ID) {
		return -1, hangar.Errorf(hangar.KindInvalid, "step %q: bad ID", s.ID)
	}

	ns := d.net.Name("s-" + s.ID)
	defer func() {
		if err := d.net.Teardown(context.WithoutCancel(ctx), ns); err != nil {
			d.logger.Error("tear down step network", "step", s.ID, "err", err)
		}
	}()
	netw, err := d.net.Setup(ctx, ns)
	if err != nil {
		return -1, fmt.Errorf("step %s: network: %w", s.ID, err)
	}
	// The resolver, relays and firewall start while the step's folder and
	// root are made ready; its command waits for them (step.Ready).
	forwarded := d.forwardAsync(ctx, ns, netw.Gateway, rs.Forwards, d.logger.With("step", s.ID))
	s.Ready = func() error {
		_, err := forwarded()
		return err
	}
	defer func() {
		fw, _ := forwarded()
		fw.Close()
	}()
	s.Netns, s.Gateway = vnet.Path(ns), netw.Gateway
	if rs.EnvFor != nil {
		s.Env = append(s.Env, rs.EnvFor(netw.Gateway)...)
	}
	code, err := d.runStep(ctx, s)
	if err == nil && code != 0 && s.Layer != "" && d.cfg.Disks != nil && d.cfg.Disks.Full(s.Layer) {
		return code, hangar.Errorf(hangar.KindTooLarge, "command %q filled the app's image layer: setup may write at most %s outside the app folder; install less in setup",
			rs.Args[len(rs.Args)-1], formatMiB(d.cfg.Disks.InstalledBytes()))
	}
	if errors.Is(err, ErrStepTimeout) {
		return code, hangar.Errorf(hangar.KindInvalid, "command %q timed out after %s and was killed", rs.Args[len(rs.Args)-1], rs.Timeout)
	}
	return code, err
}

// resolve returns the step skeleton of img: base, toolchains, layer and
// uid range.
func (d *Driver) resolve(ctx context.Context, img runtime.Image, write bool) (step, error) {
	if d.cfg.Images == nil {
		return step{}, hangar.Errorf(hangar.KindUnavailable, "the sandbox has no image cache: build steps cannot run")
	}
	if !appIDPattern.MatchString(img.AppID) || img.Layer != "" && !appIDPattern.MatchString(img.Layer) {
		return step{}, hangar.Errorf(hangar.KindInvalid, "bad image %+v", img)
	}
	if write && img.Layer == "" {
		return step{}, hangar.Errorf(hangar.KindInvalid, "a step that writes its image needs a layer")
	}
	root, err := d.cfg.Images.Base(ctx)
	if err != nil {
		return step{}, err
	}
	node, err := d.cfg.Images.Node(ctx)
	if err != nil {
		return step{}, err
	}
	base, err := d.appRange(ctx, img.AppID)
	if err != nil {
		return step{}, err
	}
	s := step{
		Root: root, UIDBase: base, Binds: []runtime.Mount{{Source: node, Target: "/opt/hangar/node"}},
		MemoryBytes: int64(d.cfg.StepMemoryMiB) << 20, Pids: int64(d.cfg.StepPids),
	}
	if d.cfg.GoRoot != "" {
		s.Binds = append(s.Binds, runtime.Mount{Source: d.cfg.GoRoot, Target: "/usr/local/go"})
	}
	if img.Layer == "" {
		return s, nil
	}
	layer := d.layerDir(img)
	if write {
		s.Layer = layer
		return s, nil
	}
	if ok, err := d.LayerReady(ctx, img); err != nil || !ok {
		return step{}, errors.Join(err, fmt.Errorf("setup layer %s of app %s is not built", img.Layer, img.AppID))
	}
	s.Lowers = []string{filepath.Join(layer, "upper")}
	return s, nil
}

// ImageLayers returns the directories of img's image, for drivers that ship
// it to another host (kube): the base, the setup layer's upper directory
// ("" for none) with the first uid of the app's range its files are stored
// under, and the toolchains bound into it.
func (d *Driver) ImageLayers(ctx context.Context, img runtime.Image) (base, upper string, uidBase uint32, binds []runtime.Mount, err error) {
	s, err := d.resolve(ctx, img, false)
	if err != nil {
		return "", "", 0, nil, err
	}
	if len(s.Lowers) > 0 {
		upper = s.Lowers[0]
	}
	return s.Root, upper, s.UIDBase, s.Binds, nil
}

// layerDir is where img's setup layer lives: below the image cache, per
// app and per base, since a layer only makes sense on the base it was
// written on.
func (d *Driver) layerDir(img runtime.Image) string {
	return filepath.Join(d.cfg.Images.Dir(), "layers", img.AppID, d.cfg.Images.BaseKey()+"-"+img.Layer)
}

// LayerReady reports whether img's layer was committed. See
// runtime.StepRunner.
func (d *Driver) LayerReady(ctx context.Context, img runtime.Image) (bool, error) {
	if d.cfg.Images == nil || img.Layer == "" {
		return false, nil
	}
	if d.cfg.Disks != nil {
		// After a reboot, the layer's disk is mounted on first use.
		if err := d.cfg.Disks.Restore(ctx, d.layerDir(img)); err != nil {
			return false, fmt.Errorf("mount setup layer %s of app %s: %w", img.Layer, img.AppID, err)
		}
	}
	_, err := os.Stat(filepath.Join(d.layerDir(img), "committed"))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// ResetLayer empties img's layer: a new disk of the installed app's size
// with Disks. See runtime.StepRunner.
func (d *Driver) ResetLayer(ctx context.Context, img runtime.Image) error {
	if d.cfg.Images == nil || !appIDPattern.MatchString(img.AppID) || !appIDPattern.MatchString(img.Layer) {
		return hangar.Errorf(hangar.KindInvalid, "bad image %+v", img)
	}
	// No step mounts it now: the caller runs one setup per app at a time.
	if d.cfg.Disks != nil {
		return d.cfg.Disks.Create(ctx, d.layerDir(img))
	}
	return os.RemoveAll(d.layerDir(img))
}

// CommitLayer marks img's layer complete. See runtime.StepRunner.
func (d *Driver) CommitLayer(_ context.Context, img runtime.Image) error {
	dir := d.layerDir(img)
	if err := os.MkdirAll(filepath.Join(dir, "upper"), 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "committed"), nil, 0o644)
}

// appRange returns the first uid of app's range, allocating one the first
// time: the lowest free. Allocations live in the image cache
// (uidranges.json, under a flock), shared by every Hangar on the host,
// since the layers they own are there too.
func (d *Driver) appRange(ctx context.Context, app string) (uint32, error) {
	var n int
	err := d.updateRanges(func(ranges map[string]int) (bool, error) {
		var ok bool
		if n, ok = ranges[app]; ok {
			return false, nil
		}
		used := make(map[int]bool, len(ranges))
		for _, r := range ranges {
			used[r] = true
		}
		for n = 0; used[n]; n++ {
		}
		if uint64(firstRangeUID)+uint64(n+1)*RangeSize > 1<<32-1 {
			return false, hangar.Errorf(hangar.KindUnavailable, "no uid range left for app %s", app)
		}
		ranges[app] = n
		d.logger.InfoContext(ctx, "allocated uid range", "app", app, "first_uid", firstRangeUID+n*RangeSize)
		return true, nil
	})
	return uint32(firstRangeUID + n*RangeSize), err
}

// ReleaseApp removes app's setup layers and frees its uid range for
// another app. Hangar calls it once the app is stopped and its folder and
// caches, the other files its range owned, are gone.
func (d *Driver) ReleaseApp(ctx context.Context, app string) error {
	if d.cfg.Images == nil || !appIDPattern.MatchString(app) {
		return nil
	}
	layers := filepath.Join(d.cfg.Images.Dir(), "layers", app)
	if d.cfg.Disks != nil {
		if err := d.cfg.Disks.RemoveAll(ctx, layers); err != nil {
			return err
		}
	} else if err := os.RemoveAll(layers); err != nil {
		return err
	}
	return d.updateRanges(func(ranges map[string]int) (bool, error) {
		_, ok := ranges[app]
		delete(ranges, app)
		return ok, nil
	})
}

// updateRanges applies change to the uid range table under its lock, and
// writes the table back if change says it changed it.
func (d *Driver) updateRanges(change func(ranges map[string]int) (changed bool, err error)) error {
	dir := d.cfg.Images.Dir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	path := filepath.Join(dir, "uidranges.json")
	// A lock file of its own: the file is replaced on every change.
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", path, err)
	}
	ranges := map[string]int{}
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &ranges); err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
	}
	if changed, err := change(ranges); err != nil || !changed {
		return err
	}
	if b, err = json.Marshal(ranges); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// writeImageBundle is writeBundle for an executor on its app's image: the
// image read-only, the toolchains, and the app folder at runtime.AppDir;
// nothing of the host's filesystem.
func (d *Driver) writeImageBundle(ctx context.Context, bundle string, e *executor, spec runtime.Spec) error {
	s, err := d.resolve(ctx, spec.Image, false)
	if err != nil {
		return err
	}
	rootfs := filepath.Join(bundle, "rootfs")
	if err := mountImage(s, rootfs); err != nil {
		return fmt.Errorf("mount image: %w", err)
	}
	for name, content := range etcFiles(spec.ID, e.Network.Gateway) {
		if err := os.WriteFile(filepath.Join(bundle, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	if err := shareDir(spec.Dir, d.cfg.GID); err != nil {
		return fmt.Errorf("open app folder to the executor: %w", err)
	}
	p := d.specParams(bundle, e, spec)
	p.Rootfs, p.Dir, p.DirSource, p.Binds = rootfs, runtime.AppDir, filepath.Clean(spec.Dir), s.Binds
	return writeSpec(bundle, ociSpec(p))
}

// formatMiB renders a byte count for users in MiB.
func formatMiB(n int64) string { return fmt.Sprintf("%d MiB", n>>20) }
